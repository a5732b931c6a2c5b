//! Compiles every proto under `proto/` into `OUT_DIR`, plus one descriptor set for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let protos = [
        "quiver/types/v1/types.proto",
        "quiver/registry/v1/registry.proto",
        "quiver/ingest/v1/ingest.proto",
        "quiver/serving/v1/serving.proto",
        "quiver/offline/v1/offline.proto",
        "quiver/online/v1/online.proto",
        "quiver/raft/v1/raft.proto",
        "quiver/compute/v1/compute.proto",
    ]
    .map(|p| root.join(p));
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("quiver_descriptor.bin"))
        .compile_protos(&protos, std::slice::from_ref(&root))?;
    // Per file: a directory's mtime does not change when a file in it is edited.
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}
