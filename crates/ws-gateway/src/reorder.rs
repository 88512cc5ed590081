//! Puts live events back in seq order before they are fanned out.
//!
//! Several processes commit to one topic: each takes its seqs in the
//! store, then publishes them on Redis after its commit. A gateway whose
//! publish is a moment late lets another's later seqs reach Redis first
//! (951 of 4,000 messages from two publishers on two gateways arrived
//! behind one already seen, up to 488 seqs back). Every session would then
//! hold what came early, give up past its own small bound and read the gap
//! from the store: thousands of sessions reading the same rows. Here the
//! hub does it once per topic: what arrives ahead of a missing seq waits,
//! and goes out in order as soon as the gap fills. A gap that stays open
//! ([`GAP_WAIT`]; a publisher that died between commit and publish) lets
//! what waited go on, and each session fills the gap from the store as
//! before.
//!
//! Only what this process has seen is known: the first event of a stream
//! sets where it starts, and a stream forgotten (bounded memory, a resync)
//! starts over at its next event.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use domain::events::{Event, Key};
use foldhash::HashMap;
use tokio::time::Instant;

/// How long events wait at the hub for a missing seq.
pub const GAP_WAIT: Duration = Duration::from_millis(200);
/// Events held for one stream before it lets them go anyway.
const MAX_HELD: usize = 8192;
/// Streams remembered before the idle ones are forgotten.
const MAX_STREAMS: usize = 65_536;

/// One ordered stream: a channel's messages to one key, or a tag's
/// notifications.
type Stream = (Key, i64);

#[derive(Debug, Default)]
struct Lane {
    /// The last seq handed on.
    last: i64,
    held: BTreeMap<i64, Arc<Event>>,
    /// Since when something has been held.
    since: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Reorder {
    /// By key, so a key no longer watched here is forgotten at once.
    lanes: HashMap<Key, HashMap<i64, Lane>>,
    /// Lanes in `lanes`.
    count: usize,
    /// The lanes holding something: few at once, scanned for deadlines.
    holding: Vec<Stream>,
}

/// The stream an event belongs to and its place in it; `None` for events
/// that carry no seq.
fn place(event: &Event) -> Option<(Stream, i64)> {
    match event {
        Event::TopicMessage { message, .. } | Event::DirectMessage { message, .. } => {
            Some(((event.key(), message.channel_id), message.seq))
        }
        Event::Notification {
            notification, seq, ..
        } => Some(((event.key(), notification.tag), *seq)),
        _ => None,
    }
}

impl Reorder {
    /// Takes `event` in bus order and appends to `out` whatever may go on
    /// now, in order. Returns how many events it held back.
    pub fn admit(&mut self, event: Arc<Event>, now: Instant, out: &mut Vec<Arc<Event>>) -> usize {
        let Some((stream, seq)) = place(&event) else {
            out.push(event);
            return 0;
        };
        let (key, id) = stream;
        let known = self.lanes.get(&key).is_some_and(|l| l.contains_key(&id));
        if !known {
            if self.count >= MAX_STREAMS {
                self.forget_idle();
            }
            self.count += 1;
        }
        let lane = self
            .lanes
            .entry(key)
            .or_default()
            .entry(id)
            .or_insert_with(|| Lane {
                last: seq - 1,
                ..Lane::default()
            });
        if seq != lane.last + 1 && seq > lane.last {
            if lane.held.is_empty() {
                lane.since = Some(now);
                self.holding.push(stream);
            }
            lane.held.insert(seq, event);
            if lane.held.len() > MAX_HELD {
                release(lane, out);
                self.holding.retain(|s| *s != stream);
            }
            return 1;
        }
        // The next seq, or one already handed on (the sessions drop it).
        lane.last = lane.last.max(seq);
        out.push(event);
        if !lane.held.is_empty() {
            while let Some(entry) = lane.held.first_entry() {
                if *entry.key() > lane.last + 1 {
                    break;
                }
                lane.last = lane.last.max(*entry.key());
                out.push(entry.remove());
            }
            if lane.held.is_empty() {
                lane.since = None;
                self.holding.retain(|s| *s != stream);
            }
        }
        0
    }

