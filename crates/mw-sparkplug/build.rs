//! Generates the Sparkplug B protobuf types with prost from `proto/sparkplug_b.proto`,
//! parsed by protox (pure Rust): no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sparkplug_b.proto");
    let fds = protox::compile(["sparkplug_b.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}
