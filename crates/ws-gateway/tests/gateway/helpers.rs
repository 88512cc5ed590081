//! A real gateway (and REST API, sharing its core and bus) on 127.0.0.1:0
//! over a fresh store, and a WebSocket client for it.

use std::sync::Arc;

use domain::auth::{JwtKeys, TokenType};
use domain::model::{Actor, User};
use domain::service::Core;
use domain::testing::{Flavor, TestStore};
use ops::shutdown::Shutdown;
use serde_json::Value;
use tidings_gateway::{GatewayConfig, GatewayState};

pub use crate::ws_client::{Client, PATIENCE};

pub use domain::testing::TEST_SECRET as SECRET;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                let app = crate::helpers::TestGateway::spawn(domain::testing::Flavor::Sqlite).await.unwrap();
                super::$name(&app).await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() {
                if let Some(app) = crate::helpers::TestGateway::spawn(domain::testing::Flavor::Postgres).await {
                    super::$name(&app).await;
                }
            })*
        }
    };
}
pub(crate) use on_both_stores;

pub struct TestGateway {
    pub ws: String,
    pub api: String,
    pub db: TestStore,
    pub keys: Arc<JwtKeys>,
    pub core: Arc<Core>,
    pub hub: Arc<tidings_gateway::hub::Hub>,
    pub hold_accounts: Arc<tidings_gateway::hold_accounts::HoldAccounts>,
    pub shutdown: Shutdown,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl TestGateway {
    pub async fn spawn(flavor: Flavor) -> Option<Self> {
        Self::spawn_with(flavor, GatewayConfig::default()).await
    }

    pub async fn spawn_with(flavor: Flavor, config: GatewayConfig) -> Option<Self> {
        Self::spawn_on(TestStore::fresh(flavor).await?, config).await
    }

    /// A gateway over a store made by the test (a small pool, say).
    pub async fn spawn_on(db: TestStore, config: GatewayConfig) -> Option<Self> {
        let keys = domain::testing::keys();
        let core = db.core();
        let shutdown = Shutdown::new();
        let state =
            GatewayState::start(core.clone(), keys.clone(), config, shutdown.clone()).unwrap();
        let (hub, hold_accounts) = (state.hub.clone(), state.hold_accounts.clone());
        let ws_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = format!("ws://{}", ws_listener.local_addr().unwrap());
        tokio::spawn(tidings_gateway::serve(ws_listener, state));
        let api_state = tidings_api::AppState {
            core: core.clone(),
            keys: keys.clone(),
            config: Default::default(),
        };
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = format!("http://{}", api_listener.local_addr().unwrap());
        tokio::spawn(tidings_api::serve(
            api_listener,
            tidings_api::router(api_state),
            shutdown.clone(),
            std::time::Duration::from_secs(10),
        ));
        Some(Self {
            ws,
            api,
            db,
            keys,
            core,
            hub,
            hold_accounts,
            shutdown,
        })
    }

    pub async fn user_with(&self, name: &str, admin: bool) -> (Actor, String) {
        let user: User = domain::testing::user(&self.db, name, admin).await;
        let token = self.keys.issue(&user, TokenType::Access).unwrap();
        (user.into(), token)
    }

    pub async fn user(&self, name: &str) -> (Actor, String) {
        self.user_with(name, false).await
    }

    /// Connects with `?token=` and reads the welcome frame.
    pub async fn connect(&self, token: &str) -> Client {
        let mut client = Client::open(&format!("{}/ws?token={token}", self.ws)).await;
        assert_eq!(client.recv().await["type"], "welcome");
        client
    }

    pub async fn topic(&self, owner: &Actor, name: &str, private: bool) -> domain::model::Topic {
        let name = domain::names::TopicName::parse(name).unwrap();
        self.core.create_topic(owner, &name, private).await.unwrap()
    }

    /// Sends a REST request as `token`; returns status and JSON body.
    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (u16, Value) {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}