    /// When the oldest gap runs out of patience, if any is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.holding
            .iter()
            .filter_map(|(key, id)| self.lanes.get(key)?.get(id)?.since)
            .min()
            .map(|since| since + GAP_WAIT)
    }

    /// Lets go, in order, what has waited [`GAP_WAIT`] for a missing seq;
    /// how many streams gave up on a gap.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Arc<Event>>) -> usize {
        let (lanes, before) = (&mut self.lanes, self.holding.len());
        self.holding.retain(|(key, id)| {
            let Some(lane) = lanes.get_mut(key).and_then(|l| l.get_mut(id)) else {
                return false;
            };
            if lane.since.is_some_and(|since| now >= since + GAP_WAIT) {
                release(lane, out);
                return false;
            }
            true
        });
        before - self.holding.len()
    }

    /// Lets go of everything held and forgets every stream: events may
    /// have been lost, and sessions re-read the store.
    pub fn reset(&mut self, out: &mut Vec<Arc<Event>>) {
        for lane in self.lanes.values_mut().flat_map(|l| l.values_mut()) {
            release(lane, out);
        }
        self.lanes.clear();
        self.count = 0;
        self.holding.clear();
    }

    /// Forgets the streams of `key`, no longer watched here: events on it
    /// stop coming (Redis routes only watched keys), so where a stream
    /// stopped says nothing of where it starts again, and holding its next
    /// event for the seqs in between would only delay it.
    pub fn forget(&mut self, key: Key, out: &mut Vec<Arc<Event>>) {
        let Some(lanes) = self.lanes.remove(&key) else {
            return;
        };
        self.count -= lanes.len();
        for mut lane in lanes.into_values() {
            release(&mut lane, out);
        }
        self.holding.retain(|(k, _)| *k != key);
    }

    /// Forgets every stream holding nothing.
    fn forget_idle(&mut self) {
        self.lanes.retain(|_, lanes| {
            lanes.retain(|_, lane| !lane.held.is_empty());
            !lanes.is_empty()
        });
        self.count = self.lanes.values().map(HashMap::len).sum();
    }
}

/// Hands on everything `lane` holds, in seq order; the gaps are left to
/// the sessions.
fn release(lane: &mut Lane, out: &mut Vec<Arc<Event>>) {
    let held = std::mem::take(&mut lane.held);
    if let Some((&seq, _)) = held.last_key_value() {
        lane.last = lane.last.max(seq);
    }
    out.extend(held.into_values());
    lane.since = None;
}

/// Topic messages for the tests here and the hub's.
#[cfg(test)]
pub(crate) mod test_messages {
    use domain::events::Event;

    /// A topic message at `seq` of `channel_id`, stored now.
    pub fn message(channel_id: i64, seq: i64) -> Event {
        Event::TopicMessage {
            topic: "news".into(),
            message: domain::model::StoredMessage {
                id: seq,
                channel_id,
                seq,
                sender_id: 1,
                sender: "alice".into(),
                content: format!("m{seq}"),
                created_at: domain::time::now_millis(),
            },
        }
    }

