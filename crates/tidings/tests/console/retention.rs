//! Retention in the browser: tidings.js tells the application where a
//! pruned history starts (no `gap`, no waiting), and the console says so
//! at the top of the conversation.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{Browser, PASSWORD, Server, browser_available};
use crate::{SHOWN, cast, publish, shown};

/// Bob follows `news`, goes away, and comes back after 40 messages of
/// which retention kept the newest 10.
const AWAY_SCRIPT: &str = r#"
const [url, bob, done] = arguments;
(async () => {
  const { Tidings } = await import("/tidings.js");
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const welcomed = (client) => new Promise((resolve) => client.addEventListener("welcome", resolve, { once: true }));
  const client = new Tidings({ url, token: () => bob });
  const events = [];
  client.addEventListener("message", (e) => events.push(["message", e.detail.seq]));
  client.addEventListener("pruned", (e) => events.push(["pruned", e.detail.from, e.detail.to]));
  client.addEventListener("gap", (e) => events.push(["gap", e.detail.after, e.detail.before]));
  let ready = welcomed(client);
  client.connect();
  await ready;
  await client.subscribe("news");
  client.close();
  done({ away: true });
  await new Promise((resolve) => { window.comeBack = resolve; });
  ready = welcomed(client);
  client.connect();
  await ready;
  for (let i = 0; i < 200 && !events.some((e) => e[0] === "message" && e[1] === 40); i++) await wait(50);
  await wait(500);
  window.result = { events };
})().catch((error) => { window.result = { error: String(error) }; });
"#;

#[tokio::test]
async fn tidings_js_and_the_console_show_where_pruned_history_starts() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[("TIDINGS_PRUNE_EVERY", "200ms")]).await;
    cast(&server).await;
    let alice = server.login("alice", PASSWORD).await;
    let bob = server.login("bob", PASSWORD).await;
    let changed = server
        .call(
            Method::PATCH,
            "/api/topics/news/",
            &alice,
            Some(json!({"retention": {"max_count": 10}})),
        )
        .await;
    assert_eq!(changed["retention"]["max_count"], 10);

    let browser = Browser::open().await;
    browser.client.goto(&server.url("/console/")).await.unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", server.ws_port);
    let away = browser
        .client
        .execute_async(AWAY_SCRIPT, vec![json!(url), json!(bob)])
        .await
        .unwrap();
    assert_eq!(away, json!({"away": true}));
    for n in 1..=40 {
        publish(&server, &alice, "news", &format!("m{n}")).await;
    }
    // The pruner runs every 200 ms; history says when it has.
    let mut first_seq = Value::Null;
    for _ in 0..100 {
        let page = server
            .call(Method::GET, "/api/topics/news/messages/", &bob, None)
            .await;
        first_seq = page["first_seq"].clone();
        if first_seq == 31 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(first_seq, 31);
    browser
        .client
        .execute("window.comeBack();", vec![])
        .await
        .unwrap();
    let result = browser
        .until(
            "bob's client to catch up",
            "return window.result ?? null;",
            |v| !v.is_null(),
        )
        .await;
    assert!(result.get("error").is_none(), "{result}");
    let expected: Vec<Value> = std::iter::once(json!(["pruned", 1, 30]))
        .chain((31..=40).map(|seq| json!(["message", seq])))
        .collect();
    assert_eq!(
        result["events"],
        json!(expected),
        "told once, then the rest in order"
    );
    browser.close().await;

    let browser = Browser::open().await;
    browser.log_in(&server, "bob", PASSWORD).await;
    browser.go(&server, "#/topics/news").await;
    let page = browser
        .until("what is kept", SHOWN, |v| shown(v).len() == 10)
        .await;
    let kept: Vec<(i64, String)> = (31..=40).map(|n| (n, format!("m{n}"))).collect();
    assert_eq!(shown(&page), kept);
    browser
        .wait_text(
            ".conversation .pruned",
            "Messages before #31 are no longer kept.",
        )
        .await;
    browser.close().await;
}
