//! Generates the RocketMQ 5 messages and the MessagingService server and client from
//! the crate's own .proto files. protox compiles them in Rust, so a build needs no
//! protoc on the machine.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let files = [
        root.join("apache/rocketmq/v2/definition.proto"),
        root.join("apache/rocketmq/v2/service.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // RPCs sundial leaves out answer UNIMPLEMENTED without a hand-written stub.
        .generate_default_stubs(true)
        // Ordered maps encode the same properties to the same bytes every time, which
        // the round-trip tests and the fuzz target rely on.
        .btree_map(".")
        .compile_fds(descriptors)?;
    Ok(())
}
