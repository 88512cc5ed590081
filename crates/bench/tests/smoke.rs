//! A tiny run of every scenario against a real server (REST API and
//! gateway on a temporary SQLite store), so the tool never rots. No timing
//! is asserted; only that each scenario completes and loses nothing.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use domain::auth::JwtKeys;
use domain::bus::LocalBus;
use domain::service::{Core, Limits};
use domain::store::Store;
use ops::shutdown::Shutdown;
use serde_json::Value;
use tidings_gateway::{GatewayConfig, GatewayState};

const SECRET: &str = "a-bench-smoke-test-secret-of-32-bytes";

struct Server {
    args: Vec<String>,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Store::connect(&url, 4).await.unwrap();
    let core = Core::new(store, Arc::new(LocalBus::default()), Limits::default());
    let keys = Arc::new(
        JwtKeys::new(
            SECRET.as_bytes(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .unwrap(),
    );
    let shutdown = Shutdown::new();
    let config = GatewayConfig {
        publish_rate: 1_000_000,
        publish_burst: 1_000_000,
        ..GatewayConfig::default()
    };
    let gateway =
        GatewayState::start(core.clone(), keys.clone(), config, shutdown.clone()).unwrap();
    let ws = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let args = vec![
        "--api".into(),
        format!("http://{}", api.local_addr().unwrap()),
        "--ws".into(),
        format!("ws://{}", ws.local_addr().unwrap()),
        "--database-url".into(),
        url,
        "--jwt-secret".into(),
        SECRET.into(),
        "--source-addresses".into(),
        "4".into(),
    ];
    tokio::spawn(tidings_gateway::serve(ws, gateway));
    let state = tidings_api::AppState {
        core,
        keys,
        config: Default::default(),
    };
    tokio::spawn(tidings_api::serve(
        api,
        tidings_api::router(state),
        shutdown.clone(),
        std::time::Duration::from_secs(10),
    ));
    Server {
        args,
        shutdown,
        _dir: dir,
    }
}

/// Runs one scenario and returns its JSON line.
async fn bench(server: &Server, scenario: &[&str]) -> Value {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings-bench"));
    command.args(&server.args).args(scenario);
    run(command, scenario).await
}

/// Runs the tool and returns its JSON line, which must report nothing
/// lost, repeated, reordered, missing or failed.
async fn run(mut command: tokio::process::Command, scenario: &[&str]) -> Value {
    let output = command.output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{scenario:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    let report: Value =
        serde_json::from_str(line).unwrap_or_else(|_| panic!("no JSON line in {stdout}"));
    for key in [
        "lost",
        "duplicated",
        "out_of_order",
        "against_send_order",
        "missing",
        "failed",
    ] {
        if let Some(n) = report.get(key) {
            assert_eq!(n, 0, "{scenario:?}: {key} in {report}");
        }
    }
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs() {
    let server = server().await;
    let fanout = bench(
        &server,
        &[
            "fanout",
            "--subscribers",
            "3",
            "--publishers",
            "2",
            "--messages",
            "5",
        ],
    )
    .await;
    assert_eq!(fanout["deliveries"], 30);
    let paced = bench(
        &server,
        &[
            "fanout",
            "--subscribers",
            "2",
            "--messages",
            "5",
            "--rate",
            "100",
        ],
    )
    .await;
    assert_eq!(paced["deliveries"], 10);
    let topics = bench(&server, &["topics", "--pairs", "2", "--messages", "3"]).await;
    assert_eq!(topics["deliveries"], 6);
    let notify = bench(
        &server,
        &[
            "notify",
            "--subscribers",
            "5",
            "--online",
            "2",
            "--notifications",
            "2",
        ],
    )
    .await;
    assert_eq!(notify["notifications"], 2);
    let inbox = bench(
        &server,
        &["inbox", "--notifications", "10", "--requests", "2"],
    )
    .await;
    assert_eq!(inbox["requests"], 2);
    let backlog = bench(&server, &["backlog", "--messages", "20"]).await;
    assert_eq!(backlog["received"], 20);
    let pid = std::process::id().to_string();
    let idle_args = [
        "idle",
        "--connections",
        "5",
        "--users",
        "2",
        "--hold",
        "10ms",
    ];
    let idle = bench(&server, &[&idle_args[..], &["--server-pid", &pid]].concat()).await;
    assert_eq!(idle["connections"], 5);
    let busy = bench(&server, &[&idle_args[..], &["--burst", "3"]].concat()).await;
    assert_eq!(
        (busy["connections"].clone(), busy["burst"].clone()),
        (5.into(), 3.into())
    );
    let connect = bench(
        &server,
        &["connect", "--connections", "10", "--concurrency", "3"],
    )
    .await;
    assert_eq!(connect["connections"], 10);
}

/// Handshakes against a reference server need no store: the tool runs
/// from a directory with no database or secret in it, and creates none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_handshakes_need_no_store() {
    use futures_util::StreamExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await {
                    while let Some(Ok(_)) = ws.next().await {}
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let scenario = [
        "connect",
        "--bare",
        "--connections",
        "10",
        "--concurrency",
        "3",
    ];
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings-bench"));
    command
        .current_dir(dir.path())
        .args(["--ws", &format!("ws://{addr}")])
        .args(scenario);
    let report = run(command, &scenario).await;
    assert_eq!(report["connections"], 10);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the tool wrote files: {left:?}");
}
