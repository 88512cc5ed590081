//! The `tidings` binary as a user runs it: serve, migrate, user add,
//! user passwd, token.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_tidings");

fn tidings(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", "sqlite://data/tidings.db")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

async fn run(mut command: Command) -> (bool, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Runs `command` with `args`, writing `input` and a newline to its stdin;
/// fails the test unless it succeeds.
async fn with_stdin(mut command: Command, args: &[&str], input: &str) -> std::process::Output {
    command.args(args).stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{input}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stdout of a running server, line by line.
struct Output(tokio::sync::mpsc::UnboundedReceiver<String>);

impl Output {
    fn of(child: &mut Child) -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        Self(rx)
    }

    /// Reads lines until one starts with `prefix`; returns all read.
    async fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut seen = vec![];
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.0.recv())
                .await
                .unwrap();
            let line = line.unwrap_or_else(|| panic!("stdout ended; saw {seen:?}"));
            let done = line.starts_with(prefix);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn serve_prints_where_it_listens_and_admin_can_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = tidings(dir.path());
    command
        .args(["--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"])
        .env("TIDINGS_ADMIN_PASSWORD", "admin-password");
    let mut child = command.spawn().unwrap();
    let mut output = Output::of(&mut child);
    let rest = output.until("REST API:").await.pop().unwrap();
    let base = rest
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches("/api/")
        .to_owned();
    output.until("WebSocket:").await;
    let response = reqwest::Client::new()
        .post(format!("{base}/api/token/"))
        .json(&serde_json::json!({"username":"admin","password":"admin-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: serde_json::Value = response.json().await.unwrap();
    assert!(tokens["access"].is_string() && tokens["refresh"].is_string());
    assert!(
        dir.path().join("data/tidings.db.secret").exists(),
        "the secret is kept beside the database"
    );
    let pid = child.id().unwrap().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "a clean exit on SIGTERM");
}

/// A connection that sends nothing is closed once `--header-timeout`
/// passes, on the REST port and on the WebSocket port alike.
#[tokio::test]
async fn silent_connections_to_either_port_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = tidings(dir.path());
    command.args([
        "--api-addr",
        "127.0.0.1:0",
        "--ws-addr",
        "127.0.0.1:0",
        "--header-timeout",
        "300ms",
    ]);
    let mut child = command.spawn().unwrap();
    let mut output = Output::of(&mut child);
    // "REST API:  http://HOST:PORT/api/  (…)" and "WebSocket: ws://HOST:PORT/ws?…"
    let address = |line: String| {
        let url = line.split_whitespace().find(|w| w.contains("://")).unwrap();
        url.split('/').nth(2).unwrap().to_owned()
    };
    let rest = address(output.until("REST API:").await.pop().unwrap());
    let ws = address(output.until("WebSocket:").await.pop().unwrap());
    for port in [rest, ws] {
        let mut tcp = tokio::net::TcpStream::connect(&port).await.unwrap();
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut received));
        let ended = read
            .await
            .unwrap_or_else(|_| panic!("{port}: still open after 10 s"));
        assert!(ended.is_ok() && received.is_empty(), "{port}: {ended:?}");
    }
}

#[tokio::test]
async fn generated_admin_password_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    for expect_password in [true, false] {
        let mut command = tidings(dir.path());
        command.args(["--api-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0"]);
        let mut child = command.spawn().unwrap();
        let lines = Output::of(&mut child).until("WebSocket:").await;
        let printed = lines
            .iter()
            .any(|l| l.contains("created user `admin` with password"));
        assert_eq!(printed, expect_password, "{lines:?}");
        child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn migrate_user_add_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut migrate = tidings(dir.path());
    migrate.arg("migrate");
    let (ok, out, err) = run(migrate).await;
    assert!(ok, "{err}");
    assert!(out.contains("migrations applied"));

    let out = with_stdin(
        tidings(dir.path()),
        &["user", "add", "bob"],
        "bobs-password",
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user `bob`"));

    let mut token = tidings(dir.path());
    token.args(["token", "bob", "--ttl", "1d"]);
    let (ok, out, err) = run(token).await;
    assert!(ok, "{err}");
    let secret = std::fs::read_to_string(dir.path().join("data/tidings.db.secret")).unwrap();
    let keys = domain::auth::JwtKeys::new(
        secret.trim().as_bytes(),
        Duration::from_secs(1),
        Duration::from_secs(1),
    )
    .unwrap();
    let claims = keys
        .verify(out.trim(), domain::auth::TokenType::Access)
        .unwrap();
    assert_eq!(claims.sub, "bob");
    assert!(claims.exp - claims.iat >= 86_400 - 1);

    let mut unknown = tidings(dir.path());
    unknown.args(["token", "nobody"]);
    let (ok, _, err) = run(unknown).await;
    assert!(!ok && err.contains("no user named nobody"), "{err}");

    // `user passwd`: the way back in. The new password works, the old one
    // and every token issued before do not; `token` then issues good ones.
    with_stdin(
        tidings(dir.path()),
        &["user", "passwd", "bob"],
        "bobs-new-password",
    )
    .await;
    let url = format!("sqlite://{}", dir.path().join("data/tidings.db").display());
    let store = domain::store::Store::connect(&url, 1).await.unwrap();
    let (account, hash) = store.credentials("bob").await.unwrap().unwrap();
    assert!(domain::auth::verify_password("bobs-new-password", &hash));
    assert!(!domain::auth::verify_password("bobs-password", &hash));
    assert_eq!(account.generation, 1, "older tokens are dead");
    assert_ne!(claims.generation, account.generation);
    store.close().await;
    let mut token = tidings(dir.path());
    token.args(["token", "bob"]);
    let (ok, out, err) = run(token).await;
    assert!(ok, "{err}");
    let fresh = keys
        .verify(out.trim(), domain::auth::TokenType::Access)
        .unwrap();
    assert_eq!(fresh.generation, 1);
}

#[tokio::test]
async fn short_secrets_are_refused_and_help_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = tidings(dir.path());
    short.env("JWT_SECRET", "too-short");
    let (ok, _, err) = run(short).await;
    assert!(!ok);
    assert!(err.contains("at least 32 bytes"), "{err}");

    let mut help = tidings(dir.path());
    help.arg("--help")
        .env("JWT_SECRET", "a-secret-that-must-never-be-printed-anywhere");
    let (ok, out, _) = run(help).await;
    assert!(ok);
    assert!(
        out.contains("--jwt-secret") && out.contains("--database-url") && out.contains("--ws-addr")
    );
    assert!(!out.contains("must-never-be-printed"), "{out}");
}
