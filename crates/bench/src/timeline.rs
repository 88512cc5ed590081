//! Deliveries over the course of a run, in 100-ms steps: how many arrived,
//! how many took longer than 50 ms, and the slowest. A percentile says
//! how long the tail is; the timeline says when it came (the first
//! burst, or a pause in the middle, which on a shared host is often the
//! disk's flush or another process, not the server).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// The width of a step.
const STEP_NANOS: u64 = 100_000_000;
/// Deliveries are kept in finer slots until the run's start is known, so
/// steps can begin at the start.
const SLOT_NANOS: u64 = 10_000_000;
/// A delivery slower than this counts as slow.
const SLOW_MICROS: u64 = 50_000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Step {
    deliveries: u64,
    slow: u64,
    max_micros: u64,
}

/// Slots keyed by the arrival time's slot on the clock messages carry
/// ([`crate::client::now_nanos`]); the run's start is given when writing.
#[derive(Debug, Default)]
pub struct Timeline {
    slots: BTreeMap<u64, Step>,
}

impl Step {
    fn add(&mut self, other: Step) {
        self.deliveries += other.deliveries;
        self.slow += other.slow;
        self.max_micros = self.max_micros.max(other.max_micros);
    }
}

impl Timeline {
    /// One delivery that arrived at `at_nanos` and took `latency_micros`.
    pub fn record(&mut self, at_nanos: u64, latency_micros: u64) {
        self.slots
            .entry(at_nanos / SLOT_NANOS)
            .or_default()
            .add(Step {
                deliveries: 1,
                slow: u64::from(latency_micros > SLOW_MICROS),
                max_micros: latency_micros,
            });
    }

    pub fn merge(&mut self, other: Timeline) {
        for (at, theirs) in other.slots {
            self.slots.entry(at).or_default().add(theirs);
        }
    }

    /// Writes CSV, one line per step from the run's start (`started_nanos`,
    /// on the same clock) to the last delivery, empty steps included.
    pub fn write(&self, path: &Path, started_nanos: u64) -> std::io::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        self.write_to(&mut out, started_nanos)?;
        out.flush()
    }

    fn write_to(&self, out: &mut impl Write, started_nanos: u64) -> std::io::Result<()> {
        writeln!(out, "ms,deliveries,over_50ms,max_ms")?;
        let mut steps: BTreeMap<u64, Step> = BTreeMap::new();
        for (slot, step) in &self.slots {
            let since = (slot * SLOT_NANOS).saturating_sub(started_nanos);
            steps.entry(since / STEP_NANOS).or_default().add(*step);
        }
        let Some(&last) = steps.keys().next_back() else {
            return Ok(());
        };
        for at in 0..=last {
            let step = steps.get(&at).copied().unwrap_or_default();
            writeln!(
                out,
                "{},{},{},{:.1}",
                at * STEP_NANOS / 1_000_000,
                step.deliveries,
                step.slow,
                step.max_micros as f64 / 1000.0
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(timeline: &Timeline, started_nanos: u64) -> String {
        let mut out = Vec::new();
        timeline.write_to(&mut out, started_nanos).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn steps_count_merge_and_fill_the_gaps_from_the_start() {
        let start = 5 * STEP_NANOS + 3 * SLOT_NANOS;
        let mut a = Timeline::default();
        a.record(start + 10, 2_000);
        a.record(start + 20, 80_000);
        let mut b = Timeline::default();
        b.record(start + 2 * STEP_NANOS, 120_500);
        b.record(start + 20, 1_000);
        a.merge(b);
        assert_eq!(
            written(&a, start),
            "ms,deliveries,over_50ms,max_ms\n0,3,1,80.0\n100,0,0,0.0\n200,1,1,120.5\n"
        );
    }

    #[test]
    fn steps_begin_at_the_start_not_on_the_clock() {
        // The run starts halfway through a clock step: a delivery 95 ms
        // in is in its first step, one 105 ms in in its second.
        let start = 5 * STEP_NANOS + 5 * SLOT_NANOS;
        let mut t = Timeline::default();
        t.record(start + 95_000_000, 1_000);
        t.record(start + 105_000_000, 60_000);
        assert_eq!(
            written(&t, start),
            "ms,deliveries,over_50ms,max_ms\n0,1,0,1.0\n100,1,1,60.0\n"
        );
    }

    #[test]
    fn an_empty_run_writes_only_the_header() {
        assert_eq!(
            written(&Timeline::default(), 12345),
            "ms,deliveries,over_50ms,max_ms\n"
        );
    }
}
