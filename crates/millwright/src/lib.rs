//! The components this binary ships, in the order they are wired: each one's config sections
//! are registered in this order and its processors run in this order. This is the only list
//! to extend when a component crate is added; the tests use it to check whole files exactly
//! as `millwright check` does.

use mw_bus::Component;

/// Every shipped component. Sources first, then processors (analytics before the deadband the
/// binary adds last, so detectors see every sample).
pub fn components() -> Vec<&'static dyn Component> {
    vec![
        &mw_modbus::ModbusComponent,
        &mw_analytics_live::AnalyticsComponent,
    ]
}

/// The config registry of [`components`].
pub fn config_registry() -> mw_config::Registry {
    mw_bus::config_registry(&components())
}
