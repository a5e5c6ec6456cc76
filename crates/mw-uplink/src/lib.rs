//! Millwright's uplink (issue 13, item 2 and the NATS JetStream sink of item 3): a durable bus
//! sink that appends every sample and event to an mw-buffer disk buffer and commits the
//! delivery once the buffer has it ([`sink`]), and a forwarder that publishes the buffer to
//! NATS JetStream, live data first and the backlog behind it flagged `historical`, removing a
//! record only after the server's PubAck ([`forward`]). Subjects and payloads: [`wire`]. The
//! `[[uplink]]` section: [`config`]. An edge's configuration from a NATS KV bucket
//! (`[remote_config]`): [`remote`]. docs/uplink.md is the operator's guide.

pub mod component;
pub mod config;
pub mod forward;
pub mod mqtt;
pub mod remote;
pub mod sink;
pub mod vm;
pub mod wire;

pub use component::{UplinkComponent, Uplinks};
pub use config::{UplinkConfig, UplinkSection};
pub use forward::{StatusHandle, UplinkStatus};
pub use remote::{RemoteConfig, RemoteConfigSection};
pub use sink::UplinkSink;
