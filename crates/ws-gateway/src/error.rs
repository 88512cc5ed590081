//! The one place operation failures become WebSocket `error` frames.

use domain::log_throttle::LogThrottle;
use domain::protocol::{ErrorCode, FrameError};
use domain::service::ServiceError;

/// During a database outage every frame that needs the store fails.
static STORE_FAILURES: LogThrottle = LogThrottle::new();

pub fn frame_error(err: ServiceError) -> FrameError {
    let code = match &err {
        ServiceError::NotFound(_) => ErrorCode::NotFound,
        ServiceError::Forbidden(_) | ServiceError::Unauthorized(_) => ErrorCode::Forbidden,
        ServiceError::Conflict(_) | ServiceError::Invalid { .. } => ErrorCode::InvalidField,
        ServiceError::TooLarge(_) => ErrorCode::TooLarge,
        ServiceError::NotSubscribed(_) => ErrorCode::NotSubscribed,
        ServiceError::Throttled(_) => ErrorCode::RateLimited,
        ServiceError::Store(store) => {
            if let Some(left_out) = STORE_FAILURES.admit() {
                tracing::error!(error = %store, left_out, "store failure");
            }
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
        ServiceError::Internal(why) => {
            tracing::error!(error = why, "internal failure");
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
    };
    FrameError::new(code, err.to_string())
}
