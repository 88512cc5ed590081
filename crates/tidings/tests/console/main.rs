//! The web console and tidings.js in real Chromium, against the real
//! all-in-one binary: logging in, live messages and history, the inbox
//! kept the same across tabs and reloads, a server killed and restarted,
//! expired and revoked credentials, and the admin screens.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod harness;
mod retention;

use std::time::Duration;

use harness::{ADMIN_PASSWORD, Browser, PASSWORD, Server, browser_available};
use reqwest::Method;
use serde_json::{Value, json};

/// The seqs and contents shown in the open conversation, top to bottom.
pub(crate) const SHOWN: &str = "return [...document.querySelectorAll('ol.messages li')]\
    .map(li => [Number(li.dataset.seq), li.querySelector('.content').textContent]);";

pub(crate) fn shown(value: &Value) -> Vec<(i64, String)> {
    serde_json::from_value(value.clone()).unwrap()
}

/// An admin token, alice and bob, and a public topic `news` alice is in.
pub(crate) async fn cast(server: &Server) -> String {
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    server.user(&admin, "alice").await;
    server.user(&admin, "bob").await;
    let alice = server.login("alice", PASSWORD).await;
    server
        .call(
            Method::POST,
            "/api/topics/",
            &alice,
            Some(json!({"name": "news"})),
        )
        .await;
    admin
}

pub(crate) async fn publish(server: &Server, token: &str, topic: &str, content: &str) -> Value {
    server
        .call(
            Method::POST,
            &format!("/api/topics/{topic}/messages/"),
            token,
            Some(json!({"content": content})),
        )
        .await
}

#[tokio::test]
async fn logs_in_reads_history_by_page_and_sees_messages_live() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[]).await;
    cast(&server).await;
    let bob = server.login("bob", PASSWORD).await;
    for n in 1..=45 {
        publish(&server, &bob, "news", &format!("old {n}")).await;
    }
    let browser = Browser::open().await;
    // A wrong password says so and stays on the form.
    browser.client.goto(&server.url("/")).await.unwrap();
    browser.fill("input[name=username]", "alice").await;
    browser.fill("input[name=password]", "wrong-password").await;
    browser.click("form.login button").await;
    browser.wait_text(".problem", "").await;
    browser.log_in(&server, "alice", PASSWORD).await;
    browser.wait_text(".status", "Live").await;

    browser.go(&server, "#/topics/news").await;
    // The newest page first: 16 to 45.
    let page = browser
        .until("the newest page", SHOWN, |v| shown(v).len() == 30)
        .await;
    assert_eq!(shown(&page)[0], (16, "old 16".into()));
    browser.click("button.more").await;
    let all = browser
        .until("the page before", SHOWN, |v| shown(v).len() == 45)
        .await;
    let expected: Vec<(i64, String)> = (1..=45).map(|n| (n, format!("old {n}"))).collect();
    assert_eq!(shown(&all), expected);

    // Published over REST by someone else: shown live, in order.
    for n in 1..=5 {
        publish(&server, &bob, "news", &format!("live {n}")).await;
    }
    let live = browser
        .until("the live messages", SHOWN, |v| shown(v).len() == 50)
        .await;
    let tail: Vec<(i64, String)> = (1..=5).map(|n| (45 + n, format!("live {n}"))).collect();
    assert_eq!(shown(&live)[45..], tail[..]);

    // And written in the console: acked, shown as alice's, received by bob's history.
    browser
        .fill("form.composer input", "from the browser")
        .await;
    browser.click("form.composer button").await;
    browser
        .wait_text("ol.messages li.mine .content", "from the browser")
        .await;
    let history = server
        .call(
            Method::GET,
            "/api/topics/news/messages/?after=50",
            &bob,
            None,
        )
        .await;
    assert_eq!(history["results"][0]["content"], "from the browser");
    assert_eq!(history["results"][0]["from"], "alice");
    browser.screenshot("console-topic").await;

    // Text stays text: markup in a message is shown, never run.
    let hostile = r#"<img src=x onerror="window.pwned=1"><b>bold</b>"#;
    publish(&server, &bob, "news", hostile).await;
    browser
        .wait_text("ol.messages li:last-child .content", hostile)
        .await;
    let injected = browser
        .client
        .execute(
            "return [document.querySelectorAll('ol.messages img, ol.messages b').length, window.pwned ?? null];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!([0, null]));
    browser.close().await;
}

