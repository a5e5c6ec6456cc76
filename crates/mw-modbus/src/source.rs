//! The Modbus component: the `[[devices]]` config section and one [`Source`] per device, the
//! [`crate::poller`] loop. A device's `writable` tags are registered in the process's
//! [`mw_bus::WriteRegistry`] as `modbus/DEVICE`; the poller carries their writes out. The poller's module documentation states its behaviour on
//! disconnect, overload and restart, as the [`Source`] contract asks.

use mw_bus::{BoxFuture, BuildError, Component, Parts, Source, SourceContext, WriteReceiver};
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
            let writable: Vec<_> = dev
                .tags
                .iter()
                .filter(|t| t.write.is_some())
                .map(|t| t.def.path.clone())
                .collect();
            let mut source = ModbusSource::new(dev.clone());
            if !writable.is_empty() {
                let rx = parts
                    .writes()
                    .register(&format!("modbus/{}", dev.name), writable, WRITE_QUEUE)
                    .map_err(|e| BuildError {
                        component: "modbus",
                        message: e.to_string(),
                    })?;
                source.writes = Some(rx);
            }
            parts.add_source(Box::new(source));
        }
        Ok(())
    }
}

/// One Modbus TCP device polled on the bus (`component="modbus"`, `instance` = device name).
pub struct ModbusSource {
    dev: DeviceConfig,
    writes: Option<WriteReceiver>,
}

/// Writes queued per device beyond the one in progress; more are answered `busy`.
pub const WRITE_QUEUE: usize = 16;

impl ModbusSource {
    pub fn new(dev: DeviceConfig) -> ModbusSource {
        ModbusSource { dev, writes: None }
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
            crate::run_device(
                self.dev,
                cx.publisher,
                cx.status,
                cx.shutdown.into_watch(),
                self.writes,
            )
            .await;
        })
    }
}
