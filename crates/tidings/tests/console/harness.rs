//! What the console tests drive: the real `tidings` binary (killed and
//! restarted at will) and Debian's Chromium through its ChromeDriver.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tidings");
pub const ADMIN_PASSWORD: &str = "console-admin-password";
pub const PASSWORD: &str = "console-user-password";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page gets to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

/// Whether Chromium and its driver are here; without them the test is
/// skipped, except under CI, which must provide them.
pub fn browser_available() -> bool {
    let found = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    assert!(
        found || std::env::var_os("CI").is_none(),
        "CI must provide {CHROMIUM} and {CHROMEDRIVER} (Debian's chromium and chromium-driver)"
    );
    if !found {
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is not installed");
    }
    found
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// The all-in-one on its own data directory and ports, which survive a
/// restart, as they would for a user.
pub struct Server {
    dir: tempfile::TempDir,
    pub api_port: u16,
    pub ws_port: u16,
    extra: Vec<(String, String)>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl Server {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let mut server = Self {
            dir: tempfile::tempdir().unwrap(),
            api_port: free_port(),
            ws_port: free_port(),
            extra: extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            http: reqwest::Client::new(),
        };
        server.spawn().await;
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    /// Starts the process and waits until it says it serves.
    pub async fn spawn(&mut self) {
        let mut command = Command::new(BIN);
        command
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", "sqlite://tidings.db")
            .env("TIDINGS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TIDINGS_API_ADDR", format!("127.0.0.1:{}", self.api_port))
            .env("TIDINGS_WS_ADDR", format!("127.0.0.1:{}", self.ws_port))
            .envs(self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("WebSocket:") {
                    return;
                }
            }
            panic!("tidings exited before serving");
        })
        .await
        .expect("tidings serves within a minute");
        // Keep reading, so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    /// SIGKILL: no goodbye to anyone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    /// A REST call; fails the test unless it answers 2xx.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .http
            .post(self.url("/api/token/"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "login {username}");
        let body: Value = response.json().await.unwrap();
        body["access"].as_str().unwrap().to_owned()
    }

    /// A user with [`PASSWORD`]; returns their id.
    pub async fn user(&self, admin: &str, name: &str) -> i64 {
        let user = self
            .call(
                reqwest::Method::POST,
                "/api/users/",
                admin,
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        user["id"].as_i64().unwrap()
    }
}

/// Headless Chromium driven through its ChromeDriver, with a profile of
/// its own: one "device". Tabs of one browser share its storage.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open() -> Self {
        let port = free_port();
        // A group of its own, so the browser it starts goes with it, even
        // when a failed test never says goodbye.
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let mut attempt = 0;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(err) if attempt < 50 => {
                    attempt += 1;
                    let _ = err;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(err) => panic!("chromedriver: {err}"),
            }
        };
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Opens the console and logs in through its form.
    pub async fn log_in(&self, server: &Server, username: &str, password: &str) {
        self.client.goto(&server.url("/")).await.unwrap();
        self.wait(Locator::Css("form.login")).await;
        self.fill("input[name=username]", username).await;
        self.fill("input[name=password]", password).await;
        self.click("form.login button").await;
        self.wait_text(".who", username).await;
    }

    pub async fn go(&self, server: &Server, hash: &str) {
        self.client
            .goto(&server.url(&format!("/console/{hash}")))
            .await
            .unwrap();
    }

    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.wait(Locator::Css(css)).await;
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.wait(Locator::Css(css)).await.click().await.unwrap();
    }

    /// Waits for an element to exist.
    pub async fn wait(&self, locator: Locator<'_>) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(locator)
            .await
            .unwrap_or_else(|err| panic!("waiting for {locator:?}: {err}"))
    }

    /// Runs `script` (a function body returning a value) until `done`
    /// accepts its result; returns that result.
    pub async fn until(&self, what: &str, script: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.client.execute(script, vec![]).await.unwrap();
            if done(&value) {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("waited {PATIENCE:?} for {what}; last saw {value}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the first element matching `css` shows `text`.
    pub async fn wait_text(&self, css: &str, text: &str) {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        );
        self.until(&format!("{css} to show {text:?}"), &script, |value| {
            value.as_str().is_some_and(|shown| shown.contains(text))
        })
        .await;
    }

    /// The text of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = format!(
            "return [...document.querySelectorAll({})].map(e => e.textContent);",
            json!(css)
        );
        let value = self.client.execute(&script, vec![]).await.unwrap();
        serde_json::from_value(value).unwrap()
    }

    /// Saves a screenshot for the README when `TIDINGS_SCREENSHOTS` is set
    /// (`TIDINGS_SCREENSHOTS=1 cargo test -p tidings --test console`).
    pub async fn screenshot(&self, name: &str) {
        if std::env::var_os("TIDINGS_SCREENSHOTS").is_none() {
            return;
        }
        let png = self.client.screenshot().await.unwrap();
        let path = screenshots().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(group) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/img")
}
