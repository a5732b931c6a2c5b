//! The snapshot service's errors and their gRPC codes.

/// Why a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The request or entity table is wrong; the message names the field or column (and row).
    #[error("{0}")]
    InvalidArgument(String),
    /// Something needed is not reachable now (the registry, the offline store), or not complete
    /// yet (a view version still backfilling: the message says what to wait for).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or corrupt data.
    #[error("{0}")]
    Internal(String),
}

impl From<SnapshotError> for tonic::Status {
    fn from(error: SnapshotError) -> Self {
        match error {
            SnapshotError::InvalidArgument(m) => tonic::Status::invalid_argument(m),
            SnapshotError::Unavailable(m) => tonic::Status::unavailable(m),
            SnapshotError::Internal(m) => tonic::Status::internal(m),
        }
    }
}

impl From<quiver_lake::LakeError> for SnapshotError {
    fn from(error: quiver_lake::LakeError) -> Self {
        Self::Unavailable(error.to_string())
    }
}