#[tokio::test]
async fn the_inbox_counts_arrivals_and_stays_the_same_across_tabs_and_reloads() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[]).await;
    let admin = cast(&server).await;
    let tag = server
        .call(
            Method::POST,
            "/api/tags/",
            &admin,
            Some(json!({"name": "deploys"})),
        )
        .await;
    let alice_id = server
        .call(
            Method::GET,
            "/api/users/me/",
            &server.login("alice", PASSWORD).await,
            None,
        )
        .await["id"]
        .clone();
    server
        .call(
            Method::POST,
            "/api/subscriptions/",
            &admin,
            Some(json!({"user": alice_id, "tag": tag["id"]})),
        )
        .await;

    let browser = Browser::open().await;
    browser.log_in(&server, "alice", PASSWORD).await;
    browser.go(&server, "#/inbox").await;
    browser.wait_text(".status", "Live").await;
    let first_tab = browser.client.window().await.unwrap();
    let second_tab = browser.client.new_window(true).await.unwrap().handle;
    browser
        .client
        .switch_to_window(second_tab.clone())
        .await
        .unwrap();
    browser.go(&server, "#/inbox").await;
    browser.wait_text(".status", "Live").await;

    let notify = |message: &'static str| {
        let (server, admin, tag) = (&server, &admin, tag["id"].clone());
        async move {
            server
                .call(
                    Method::POST,
                    "/api/notifications/",
                    admin,
                    Some(json!({"message": message, "tag": tag})),
                )
                .await
        }
    };
    notify("v1 is out").await;
    notify("v2 is out").await;
    for tab in [&first_tab, &second_tab] {
        browser.client.switch_to_window(tab.clone()).await.unwrap();
        browser.wait_text("#unread", "2").await;
        browser
            .wait_text("ul.inbox li.unread .content", "v2 is out")
            .await;
    }
    browser.screenshot("console-inbox").await;

    // Marked read in the first tab: the second follows, by the server's push.
    browser
        .client
        .switch_to_window(first_tab.clone())
        .await
        .unwrap();
    let newest = browser
        .until(
            "the newest item",
            "return document.querySelector('ul.inbox li').dataset.id",
            Value::is_string,
        )
        .await;
    browser
        .click(&format!(
            "ul.inbox li[data-id='{}'] .mark",
            newest.as_str().unwrap()
        ))
        .await;
    browser
        .client
        .switch_to_window(second_tab.clone())
        .await
        .unwrap();
    let read_state =
        "return [...document.querySelectorAll('ul.inbox li')].map(li => li.className);";
    browser
        .until("the second tab to show it read", read_state, |v| {
            v == &json!(["read", "unread"])
        })
        .await;
    browser.wait_text("#unread", "1").await;

    // A reload keeps the session and the state.
    browser.client.refresh().await.unwrap();
    browser.wait_text(".who", "alice").await;
    browser
        .until("the reloaded inbox", read_state, |v| {
            v == &json!(["read", "unread"])
        })
        .await;
    browser.wait_text("#unread", "1").await;

    // Read-all in the second tab empties the count in the first.
    browser.click("#read-all").await;
    browser.client.switch_to_window(first_tab).await.unwrap();
    browser
        .until("read-all in the other tab", read_state, |v| {
            v == &json!(["read", "read"])
        })
        .await;
    browser
        .until(
            "the badge to go",
            "return document.querySelector('#unread').hidden",
            |v| v == &json!(true),
        )
        .await;
    // Deleted in this tab: gone in the other.
    browser.click("ul.inbox li .remove").await;
    browser.client.switch_to_window(second_tab).await.unwrap();
    browser
        .until("the delete in the other tab", read_state, |v| {
            v == &json!(["read"])
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_killed_and_restarted_server_is_reconnected_to_with_nothing_missing() {
    if !browser_available() {
        return;
    }
    let mut server = Server::start(&[]).await;
    cast(&server).await;
    let browser = Browser::open().await;
    browser.log_in(&server, "alice", PASSWORD).await;
    browser.go(&server, "#/topics/news").await;
    browser.wait_text(".status", "Live").await;
    let bob = server.login("bob", PASSWORD).await;
    for n in 1..=3 {
        publish(&server, &bob, "news", &format!("before {n}")).await;
    }
    browser
        .until("the first messages", SHOWN, |v| shown(v).len() == 3)
        .await;

    server.kill().await;
    browser.wait_text(".status", "Reconnecting").await;
    server.spawn().await;
    // Published the moment the server is back, before the browser is.
    for n in 1..=20 {
        publish(&server, &bob, "news", &format!("after {n}")).await;
    }
    browser.wait_text(".status", "Live").await;
    for n in 21..=25 {
        publish(&server, &bob, "news", &format!("after {n}")).await;
    }
    let all = browser
        .until("everything, once", SHOWN, |v| shown(v).len() >= 28)
        .await;
    let expected: Vec<(i64, String)> = (1..=3)
        .map(|n| format!("before {n}"))
        .chain((1..=25).map(|n| format!("after {n}")))
        .enumerate()
        .map(|(i, content)| (i as i64 + 1, content))
        .collect();
    assert_eq!(
        shown(&all),
        expected,
        "in bob's order, none missing or twice"
    );
    // Settled: nothing more arrives later (a duplicate would).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        shown(&browser.client.execute(SHOWN, vec![]).await.unwrap()),
        expected
    );
    browser.close().await;
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_a_revoked_one_signs_out() {
    if !browser_available() {
        return;
    }
    // Access tokens die after 3 s: the socket closes with 4001 and the
    // client refreshes and comes back by itself.
    let server = Server::start(&[("TIDINGS_ACCESS_TTL", "3s")]).await;
    cast(&server).await;
    let browser = Browser::open().await;
    browser.log_in(&server, "alice", PASSWORD).await;
    browser.go(&server, "#/topics/news").await;
    browser.wait_text(".status", "Live").await;
    let sessions = "return window.performance.getEntriesByType('resource')\
        .filter(e => e.name.includes('/api/token/refresh')).length;";
    browser
        .until("two refreshes", sessions, |v| v.as_u64() >= Some(2))
        .await;
    browser.wait_text(".status", "Live").await;
    let bob = server.login("bob", PASSWORD).await;
    publish(&server, &bob, "news", "after the refreshes").await;
    browser
        .wait_text("ol.messages li .content", "after the refreshes")
        .await;

    // The admin resets alice's password: her socket closes with 4003 and
    // the console signs out, in every tab.
    let admin = server.login("admin", ADMIN_PASSWORD).await;
    let alice_id = server
        .call(Method::GET, "/api/users/?page_size=100", &admin, None)
        .await["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "alice")
        .unwrap()["id"]
        .clone();
    server
        .call(
            Method::POST,
            &format!("/api/users/{alice_id}/password/"),
            &admin,
            Some(json!({"new": "a-brand-new-password"})),
        )
        .await;
    browser.wait(fantoccini::Locator::Css("form.login")).await;
    browser.close().await;
}

#[tokio::test]
async fn admins_manage_users_tags_notifications_and_read_the_audit_log() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[]).await;
    cast(&server).await;
    let browser = Browser::open().await;
    browser.log_in(&server, "admin", ADMIN_PASSWORD).await;

    browser.go(&server, "#/admin/users").await;
    browser
        .fill("form.inline input[name=username]", "carol")
        .await;
    browser
        .fill("form.inline input[name=password]", PASSWORD)
        .await;
    browser.click("form.inline button").await;
    browser.wait_text("tr[data-user=carol]", "active").await;
    browser.click("tr[data-user=carol] .toggle").await;
    browser.wait_text("tr[data-user=carol]", "disabled").await;
    let refused = server
        .http
        .post(server.url("/api/token/"))
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "disabled in the console: no login");
    browser.screenshot("console-admin-users").await;

    browser.go(&server, "#/admin/tags").await;
    browser.fill("form.inline input[name=name]", "alerts").await;
    browser.click("form.inline button").await;
    browser
        .wait(fantoccini::Locator::Css("li[data-tag=alerts]"))
        .await;

    // alice follows the tag, then the admin sends to it from the console.
    let alice = server.login("alice", PASSWORD).await;
    let tags = server.call(Method::GET, "/api/tags/", &alice, None).await;
    let me = server
        .call(Method::GET, "/api/users/me/", &alice, None)
        .await;
    server
        .call(
            Method::POST,
            "/api/subscriptions/",
            &alice,
            Some(json!({"user": me["id"], "tag": tags[0]["id"]})),
        )
        .await;
    browser.go(&server, "#/admin/notify").await;
    browser
        .until(
            "the tag in the list",
            "return document.querySelector('select[name=tag]').options.length",
            |v| v == &json!(1),
        )
        .await;
    browser
        .fill("textarea[name=message]", "disk almost full")
        .await;
    browser.click("form.stack button").await;
    browser.wait_text(".toast", "Notification sent").await;
    let inbox = server
        .call(Method::GET, "/api/notifications/", &alice, None)
        .await;
    assert_eq!(
        inbox["results"][0]["notification"]["message"],
        "disk almost full"
    );

    browser.go(&server, "#/admin/audit").await;
    browser.fill("input[name=resource]", "user").await;
    browser.click("form.inline button").await;
    browser.wait_text("table.audit tbody", "is_active").await;
    browser.screenshot("console-admin-audit").await;
    browser.close().await;

    // Not an admin: the screens say so and the API refuses anyway.
    let browser = Browser::open().await;
    browser.log_in(&server, "alice", PASSWORD).await;
    let links = browser.texts("nav a").await;
    assert!(!links.iter().any(|l| l.contains("Admin")), "{links:?}");
    browser.go(&server, "#/admin/users").await;
    browser.wait_text("main .problem", "Admins only").await;
    browser.close().await;
}

