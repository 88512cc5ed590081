//! Listening before the dependencies answer.
//!
//! A process binds its port first and serves at once, even while the store
//! or Redis is still unreachable: `/healthz` says it is alive, `/readyz`
//! answers 503 naming what is missing and why, and every other request a
//! quick 503. Once everything answers, the real router takes over. An
//! operator with a typo in `REDIS_URL` sees a listening process and a log
//! line per attempt, not a silent one that looks dead.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tower::ServiceExt;

type Missing = BTreeMap<&'static str, String>;

/// Answers for the process while it starts, then hands over to its router.
#[derive(Clone, Default)]
pub struct Switch {
    /// What is missing, and the last reason.
    missing: Arc<RwLock<Missing>>,
    router: Arc<RwLock<Option<Router>>>,
}

impl Switch {
    /// A switch for another listener of the same process: it reports the
    /// same missing dependencies and gets a router of its own.
    pub fn sibling(&self) -> Self {
        Self {
            missing: Arc::clone(&self.missing),
            router: Arc::default(),
        }
    }

    /// `dependency` cannot be reached yet, for this `cause`.
    pub fn waiting(&self, dependency: &'static str, cause: String) {
        write(&self.missing).insert(dependency, cause);
    }

    /// `dependency` answers now.
    pub fn connected(&self, dependency: &'static str) {
        write(&self.missing).remove(dependency);
    }

    /// Everything answers: `router` serves from now on.
    pub fn ready(&self, router: Router) {
        *write(&self.router) = Some(router);
    }

    /// The router to serve from the start.
    pub fn router(&self) -> Router {
        let switch = self.clone();
        Router::new().fallback_service(tower::service_fn(move |request: Request<Body>| {
            let switch = switch.clone();
            async move { Ok::<_, Infallible>(switch.answer(request).await) }
        }))
    }

    async fn answer(&self, request: Request<Body>) -> Response {
        let router = read(&self.router).clone();
        match router {
            Some(router) => match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
            None => starting(request.uri().path(), &read(&self.missing)),
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

fn starting(path: &str, missing: &Missing) -> Response {
    match path {
        "/healthz" => axum::Json(json!({ "status": "ok" })).into_response(),
        "/readyz" => {
            let mut body = serde_json::Map::new();
            body.insert("status".into(), json!("starting"));
            for (dependency, cause) in missing {
                body.insert((*dependency).into(), json!(cause));
            }
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
        }
        _ => {
            let waiting: Vec<&str> = missing.keys().copied().collect();
            let message = if waiting.is_empty() {
                "starting".to_owned()
            } else {
                format!("starting: waiting for the {}", waiting.join(" and the "))
            };
            crate::error_response(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }
}
