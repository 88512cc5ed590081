//! The one place operation failures become WebSocket `error` frames.

use domain::log_throttle::LogThrottle;
use domain::protocol::{ErrorCode, FrameError};
use domain::service::ServiceError;

/// During a database outage every frame, handshake and catch-up that
/// needs the store fails: one kind of line, whichever met it.
static STORE_FAILURES: LogThrottle = LogThrottle::new();

/// Logs a store failure met `during` something (a frame, a handshake, a
/// delivery), at most once a second across all of them.
pub fn store_failure(during: &'static str, err: &dyn std::fmt::Display) {
    if let Some(left_out) = STORE_FAILURES.admit() {
        tracing::error!(error = %err, during, left_out, "store failure");
    }
}

pub fn frame_error(err: ServiceError) -> FrameError {
    let code = match &err {
        ServiceError::NotFound(_) => ErrorCode::NotFound,
        ServiceError::Forbidden(_) | ServiceError::Unauthorized(_) => ErrorCode::Forbidden,
        ServiceError::Conflict(_) | ServiceError::Invalid { .. } => ErrorCode::InvalidField,
        ServiceError::TooLarge(_) => ErrorCode::TooLarge,
        ServiceError::NotSubscribed(_) => ErrorCode::NotSubscribed,
        ServiceError::Throttled(_) => ErrorCode::RateLimited,
        ServiceError::Store(store) => {
            store_failure("a frame", store);
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
        ServiceError::Internal(why) => {
            tracing::error!(error = why, "internal failure");
            return FrameError::new(ErrorCode::Internal, "internal error; try again");
        }
    };
    FrameError::new(code, err.to_string())
}