/// tidings.js on its own, in the page: 200 publishes pipelined on one
/// socket, acked by `ref` in the order sent; two sockets of one user (two
/// tabs) both get everything in that order; one tab away while the other
/// reads resumes with `since` and misses nothing, while more is published
/// live around its return.
const CLIENT_SCRIPT: &str = r#"
const [url, alice, bob, done] = arguments;
(async () => {
  const { Tidings } = await import("/tidings.js");
  const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (what, test) => {
    for (let i = 0; i < 400; i++) { if (test()) return; await wait(50); }
    throw new Error(`timed out waiting for ${what}`);
  };
  const welcomed = (client) => new Promise((resolve) => client.addEventListener("welcome", resolve, { once: true }));
  const open = async (token) => {
    const client = new Tidings({ url, token: () => token });
    const ready = welcomed(client);
    client.connect();
    await ready;
    return client;
  };
  const log = (client) => {
    const seen = [];
    client.addEventListener("message", (event) => seen.push([event.detail.seq, event.detail.content]));
    return seen;
  };
  const publisher = await open(alice);
  const tab1 = await open(bob);
  const tab2 = await open(bob);
  const got1 = log(tab1), got2 = log(tab2);
  await tab1.subscribe("news");
  await tab2.subscribe("news");
  const send = (prefix, count) =>
    Promise.all(Array.from({ length: count }, (_, i) => publisher.publish("news", `${prefix}${i}`)));
  const first = await send("p", 200);
  await until("200 in both tabs", () => got1.length >= 200 && got2.length >= 200);
  tab2.close();
  const away = await send("q", 50);
  await until("tab 1 to read what tab 2 missed", () => got1.length >= 250);
  // The server's next ping, answered by tab 1's browser, proves tab 1 has
  // those 50: from then on they count as delivered to bob, and a new
  // socket of bob's is not sent them again. Only `since` brings them back.
  await wait(2000);
  const back = welcomed(tab2);
  tab2.connect();
  const live = send("r", 10);
  await back;
  const around = await live;
  await until("everything in both tabs", () => got1.length >= 260 && got2.length >= 260);
  await wait(500);
  done({ acks: [...first, ...away, ...around].map((ack) => ack.seq), got1, got2 });
})().catch((error) => done({ error: String(error) }));
"#;