    /// `(channel, seq)` of each topic message; anything else fails the test.
    pub fn seqs<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<(i64, i64)> {
        events
            .into_iter()
            .map(|event| match event {
                Event::TopicMessage { message, .. } => (message.channel_id, message.seq),
                other => panic!("not a topic message: {other:?}"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::test_messages::message;
    use super::*;

    fn seqs(events: &[Arc<Event>]) -> Vec<(i64, i64)> {
        super::test_messages::seqs(events.iter().map(|e| &**e))
    }

    fn admit_all(r: &mut Reorder, events: &[(i64, i64)], now: Instant) -> Vec<(i64, i64)> {
        let mut out = vec![];
        for &(channel, seq) in events {
            r.admit(Arc::new(message(channel, seq)), now, &mut out);
        }
        seqs(&out)
    }

    #[test]
    fn what_comes_early_waits_for_the_gap_and_goes_out_in_order() {
        let now = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(admit_all(&mut r, &[(1, 5), (1, 6)], now), [(1, 5), (1, 6)]);
        // A later commit overtook an earlier one on the bus.
        assert_eq!(
            admit_all(&mut r, &[(1, 9), (1, 10), (2, 1), (1, 8)], now),
            [(2, 1)]
        );
        assert_eq!(r.deadline(), Some(now + GAP_WAIT));
        assert_eq!(
            admit_all(&mut r, &[(1, 7)], now),
            [(1, 7), (1, 8), (1, 9), (1, 10)]
        );
        assert_eq!(r.deadline(), None);
        assert_eq!(admit_all(&mut r, &[(1, 11)], now), [(1, 11)]);
    }

    #[test]
    fn repeats_pass_for_the_sessions_to_drop() {
        let now = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(
            admit_all(&mut r, &[(1, 1), (1, 2), (1, 2), (1, 1), (1, 3)], now),
            [(1, 1), (1, 2), (1, 2), (1, 1), (1, 3)]
        );
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_gap_that_stays_open_lets_what_waited_go() {
        let now = Instant::now();
        let mut r = Reorder::default();
        admit_all(&mut r, &[(1, 1)], now);
        assert!(admit_all(&mut r, &[(1, 4), (1, 3)], now).is_empty());
        let mut out = vec![];
        assert_eq!(r.expire(now + GAP_WAIT / 2, &mut out), 0);
        assert!(out.is_empty());
        assert_eq!(r.expire(now + GAP_WAIT, &mut out), 1);
        assert_eq!(seqs(&out), [(1, 3), (1, 4)]);
        assert_eq!(r.deadline(), None);
        // The stream goes on from there; the late seq 2 passes.
        assert_eq!(admit_all(&mut r, &[(1, 5), (1, 2)], now), [(1, 5), (1, 2)]);
    }

    #[test]
    fn a_stream_holds_no_more_than_its_bound() {
        let now = Instant::now();
        let mut r = Reorder::default();
        admit_all(&mut r, &[(1, 1)], now);
        let ahead: Vec<_> = (3..3 + MAX_HELD as i64).map(|seq| (1, seq)).collect();
        assert!(admit_all(&mut r, &ahead, now).is_empty());
        let out = admit_all(&mut r, &[(1, 3 + MAX_HELD as i64)], now);
        assert_eq!(out.len(), MAX_HELD + 1);
        assert_eq!(out.first(), Some(&(1, 3)));
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_reset_lets_everything_go_and_starts_over() {
        let now = Instant::now();
        let mut r = Reorder::default();
        admit_all(&mut r, &[(1, 1), (1, 3), (2, 7), (2, 9)], now);
        let mut out = vec![];
        r.reset(&mut out);
        assert_eq!(seqs(&out).len(), 2);
        assert_eq!(r.deadline(), None);
        // Forgotten: the next event of a stream starts it.
        assert_eq!(admit_all(&mut r, &[(1, 10)], now), [(1, 10)]);
    }

    #[test]
    fn a_key_no_longer_watched_starts_over() {
        let now = Instant::now();
        let mut r = Reorder::default();
        assert_eq!(admit_all(&mut r, &[(1, 1), (1, 2)], now), [(1, 1), (1, 2)]);
        let mut out = vec![];
        r.forget(Key::Channel(1), &mut out);
        assert!(out.is_empty());
        // Watched again later: seqs 3 to 9 went by unrouted.
        assert_eq!(
            admit_all(&mut r, &[(1, 10), (1, 11)], now),
            [(1, 10), (1, 11)]
        );
        assert_eq!(r.deadline(), None);
        // What a forgotten stream held goes on at once.
        admit_all(&mut r, &[(1, 13)], now);
        r.forget(Key::Channel(1), &mut out);
        assert_eq!(seqs(&out), [(1, 13)]);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn events_without_a_seq_pass_at_once() {
        let mut r = Reorder::default();
        let mut out = vec![];
        let held = r.admit(
            Arc::new(Event::TopicDeleted { channel_id: 1 }),
            Instant::now(),
            &mut out,
        );
        assert_eq!((held, out.len()), (0, 1));
    }
}
