//! `/metrics` on the api and on a gateway after real traffic: every
//! family has HELP and TYPE, and the families an operator watches are
//! there and moved.

use std::collections::{HashMap, HashSet};

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::delivery::connect;

/// A scrape: HELP'd families, TYPE'd families, and each sample's value
/// by its full name with labels.
struct Scrape {
    help: HashSet<String>,
    typed: HashSet<String>,
    samples: HashMap<String, f64>,
}

impl Scrape {
    async fn of(base: &str) -> Self {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut scrape = Scrape {
            help: HashSet::new(),
            typed: HashSet::new(),
            samples: HashMap::new(),
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("#"), Some("HELP"), Some(name)) => {
                    scrape.help.insert(name.to_owned());
                }
                (Some("#"), Some("TYPE"), Some(name)) => {
                    scrape.typed.insert(name.to_owned());
                }
                _ if !line.is_empty() => {
                    let (name, value) = line.rsplit_once(' ').unwrap();
                    scrape
                        .samples
                        .insert(name.to_owned(), value.parse().unwrap());
                }
                _ => {}
            }
        }
        scrape
    }

    /// The sum of a family's samples whose name and labels contain `part`.
    fn sum(&self, family: &str, part: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(name, _)| {
                (name.as_str() == family || name.starts_with(&format!("{family}{{")))
                    && name.contains(part)
            })
            .map(|(_, value)| value)
            .sum()
    }

    fn assert_described(&self, who: &str) {
        assert!(!self.typed.is_empty(), "{who}: no families");
        let missing: Vec<_> = self.typed.difference(&self.help).collect();
        assert!(
            missing.is_empty(),
            "{who}: families without HELP: {missing:?}"
        );
    }

    fn assert_moved(&self, who: &str, family: &str, part: &str, at_least: f64) {
        let value = self.sum(family, part);
        assert!(
            value >= at_least,
            "{who}: {family} [{part}] is {value}, expected at least {at_least}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_processes_describe_and_count_what_operators_watch() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let http = reqwest::Client::new();
    // One login that works, one that does not, one request without a token.
    for (password, status) in [
        (domain::testing::TEST_PASSWORD, 200),
        ("wrong-password", 401),
    ] {
        let response = http
            .post(format!("{}/api/token/", cluster.api))
            .json(&json!({"username":"alice","password":password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
    }
    let anonymous = http
        .get(format!("{}/api/users/me/", cluster.api))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    cluster
        .rest(Method::POST, "/api/topics/", &alice, json!({"name":"feed"}))
        .await;
    let mut listener = connect(&cluster.gateways[0], &bob).await;
    listener
        .request(json!({"action":"subscribe","topic_name":"feed"}))
        .await;
    for n in 0..5 {
        cluster
            .rest(
                Method::POST,
                "/api/topics/feed/messages/",
                &alice,
                json!({"content": format!("m{n}")}),
            )
            .await;
        assert_eq!(listener.recv().await["content"], format!("m{n}"));
    }
    let api = Scrape::of(&cluster.api).await;
    // Sessions hand their frame counts over every 250 ms.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let gateway = loop {
        let scrape = Scrape::of(&format!("http://{}", cluster.gateways[0])).await;
        if scrape.sum("ws_deliveries_total", "") >= 5.0 || tokio::time::Instant::now() > deadline {
            break scrape;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    api.assert_described("api");
    gateway.assert_described("gateway");
    for (who, scrape) in [("api", &api), ("gateway", &gateway)] {
        scrape.assert_moved(who, "process_resident_memory_bytes", "", 1.0);
        scrape.assert_moved(who, "process_open_fds", "", 1.0);
        assert!(
            scrape.typed.contains("process_cpu_seconds_total"),
            "{who}: CPU"
        );
        assert!(
            scrape
                .samples
                .keys()
                .any(|k| k.contains("tidings_db_pool_connections")),
            "{who}: pool"
        );
    }
    api.assert_moved("api", "http_requests_total", "status=\"201\"", 6.0);
    api.assert_moved("api", "tidings_logins_total", "outcome=\"ok\"", 1.0);
    api.assert_moved("api", "tidings_logins_total", "wrong_credentials", 1.0);
    api.assert_moved("api", "tidings_auth_failures_total", "missing", 1.0);
    api.assert_moved("api", "tidings_messages_stored_total", "", 5.0);
    api.assert_moved("api", "tidings_commit_batch_size_count", "", 1.0);
    api.assert_moved("api", "tidings_commit_duration_seconds_count", "", 1.0);
    api.assert_moved("api", "tidings_bus_published_total", "", 5.0);
    gateway.assert_moved("gateway", "ws_connections", "", 1.0);
    gateway.assert_moved("gateway", "ws_handshakes_total", "ok", 1.0);
    gateway.assert_moved("gateway", "ws_deliveries_total", "", 5.0);
    gateway.assert_moved("gateway", "ws_delivery_latency_seconds_count", "", 1.0);
    gateway.assert_moved("gateway", "tidings_bus_received_total", "", 5.0);
    for family in [
        "ws_slow_consumer_closes_total",
        "ws_hold_allowance_spent_total",
        "ws_resyncs_total",
        "tidings_bus_reconnects_total",
    ] {
        assert!(gateway.help.contains(family), "gateway: {family}");
    }
    dashboard_uses_only_families_that_exist(&api, &gateway);
}

/// Every family the Grafana dashboard queries is one these processes
/// expose (a renamed metric would leave a panel silently empty).
fn dashboard_uses_only_families_that_exist(api: &Scrape, gateway: &Scrape) {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/tidings.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let exposed: HashSet<&String> = api.typed.union(&gateway.typed).collect();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !["ws_", "tidings_", "http_", "process_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                {
                    continue;
                }
                let family = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .unwrap_or(word);
                assert!(
                    exposed.contains(&family.to_owned()),
                    "the dashboard's {:?} queries {family}, which no process exposes",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "the dashboard queries {checked} families");
}