#[tokio::test]
async fn tidings_js_pipelines_in_order_and_resumes_a_tab_with_since() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[]).await;
    cast(&server).await;
    let alice = server.login("alice", PASSWORD).await;
    let bob = server.login("bob", PASSWORD).await;
    let browser = Browser::open().await;
    browser.client.goto(&server.url("/console/")).await.unwrap();
    let url = format!("ws://127.0.0.1:{}/ws", server.ws_port);
    let result = browser
        .client
        .execute_async(CLIENT_SCRIPT, vec![json!(url), json!(alice), json!(bob)])
        .await
        .unwrap();
    assert!(result.get("error").is_none(), "{result}");
    let acks: Vec<i64> = serde_json::from_value(result["acks"].clone()).unwrap();
    assert_eq!(
        acks,
        (1..=260).collect::<Vec<_>>(),
        "acks in the order sent"
    );
    let expected: Vec<(i64, String)> = (0..200)
        .map(|i| format!("p{i}"))
        .chain((0..50).map(|i| format!("q{i}")))
        .chain((0..10).map(|i| format!("r{i}")))
        .enumerate()
        .map(|(i, content)| (i as i64 + 1, content))
        .collect();
    for tab in ["got1", "got2"] {
        let got: Vec<(i64, String)> = serde_json::from_value(result[tab].clone()).unwrap();
        assert_eq!(got, expected, "{tab}: in the order sent, once each");
    }
    browser.close().await;
}

