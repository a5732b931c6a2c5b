//! Quiver's wire contracts: the generated protobuf types, gRPC clients and servers, and the
//! conversions between them and the domain types of `quiver-core`.
//!
//! Conversions live in [`convert`], one file per type, so handlers never build messages by
//! hand. This crate must not depend on any service.

pub mod convert;

/// Generated code, one module per proto package.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    /// `quiver.*` packages.
    pub mod quiver {
        /// `quiver.types.*`.
        pub mod types {
            /// `quiver.types.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.types.v1");
            }
        }
        /// `quiver.registry.*`.
        pub mod registry {
            /// `quiver.registry.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.registry.v1");
            }
        }
        /// `quiver.ingest.*`.
        pub mod ingest {
            /// `quiver.ingest.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.ingest.v1");
            }
        }
        /// `quiver.serving.*`.
        pub mod serving {
            /// `quiver.serving.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.serving.v1");
            }
        }
        /// `quiver.online.*` (internal).
        pub mod online {
            /// `quiver.online.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.online.v1");
            }
        }
        /// `quiver.raft.*` (internal).
        pub mod raft {
            /// `quiver.raft.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.raft.v1");
            }
        }
        /// `quiver.compute.*`.
        pub mod compute {
            /// `quiver.compute.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.compute.v1");
            }
        }
        /// `quiver.auth.*`.
        pub mod auth {
            /// `quiver.auth.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.auth.v1");
            }
        }
        /// `quiver.offline.*`.
        pub mod offline {
            /// `quiver.offline.v1`.
            pub mod v1 {
                tonic::include_proto!("quiver.offline.v1");
            }
        }
    }
}

pub use pb::quiver::auth::v1 as auth;
pub use pb::quiver::compute::v1 as compute;
pub use pb::quiver::ingest::v1 as ingest;
pub use pb::quiver::offline::v1 as offline;
pub use pb::quiver::online::v1 as online;
pub use pb::quiver::raft::v1 as raft;
pub use pb::quiver::registry::v1 as registry;
pub use pb::quiver::serving::v1 as serving;
pub use pb::quiver::types::v1 as types;

/// The encoded descriptor set of every Quiver proto, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("quiver_descriptor");
