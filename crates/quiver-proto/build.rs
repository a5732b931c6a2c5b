//! Compiles every proto under `proto/` into `OUT_DIR`, plus one descriptor set for reflection.
//!
//! `protoc` and the well-known types (`google/protobuf/*.proto`) come from `protoc-bin-vendored`,
//! so a fresh machine needs no protobuf packages and every machine compiles with the same protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it was compiled: a target directory shared by two
    // checkouts (CI's clone and a working tree) reuses one compiled build script for both.
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../../proto");
    let protos = [
        "quiver/types/v1/types.proto",
        "quiver/registry/v1/registry.proto",
        "quiver/ingest/v1/ingest.proto",
        "quiver/serving/v1/serving.proto",
        "quiver/offline/v1/offline.proto",
        "quiver/online/v1/online.proto",
        "quiver/raft/v1/raft.proto",
        "quiver/compute/v1/compute.proto",
        "quiver/auth/v1/auth.proto",
    ]
    .map(|p| root.join(p));
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // prost-build runs the protoc that PROTOC names; a build script is single-threaded.
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("quiver_descriptor.bin"))
        .compile_protos(&protos, &[root.clone(), well_known])?;
    // Per file: a directory's mtime does not change when a file in it is edited. Relative to
    // the package, so a target directory shared by two checkouts (CI's clone and a working
    // tree) watches the files of whichever checkout builds, not the first one's.
    for proto in &protos {
        if let Ok(relative) = proto.strip_prefix(&manifest_dir) {
            println!("cargo:rerun-if-changed={}", relative.display());
        }
    }
    Ok(())
}
