//! The docker-compose deployment as a user meets it: nginx on :8080 in
//! front of the api and two gateways built from Dockerfile.api and
//! Dockerfile.ws, on PostgreSQL and Redis. `deploy/test-compose.sh up` starts it and
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

/// The close code if the server closes within `limit` (0 for a dropped
/// connection), `None` if the socket stays open.
async fn close_within(client: &mut Client, limit: std::time::Duration) -> Option<u16> {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, client.socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => {
                client.until_end().await;
                return Some(frame.map_or(0, |f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(None | Some(Err(_))) => return Some(0),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_stack_serves_rest_and_sockets_through_nginx() {
    let Ok(base) = std::env::var("TIDINGS_TEST_COMPOSE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must start the compose stack (deploy/test-compose.sh up)"
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
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(
        metrics.status(),
        StatusCode::NOT_FOUND,
        "metrics stay inside"
    );
    // The console and its client, from the api through nginx; its sockets
    // go to /ws on the same origin.
    let root = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(root.url().path(), "/console/", "/ redirects to the console");
    assert!(root.text().await.unwrap().contains("app.js"));
    let settings: Value = http
        .get(format!("{base}/console/settings.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["socket"], "/ws");
    let client = http.get(format!("{base}/tidings.js")).send().await.unwrap();
    assert_eq!(client.status(), StatusCode::OK);
    assert!(
        client
            .text()
            .await
            .unwrap()
            .contains("export class Tidings")
    );
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

    // Two sockets for bob, one on each gateway: nginx balances, so
    // connect until both gateways (the first part of a session's name)
    // have one. Then one for alice by path.
    let mut listeners = Vec::new();
    let mut gateways = std::collections::HashSet::new();
    for _ in 0..40 {
        if listeners.len() == 2 {
            break;
        }
        let mut client = Client::open(&format!("{ws}/ws?token={bob}")).await;
        let welcome = client.recv().await;
        let session = welcome["session"].as_str().unwrap();
        let gateway = session.split('-').next().unwrap_or_default().to_owned();
        if !gateways.insert(gateway) {
            client.send(json!({"action":"disconnect"})).await;
            assert_eq!(client.closed().await.0, 1000);
            continue;
        }
        let reply = client
            .request(json!({"action":"subscribe","topic_name": topic}))
            .await;
        assert_eq!(reply["type"], "subscribed");
        listeners.push(client);
    }
    assert_eq!(
        listeners.len(),
        2,
        "nginx reaches both gateways: {gateways:?}"
    );
    // The third token form: the header.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "{ws}/ws"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {bob}").parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut by_header = Client { socket };
    assert_eq!(by_header.recv().await["type"], "welcome");
    drop(by_header);
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
    // A notification reaches every socket of a subscriber.
    let (_, tag) = post(
        &http,
        format!("{base}/api/tags/"),
        Some(&admin),
        json!({"name": format!("t{run}")}),
    )
    .await;
    let (status, _) = post(
        &http,
        format!("{base}/api/subscriptions/"),
        Some(bob),
        json!({"tag": tag["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, note) = post(
        &http,
        format!("{base}/api/notifications/"),
        Some(&admin),
        json!({"tag": tag["id"], "message": "deployed"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for listener in &mut listeners {
        let pushed = listener.recv().await;
        assert_eq!(
            (pushed["type"].as_str(), &pushed["id"]),
            (Some("notification"), &note["id"])
        );
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

    // A gateway restarted: its socket closes with 1001, the client comes
    // back through nginx and misses nothing published meanwhile.
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/test-compose.sh");
    let restart = tokio::process::Command::new("bash")
        .arg(script)
        .args(["restart", "ws1"])
        .status();
    let waits = listeners
        .iter_mut()
        .map(|l| close_within(l, std::time::Duration::from_secs(20)));
    let (restarted, codes) = tokio::join!(restart, futures_util::future::join_all(waits));
    assert!(restarted.unwrap().success());
    assert!(
        codes.contains(&Some(1001)) && codes.contains(&None),
        "{codes:?}"
    );
    // Bob's other device says goodbye too (a user's devices share one
    // position per topic): whatever is published now waits for him.
    for (listener, code) in listeners.iter_mut().zip(&codes) {
        if code.is_none() {
            listener.send(json!({"action":"disconnect"})).await;
            assert_eq!(listener.closed().await.0, 1000);
        }
    }
    let (_, fresh) = post(
        &http,
        format!("{base}/api/token/"),
        None,
        json!({"username": format!("alice{run}"), "password": "another compose password"}),
    )
    .await;
    let alice = fresh["access"].as_str().unwrap().to_owned();
    for n in TOTAL + 1..=TOTAL + 10 {
        let (status, _) = post(
            &http,
            format!("{base}/api/topics/{topic}/messages/"),
            Some(&alice),
            json!({"content": format!("m{n}")}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut back = None;
    for _ in 0..100 {
        if let Ok(Ok((socket, _))) = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio_tungstenite::connect_async(format!("{ws}/ws?token={bob}")),
        )
        .await
        {
            back = Some(Client { socket });
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut back = back.expect("a socket through nginx after the restart");
    assert_eq!(back.recv().await["type"], "welcome");
    for n in TOTAL + 1..=TOTAL + 10 {
        let message = back.recv().await;
        assert_eq!(message["seq"].as_i64(), Some(n), "{message}");
    }
}
