//! The Modbus component: the `[[devices]]` config section and one [`Source`] per device, the
//! [`crate::poller`] loop. The poller's module documentation states its behaviour on
//! disconnect, overload and restart, as the [`Source`] contract asks.

use mw_bus::{BoxFuture, BuildError, Component, Parts, Source, SourceContext};
use mw_config::{Config, Section};

use crate::config::{DeviceConfig, DevicesSection, ModbusConfig};

/// Registers `[[devices]]` and builds a poller per configured device.
pub struct ModbusComponent;

impl Component for ModbusComponent {
    fn name(&self) -> &'static str {
        "modbus"
    }

    fn sections(&self) -> Vec<Box<dyn Section>> {
        vec![Box::new(DevicesSection)]
    }

    fn build(&self, cfg: &Config, parts: &mut Parts) -> Result<(), BuildError> {
        for dev in cfg
            .section::<ModbusConfig>()
            .map_or(&[][..], |m| &m.devices)
        {
            parts.add_source(Box::new(ModbusSource::new(dev.clone())));
        }
        Ok(())
    }
}

/// One Modbus TCP device polled on the bus (`component="modbus"`, `instance` = device name).
pub struct ModbusSource {
    dev: DeviceConfig,
}

impl ModbusSource {
    pub fn new(dev: DeviceConfig) -> ModbusSource {
        ModbusSource { dev }
    }
}

impl Source for ModbusSource {
    fn component(&self) -> &'static str {
        "modbus"
    }

    fn instance(&self) -> String {
        self.dev.name.clone()
    }

    fn run(self: Box<Self>, cx: SourceContext) -> BoxFuture<()> {
        Box::pin(async move {
            crate::run_device(self.dev, cx.publisher, cx.status, cx.shutdown.into_watch()).await;
        })
    }
}
