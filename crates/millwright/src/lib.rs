//! The components this binary ships, in the order they are wired: each one's config sections
//! are registered in this order and its processors run in this order. This is the only list
//! to extend when a component crate is added; the tests use it to check whole files exactly
//! as `millwright check` does.

use mw_bus::Component;

pub mod ingest;
pub mod sim_sparkplug;
pub mod transfer;

/// Every shipped component. Processors run in this order: analytics before deadband, so the
/// detectors see every sample; alarms after analytics (their outputs are evaluated in the same
/// batch) and before deadband (alarms see every sample); the live store is the sink the HTTP
/// API reads; the audit trail records the `Audit` and `OperatorAction` events durably; the
/// uplinks buffer everything and forward it to NATS JetStream; notifications send alarm
/// transitions to webhooks and MQTT topics.
pub fn components() -> Vec<&'static dyn Component> {
    vec![
        &mw_modbus::ModbusComponent,
        &mw_analytics_live::AnalyticsComponent,
        &mw_alarms::AlarmComponent,
        &mw_bus::DeadbandComponent,
        &mw_live::LiveComponent,
        &mw_historian::component::HistorianComponent,
        &mw_security::audit::AuditComponent,
        &mw_uplink::UplinkComponent,
        &mw_mqtt::MqttBrokerComponent,
        &mw_mqtt::MqttClientComponent,
        &mw_sparkplug_node::SparkplugEdgeComponent,
        &mw_sparkplug_node::SparkplugHostComponent,
        &mw_notify::NotifyComponent,
    ]
}

/// Where new revisions of the configuration come from, if a component's sections in `cfg` ask
/// for that (`[remote_config]`): the first component's watch.
pub fn config_watch(cfg: &mw_config::Config) -> Option<std::sync::Arc<dyn mw_bus::ConfigWatch>> {
    components().into_iter().find_map(|c| c.config_watch(cfg))
}

/// The config registry of [`components`].
pub fn config_registry() -> mw_config::Registry {
    mw_bus::config_registry(&components())
}
