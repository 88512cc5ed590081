//! The one place API failures become HTTP responses:
//! `{"error":{"code","message"}}` with the status the outcome calls for.
//! Bad input is always a 4xx; only a broken store or bus is a 5xx.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use domain::log_throttle::LogThrottle;
use domain::paging::PagingError;
use domain::service::{AuthFailure, ServiceError};
use domain::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    #[error("the service is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            Self::InvalidName(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let mut response = ops::error_response(status, code, self.to_string());
        if let Self::RateLimited { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, retry_after.into());
        }
        response
    }
}

impl From<AuthFailure> for ApiError {
    fn from(failure: AuthFailure) -> Self {
        match failure {
            AuthFailure::Refused(refusal) => Self::Unauthorized(refusal.message().into()),
            AuthFailure::Service(err) => err.into(),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound(what) => Self::NotFound(format!("{what} not found")),
            ServiceError::Forbidden(why) => Self::Forbidden(why.into()),
            ServiceError::Unauthorized(why) => Self::Unauthorized(why.into()),
            ServiceError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            ServiceError::Invalid { field, message } => {
                Self::Unprocessable(format!("{field}: {message}"))
            }
            ServiceError::TooLarge(why) => Self::TooLarge(why),
            ServiceError::NotSubscribed(topic) => {
                Self::NotFound(format!("not a member of {topic}"))
            }
            ServiceError::Store(err) => err.into(),
            ServiceError::Throttled(wait) => {
                let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
                Self::RateLimited {
                    message: format!("too many failed attempts; retry in {retry_after} s"),
                    retry_after,
                }
            }
            ServiceError::Internal(why) => {
                tracing::error!(error = why, "internal failure");
                Self::Internal
            }
        }
    }
}

/// During a database outage every request that needs the store fails.
static STORE_FAILURES: LogThrottle = LogThrottle::new();

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            other => {
                if let Some(left_out) = STORE_FAILURES.admit() {
                    tracing::error!(error = %other, left_out, "store failure");
                }
                Self::Unavailable
            }
        }
    }
}

/// A query parameter of the wrong type or value is 422 `invalid_field`,
/// like a body field: one status for every bad parameter.
impl From<PagingError> for ApiError {
    fn from(err: PagingError) -> Self {
        Self::Unprocessable(err.to_string())
    }
}

impl From<domain::names::InvalidName> for ApiError {
    fn from(err: domain::names::InvalidName) -> Self {
        Self::InvalidName(err.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => Self::Unprocessable(text),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(text),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::TooLarge(text)
            }
            _ => Self::BadRequest(text),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::Unprocessable(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        // A path segment that is not a valid name (the only path values
        // with a custom parser) is an `invalid_name`, like a body's.
        if let PathRejection::FailedToDeserializePathParams(inner) = &rejection
            && matches!(inner.kind(), axum::extract::path::ErrorKind::Message(_))
        {
            return Self::InvalidName(inner.body_text());
        }
        Self::NotFound(rejection.body_text())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(_: tokio::task::JoinError) -> Self {
        Self::Internal
    }
}
