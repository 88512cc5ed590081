//! The project's `nginx.conf`, run by a real nginx in front of the real
//! processes: REST and WebSocket (query and path token) through it.

use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::processes::{free_port, wait_ready};
use crate::ws_client::Client;

/// Stops nginx the way it expects (SIGTERM to the master, which takes its
/// workers down; SIGKILL would orphan them, and orphans keep the test's
/// output pipes open), then waits until the master has exited.
struct StopNginx(u32);

impl Drop for StopNginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.to_string()])
            .status();
        let stat = format!("/proc/{}/stat", self.0);
        for _ in 0..250 {
            let exited = std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            });
            if exited {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The shipped config with its upstreams and port pointed at this test.
fn render(api: &str, gateways: &[String; 2], port: u16) -> String {
    let conf =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../nginx.conf")).unwrap();
    let replace = |conf: String, from: &str, to: &str| {
        assert!(
            conf.contains(from),
            "nginx.conf no longer contains {from:?}"
        );
        conf.replace(from, to)
    };
    let conf = replace(
        conf,
        "server api:8000;",
        &format!("server {};", api.trim_start_matches("http://")),
    );
    let conf = replace(
        conf,
        "server ws1:5000;",
        &format!("server {};", gateways[0]),
    );
    let conf = replace(
        conf,
        "server ws2:5000;",
        &format!("server {};", gateways[1]),
    );
    replace(conf, "listen 80;", &format!("listen 127.0.0.1:{port};"))
}

fn nginx_installed() -> bool {
    if std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI must install nginx");
        eprintln!("skipped: nginx is not installed");
        return false;
    }
    true
}

/// While every gateway is down, sockets through nginx get 502, and no
/// token they carried (in the query or as the path) reaches nginx's
/// access or error log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_nginx_logs_when_gateways_are_down() {
    if !nginx_installed() {
        return;
    }
    let _turn = crate::processes::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let down = [
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    ];
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, render(&down[0], &down, port)).unwrap();
    let global = format!(
        "daemon off; pid {};",
        dir.path().join("nginx.pid").display()
    );
    let (out, err) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let nginx = tokio::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", &global])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stop = StopNginx(nginx.id().unwrap());
    let secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl";
    let front = format!("127.0.0.1:{port}");
    let mut statuses = Vec::new();
    for url in [
        format!("ws://{front}/ws?token={secret}"),
        format!("ws://{front}/{secret}"),
    ] {
        for _ in 0..100 {
            match tokio_tungstenite::connect_async(&url).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                    statuses.push(response.status().as_u16());
                    break;
                }
                // nginx still starting.
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    assert_eq!(statuses, [502, 502]);
    drop(stop);
    let logs = format!(
        "{}{}",
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap()
    );
    assert!(
        logs.contains("502"),
        "the access log records the failures:\n{logs}"
    );
    assert!(
        !logs.contains(secret) && !logs.contains("c2VjcmV0"),
        "a token in nginx's logs:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_websockets_through_nginx() {
    if !nginx_installed() {
        return;
    }
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, render(&cluster.api, &cluster.gateways, port)).unwrap();
    let global = format!(
        "daemon off; pid {};",
        dir.path().join("nginx.pid").display()
    );
    let nginx = tokio::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .args(["-g", &global])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let _stop = StopNginx(nginx.id().unwrap());
    let front = format!("127.0.0.1:{port}");
    // `/readyz` is not an API path, so nginx hands it to a gateway.
    wait_ready(&format!("http://{front}")).await;

    let me: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{front}/api/users/me/"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "alice");
    cluster
        .rest(
            Method::POST,
            "/api/topics/",
            &alice,
            json!({"name":"lobby"}),
        )
        .await;

    let mut by_query = Client::open(&format!("ws://{front}/ws?token={alice}")).await;
    assert_eq!(by_query.recv().await["type"], "welcome");
    by_query
        .request(json!({"action":"subscribe","topic_name":"lobby"}))
        .await;
    let mut by_path = Client::open(&format!("ws://{front}/{bob}")).await;
    assert_eq!(by_path.recv().await["type"], "welcome");
    let ack = by_path
        .request(json!({"action":"message","topic_name":"lobby","content":"via nginx"}))
        .await;
    assert_eq!(ack["type"], "ack");
    let got = by_query.recv().await;
    assert_eq!(
        (got["from"].as_str(), got["content"].as_str()),
        (Some("bob"), Some("via nginx"))
    );
}
