//! The one place operation failures become WebSocket `error` frames.

use domain::protocol::{ErrorCode, FrameError};
use domain::service::ServiceError;

pub fn frame_error(err: ServiceError) -> FrameError {
    let code = match &err {
        ServiceError::NotFound(_) => ErrorCode::NotFound,
        ServiceError::Forbidden(_) | ServiceError::Unauthorized(_) => ErrorCode::Forbidden,
        ServiceError::Conflict(_) | ServiceError::Invalid { .. } => ErrorCode::InvalidField,
        ServiceError::TooLarge(_) => ErrorCode::TooLarge,
        ServiceError::NotSubscribed(_) => ErrorCode::NotSubscribed,
        ServiceError::Throttled(_) => ErrorCode::RateLimited,
        ServiceError::Store(store) => {
            tracing::error!(error = %store, "store failure");
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
        ServiceError::Internal(why) => {
            tracing::error!(error = why, "internal failure");
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
    };
    FrameError::new(code, err.to_string())
}
