//! The docker-compose deployment as a user meets it: nginx on :8080 in
//! front of the api and two gateways built from Dockerfile.api and
//! Dockerfile.ws, on PostgreSQL and Redis. `.ci/compose up` starts it and
//! sets `TIDINGS_TEST_COMPOSE_URL`; without it this test is skipped, except
//! under CI, which always runs the stack.

use reqwest::{Client as Http, StatusCode};
use serde_json::{Value, json};

use crate::ws_client::Client;

async fn post(http: &Http, url: String, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_serves_rest_and_sockets_through_nginx() {
    let Ok(base) = std::env::var("TIDINGS_TEST_COMPOSE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start the compose stack (.ci/compose up)"
        );
        eprintln!("skipped: TIDINGS_TEST_COMPOSE_URL is not set");
        return;
    };
    let admin_password = std::env::var("TIDINGS_TEST_COMPOSE_ADMIN_PASSWORD").unwrap();
    let ws = base.replacen("http", "ws", 1);
    let http = Http::new();
    let run = domain::auth::random_secret(6).to_lowercase();
    let (status, login) = post(
        &http,
        format!("{base}/api/token/"),
        None,
        json!({"username":"admin","password": admin_password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let admin = login["access"].as_str().unwrap().to_owned();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let username = format!("{name}{run}");
        let (status, body) = post(
            &http,
            format!("{base}/api/users/"),
            Some(&admin),
            json!({"username": username, "password": "compose-password"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, login) = post(
            &http,
            format!("{base}/api/token/"),
            None,
            json!({"username": username, "password": "compose-password"}),
        )
        .await;
        tokens.push(login["access"].as_str().unwrap().to_owned());
    }
    let (alice, bob) = (&tokens[0], &tokens[1]);
    let topic = format!("deploys{run}");
    let (status, _) = post(
        &http,
        format!("{base}/api/topics/"),
        Some(alice),
        json!({"name": topic}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Two sockets for bob (one per gateway, nginx balancing least_conn),
    // one for alice by path.
    let mut listeners = Vec::new();
    let mut sessions = std::collections::HashSet::new();
    for _ in 0..2 {
        let mut client = Client::open(&format!("{ws}/ws?token={bob}")).await;
        let welcome = client.recv().await;
        assert!(sessions.insert(welcome["session"].as_str().unwrap().to_owned()));
        let reply = client
            .request(json!({"action":"subscribe","topic_name": topic}))
            .await;
        assert_eq!(reply["type"], "subscribed");
        listeners.push(client);
    }
    let mut publisher = Client::open(&format!("{ws}/{alice}")).await;
    assert_eq!(publisher.recv().await["type"], "welcome");
    const TOTAL: i64 = 50;
    for n in 1..=TOTAL {
        publisher
            .send(
                json!({"action":"message","topic_name": topic,"content": format!("m{n}"),"ref": n}),
            )
            .await;
    }
    for n in 1..=TOTAL {
        let ack = publisher.recv().await;
        assert_eq!(
            (
                ack["type"].as_str(),
                ack["ref"].as_i64(),
                ack["seq"].as_i64()
            ),
            (Some("ack"), Some(n), Some(n))
        );
    }
    for listener in &mut listeners {
        for n in 1..=TOTAL {
            let message = listener.recv().await;
            assert_eq!(
                (message["seq"].as_i64(), message["content"].as_str()),
                (Some(n), Some(format!("m{n}").as_str()))
            );
        }
    }
    // A revocation through the api reaches the sockets behind nginx.
    let (status, _) = post(
        &http,
        format!("{base}/api/users/me/password/"),
        Some(alice),
        json!({"old":"compose-password","new":"another compose password"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(publisher.closed().await.0, 4003);
    for listener in &mut listeners {
        listener.expect_quiet().await;
    }
}
