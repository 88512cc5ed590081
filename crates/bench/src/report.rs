//! Measurements and how they are shown: a table for people, one JSON line
//! for machines.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Map, Value, json};

/// Latencies in microseconds, 1 µs to 60 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Per-receiver bookkeeping of which seqs arrived.
#[derive(Debug, Default, Clone)]
pub struct Integrity {
    seen: Vec<bool>,
    highest: u64,
    pub received: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// The last send index seen from each publisher.
    sent: Vec<Option<u64>>,
    /// Messages that arrived before one their publisher sent earlier.
    pub against_send_order: u64,
}

impl Integrity {
    pub fn record(&mut self, seq: u64) {
        let index = seq as usize;
        if self.seen.len() <= index {
            self.seen.resize(index + 1, false);
        }
        if self.seen[index] {
            self.duplicated += 1;
            return;
        }
        self.seen[index] = true;
        self.received += 1;
        if seq < self.highest {
            self.out_of_order += 1;
        }
        self.highest = self.highest.max(seq);
    }

    /// Checks a message (already recorded by seq, and not a duplicate)
    /// against its publisher's own send order.
    pub fn record_sent(&mut self, publisher: u64, n: u64) {
        let index = publisher as usize;
        if self.sent.len() <= index {
            self.sent.resize(index + 1, None);
        }
        if self.sent[index].is_some_and(|last| n <= last) {
            self.against_send_order += 1;
        }
        self.sent[index] = Some(self.sent[index].map_or(n, |last| last.max(n)));
    }

    /// The seqs of `1..=expected` that never arrived, as ranges.
    pub fn missing(&self, expected: u64) -> Vec<(u64, u64)> {
        let mut ranges: Vec<(u64, u64)> = vec![];
        for s in 1..=expected {
            if self.seen.get(s as usize).copied().unwrap_or(false) {
                continue;
            }
            match ranges.last_mut() {
                Some(last) if last.1 + 1 == s => last.1 = s,
                _ => ranges.push((s, s)),
            }
        }
        ranges
    }

    /// How many of `1..=expected` never arrived.
    pub fn lost(&self, expected: u64) -> u64 {
        (1..=expected)
            .filter(|&s| !self.seen.get(s as usize).copied().unwrap_or(false))
            .count() as u64
    }
}

/// CPU seconds this process has used (user + system), from /proc.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds("self").unwrap_or(0.0)
}

/// CPU seconds the processes `pids` have used between two calls: what the
/// server spent on a run, when it runs on this machine.
#[derive(Debug, Clone)]
pub struct ServerCpu {
    pids: Vec<u32>,
    start: f64,
}

impl ServerCpu {
    /// Starts counting; `None` when no pid was given or one cannot be read.
    pub fn start(pids: &[u32]) -> Option<Self> {
        let start = Self::total(pids)?;
        Some(Self {
            pids: pids.to_vec(),
            start,
        })
    }

    /// Seconds used since [`start`](Self::start).
    pub fn seconds(&self) -> Option<f64> {
        Some(Self::total(&self.pids)? - self.start)
    }

    fn total(pids: &[u32]) -> Option<f64> {
        if pids.is_empty() {
            return None;
        }
        pids.iter().map(|pid| cpu_seconds(&pid.to_string())).sum()
    }
}

/// User + system CPU seconds of `/proc/{pid}` (`self` for this process).
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit(')').next()?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    // Clock ticks are 100 a second on Linux.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Resident memory of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One scenario's results, in insertion order.
pub struct Report {
    scenario: &'static str,
    fields: Map<String, Value>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            fields: Map::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// p50/p90/p99/max of a latency histogram (µs), as milliseconds.
    pub fn latency(&mut self, prefix: &str, h: &Histogram<u64>) -> &mut Self {
        let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
        for (name, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99)] {
            self.set(&format!("{prefix}{name}_ms"), ms(h.value_at_quantile(q)));
        }
        self.set(&format!("{prefix}max_ms"), ms(h.max()))
    }

    pub fn rate(&mut self, key: &str, count: u64, over: Duration) -> &mut Self {
        let rate = count as f64 / over.as_secs_f64().max(1e-9);
        self.set(key, (rate * 10.0).round() / 10.0)
    }

    pub fn print(&self) {
        println!("scenario: {}", self.scenario);
        let width = self.fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in &self.fields {
            println!("  {key:<width$}  {value}");
        }
        let mut line = Map::new();
        line.insert("scenario".into(), json!(self.scenario));
        line.extend(self.fields.clone());
        println!("{}", Value::Object(line));
    }
}

#[cfg(test)]
mod tests {
    use super::Integrity;

    #[test]
    fn integrity_counts_duplicates_gaps_and_disorder() {
        let mut i = Integrity::default();
        for seq in [1, 2, 4, 3, 3, 6] {
            i.record(seq);
        }
        assert_eq!(
            (i.received, i.duplicated, i.out_of_order, i.lost(6)),
            (5, 1, 1, 1)
        );
    }

    #[test]
    fn send_order_is_checked_per_publisher() {
        let mut i = Integrity::default();
        // Publisher 0 sent 0, 1, 2; publisher 1 sent 0, 1. Seqs alone
        // cannot tell that 2 overtook 1.
        for (publisher, n) in [(0, 0), (1, 0), (0, 2), (1, 1), (0, 1)] {
            i.record_sent(publisher, n);
        }
        assert_eq!(i.against_send_order, 1);
    }
}
