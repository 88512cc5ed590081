//! Pipelined publishing checked against the publisher's own send order.
//!
//! One socket sends rounds of publishes to two topics and a direct
//! conversation, mixed, without waiting for acks. Every check compares
//! with the order the client sent, not only with the server's seqs: the
//! acks, their seqs per target, what each subscriber receives, and the
//! stored history.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::ws_client::Client;

pub const ROUNDS: usize = 4;
pub const PER_ROUND: usize = 300;

/// Where the publisher sends: two topics (the second private) and a
/// direct conversation with the first subscriber.
pub struct Targets {
    pub public: String,
    pub private: String,
    /// The first subscriber's username, as `@name`.
    pub direct: String,
}

impl Targets {
    fn pick(&self, n: usize) -> &str {
        // Not a plain rotation: runs of one target and quick switches.
        match (n * 7 + n / 5) % 3 {
            0 => &self.public,
            1 => &self.private,
            _ => &self.direct,
        }
    }
}

/// What was sent to each target, in send order.
pub type Sent = HashMap<String, Vec<String>>;

/// Publishes [`ROUNDS`] rounds of [`PER_ROUND`] pipelined messages and
/// checks the acks: one per publish, in send order, with seqs that follow
/// send order in each target.
pub async fn publish_rounds(publisher: &mut Client, targets: &Targets) -> Sent {
    let mut sent: Sent = HashMap::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for round in 0..ROUNDS {
        let mut round_sent = Vec::with_capacity(PER_ROUND);
        for i in 0..PER_ROUND {
            let n = round * PER_ROUND + i;
            let target = targets.pick(n).to_owned();
            let content = format!("{target} #{n}");
            publisher
                .send(json!({"action":"message","topic_name":target,"content":content,"ref":n}))
                .await;
            round_sent.push((n, target, content));
        }
        for (n, target, content) in round_sent {
            let ack = publisher.recv().await;
            assert_eq!(ack["type"], "ack", "publish {n}: {ack}");
            assert_eq!(ack["ref"], n, "acks come back in send order");
            let seq = ack["seq"].as_i64().unwrap();
            let previous = last_seq.insert(target.clone(), seq).unwrap_or(0);
            assert_eq!(
                seq,
                previous + 1,
                "publish {n} to {target}: seqs follow send order"
            );
            sent.entry(target).or_default().push(content);
        }
    }
    sent
}

/// Reads `expected` messages from a subscriber and checks that each
/// channel's contents arrive in send order, without gaps or repeats.
/// `label` maps a target to the label this subscriber sees it under.
pub async fn expect_in_send_order(
    subscriber: &mut Client,
    sent: &Sent,
    label: impl Fn(&str) -> Option<String>,
) {
    let mut expected: HashMap<String, &Vec<String>> = HashMap::new();
    for (target, contents) in sent {
        if let Some(label) = label(target) {
            expected.insert(label, contents);
        }
    }
    let total: usize = expected.values().map(|c| c.len()).sum();
    let mut received: HashMap<String, Vec<String>> = HashMap::new();
    let mut last_seq: HashMap<String, i64> = HashMap::new();
    for _ in 0..total {
        let frame = subscriber.recv().await;
        assert_eq!(frame["type"], "message", "{frame}");
        let label = frame["topic"].as_str().unwrap().to_owned();
        let seq = frame["seq"].as_i64().unwrap();
        let previous = last_seq.insert(label.clone(), seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "{label}: no gap, no repeat");
        received
            .entry(label)
            .or_default()
            .push(frame["content"].as_str().unwrap().to_owned());
    }
    for (label, contents) in expected {
        assert_eq!(
            received.get(&label),
            Some(contents),
            "{label}: received in send order"
        );
    }
    subscriber.expect_quiet().await;
}

/// Checks the stored history of each target against send order over REST
/// (`api` is the REST base URL, `token` the publisher's).
pub async fn expect_history_in_send_order(api: &str, token: &str, sent: &Sent) {
    for (target, contents) in sent {
        let path = match target.strip_prefix('@') {
            Some(peer) => format!("/api/direct/{peer}/messages/?limit=1000"),
            None => format!("/api/topics/{target}/messages/?limit=1000"),
        };
        let mut stored: Vec<String> = Vec::new();
        let mut after = 0;
        loop {
            let page: Value = reqwest::Client::new()
                .get(format!("{api}{path}&after={after}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let results = page["results"].as_array().unwrap();
            stored.extend(
                results
                    .iter()
                    .map(|m| m["content"].as_str().unwrap().to_owned()),
            );
            match page["next_after"].as_i64() {
                Some(next) if !results.is_empty() => after = next,
                _ => break,
            }
        }
        assert_eq!(&stored, contents, "{target}: history in send order");
    }
}
