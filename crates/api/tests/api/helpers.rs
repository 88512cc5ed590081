//! A real API server on 127.0.0.1:0 over a fresh store, and an HTTP client.

use std::sync::Arc;

use domain::auth::{JwtKeys, TokenType};
use domain::model::User;
use domain::testing::{Flavor, TestStore};
use ops::shutdown::Shutdown;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tidings_api::{ApiConfig, AppState};

pub use domain::testing::TEST_PASSWORD as PASSWORD;
pub use domain::testing::TEST_SECRET as SECRET;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let app = crate::helpers::TestApp::spawn(domain::testing::Flavor::Sqlite).await.unwrap();
                super::$name(&app).await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                if let Some(app) = crate::helpers::TestApp::spawn(domain::testing::Flavor::Postgres).await {
                    super::$name(&app).await;
                }
            })*
        }
    };
}
pub(crate) use on_both_stores;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: TestStore,
    pub keys: Arc<JwtKeys>,
    pub admin: String,
    _shutdown: ShutdownOnDrop,
}

struct ShutdownOnDrop(Shutdown);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

impl TestApp {
    pub async fn spawn(flavor: Flavor) -> Option<Self> {
        Self::spawn_with(flavor, ApiConfig::default()).await
    }

    pub async fn spawn_with(flavor: Flavor, config: ApiConfig) -> Option<Self> {
        let db = TestStore::fresh(flavor).await?;
        let keys = domain::testing::keys();
        let core = db.core();
        let state = AppState {
            core,
            keys: keys.clone(),
            config: Arc::new(config),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = Shutdown::new();
        tokio::spawn(tidings_api::serve(
            listener,
            tidings_api::router(state),
            shutdown.clone(),
            std::time::Duration::from_secs(10),
        ));
        let mut app = Self {
            base,
            client: reqwest::Client::new(),
            db,
            keys,
            admin: String::new(),
            _shutdown: ShutdownOnDrop(shutdown),
        };
        app.admin = app.user_with("admin", true).await.1;
        Some(app)
    }

    /// Creates a user straight in the store; returns it and an access token.
    pub async fn user_with(&self, name: &str, admin: bool) -> (User, String) {
        let user = domain::testing::user(&self.db, name, admin).await;
        let token = self.keys.issue(&user, TokenType::Access).unwrap();
        (user, token)
    }

    pub async fn user(&self, name: &str) -> (User, String) {
        self.user_with(name, false).await
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error body>")
}
