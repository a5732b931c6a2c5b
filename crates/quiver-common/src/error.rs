//! The one mapping from service errors to gRPC statuses.
//!
//! Each service crate has its own `thiserror` enum and implements [`ServiceError`] to say which
//! stable [`ErrorCode`] each variant is; only [`ServiceError::to_status`] builds a
//! `tonic::Status`, so clients see consistent codes across services.

use tonic::Status;

/// The stable error classes Quiver's APIs answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is wrong; the message names the field and why. Retrying will not help.
    InvalidArgument,
    /// A named object does not exist.
    NotFound,
    /// The request raced another change (e.g. a stale registry revision); re-read and retry.
    Conflict,
    /// The request cannot run in the current state (e.g. an uninitialised cluster).
    FailedPrecondition,
    /// Overloaded; retry after a pause.
    ResourceExhausted,
    /// Temporarily unreachable (e.g. not the leader); retry, possibly elsewhere.
    Unavailable,
    /// A bug or a storage failure.
    Internal,
}

impl ErrorCode {
    /// The gRPC code for this class.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            Self::InvalidArgument => tonic::Code::InvalidArgument,
            Self::NotFound => tonic::Code::NotFound,
            Self::Conflict => tonic::Code::Aborted,
            Self::FailedPrecondition => tonic::Code::FailedPrecondition,
            Self::ResourceExhausted => tonic::Code::ResourceExhausted,
            Self::Unavailable => tonic::Code::Unavailable,
            Self::Internal => tonic::Code::Internal,
        }
    }
}

/// A service error that knows its [`ErrorCode`].
pub trait ServiceError: std::error::Error {
    /// The class of this error.
    fn code(&self) -> ErrorCode;

    /// The gRPC status sent to the client. Internal errors are logged here with their detail.
    fn to_status(&self) -> Status {
        let code = self.code();
        if code == ErrorCode::Internal {
            tracing::error!(error = %self, "internal error");
        }
        Status::new(code.grpc_code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("revision moved")]
    struct Raced;

    impl ServiceError for Raced {
        fn code(&self) -> ErrorCode {
            ErrorCode::Conflict
        }
    }

    #[test]
    fn conflict_is_aborted_with_the_message() {
        let status = Raced.to_status();
        assert_eq!(status.code(), tonic::Code::Aborted);
        assert_eq!(status.message(), "revision moved");
    }
}
