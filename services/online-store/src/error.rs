//! The online store's errors and their gRPC codes.

use quiver_common::leader_hint::not_leader;
use quiver_common::{ErrorCode, ServiceError};

/// Everything that can go wrong in the online store.
#[derive(Debug, thiserror::Error)]
pub enum OnlineStoreError {
    /// The request is wrong; the message names the field (and row).
    #[error("{0}")]
    InvalidArgument(String),
    /// A named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot run in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Only the leader (or a caught-up replica) can do this; `leader` is where to go (if known).
    #[error("{}{}", .reason.as_deref().unwrap_or("this node is not the leader"), .leader.as_ref().map(|l| format!("; the leader is {l}")).unwrap_or_default())]
    NotLeader {
        /// The leader's address.
        leader: Option<String>,
        /// Why this node cannot answer, when it is not simply a follower.
        reason: Option<String>,
    },
    /// Temporarily unable (an election, a quorum out of reach, the registry not loaded yet).
    #[error("{0}")]
    Unavailable(String),
    /// Storage or Raft failed.
    #[error("{0}")]
    Internal(String),
}

impl ServiceError for OnlineStoreError {
    fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::FailedPrecondition(_) => ErrorCode::FailedPrecondition,
            Self::NotLeader { .. } | Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    fn to_status(&self) -> tonic::Status {
        match self {
            Self::NotLeader { leader, .. } => not_leader(self.to_string(), leader.as_deref()),
            _ => tonic::Status::new(self.code().grpc_code(), self.to_string()),
        }
    }
}

impl From<OnlineStoreError> for tonic::Status {
    fn from(e: OnlineStoreError) -> Self {
        if matches!(e, OnlineStoreError::Internal(_)) {
            tracing::error!(error = %e, "internal error");
        }
        e.to_status()
    }
}