#[tokio::test]
async fn direct_messages_between_two_browsers() {
    if !browser_available() {
        return;
    }
    let server = Server::start(&[]).await;
    cast(&server).await;
    let (alice, bob) = (Browser::open().await, Browser::open().await);
    alice.log_in(&server, "alice", PASSWORD).await;
    bob.log_in(&server, "bob", PASSWORD).await;
    bob.wait_text(".status", "Live").await;

    alice.go(&server, "#/direct").await;
    alice.fill("form.inline input[name=username]", "bob").await;
    alice.click("form.inline button").await;
    alice.wait_text(".room-head h2", "bob").await;
    alice.wait_text(".status", "Live").await;
    for text in ["hi bob", "are you there?"] {
        alice.fill("form.composer input", text).await;
        alice.click("form.composer button").await;
        alice
            .wait_text("ol.messages li:last-child .content", text)
            .await;
    }
    // Bob, elsewhere in the console, is told, and finds the conversation.
    bob.wait_text(".toast", "alice: hi bob").await;
    bob.go(&server, "#/direct").await;
    bob.click("ul.topics a").await;
    bob.until("alice's messages", SHOWN, |v| shown(v).len() == 2)
        .await;
    bob.fill("form.composer input", "here!").await;
    bob.click("form.composer button").await;
    let expected = vec![
        (1, "hi bob".to_owned()),
        (2, "are you there?".to_owned()),
        (3, "here!".to_owned()),
    ];
    let seen = alice
        .until("bob's answer, live", SHOWN, |v| shown(v).len() == 3)
        .await;
    assert_eq!(shown(&seen), expected);
    assert_eq!(
        shown(&bob.client.execute(SHOWN, vec![]).await.unwrap()),
        expected
    );
    alice.close().await;
    bob.close().await;
}
