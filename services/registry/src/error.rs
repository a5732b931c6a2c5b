//! The registry's errors and their gRPC codes.

use quiver_common::{ErrorCode, ServiceError};

use crate::validate::FieldError;

/// Everything that can go wrong in the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The definitions are invalid; every problem is listed, one per line.
    #[error("{} invalid definition(s); nothing was applied:\n{}", .0.len(), join_lines(.0))]
    Invalid(Vec<FieldError>),
    /// A request field is wrong.
    #[error("{field}: {reason}")]
    BadRequest {
        /// The request field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The named object, version or project does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Another apply committed first.
    #[error("registry revision is {current}, not {expected}: another apply changed the registry since this plan was made; nothing was applied, re-run the apply")]
    Conflict {
        /// The revision the apply was planned against.
        expected: u64,
        /// The revision now.
        current: u64,
    },
    /// sled failed.
    #[error("registry storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored record does not decode (corruption or an incompatible downgrade).
    #[error("registry storage holds an undecodable record at {key}: {reason}")]
    Corrupt {
        /// The record's key, printable.
        key: String,
        /// Why it does not decode.
        reason: String,
    },
}

fn join_lines(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ServiceError for RegistryError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) | Self::BadRequest { .. } => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict { .. } => ErrorCode::Conflict,
            Self::Storage(_) | Self::Corrupt { .. } => ErrorCode::Internal,
        }
    }
}

impl From<RegistryError> for tonic::Status {
    fn from(e: RegistryError) -> Self {
        e.to_status()
    }
}
