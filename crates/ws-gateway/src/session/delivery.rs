//! Delivery: tracking channels and tags, pushing live events in seq
//! order, and filling any gap (offline backlog, lost bus events) from the
//! store. What to do with each live event is the
//! [`Sequencer`](super::sequencer)'s call; this file does the I/O it asks for.

use domain::events::{Event, Key};
use domain::model::{Pruned, StoredMessage};
use domain::protocol::ServerFrame;
use domain::store::{Backlog, ChannelKind, Cursor, SessionSnapshot};

use bytes::Bytes;
use tokio::time::Instant;

use super::connection::Kind;
use super::patience::patiently;
use super::proof::Stream;
use super::sequencer::{Position, Sequencer, Verdict};
use super::{End, Held, Session, Tracked, TrackedTag, close};
use crate::hub::Outbound;
use crate::recent::Recorded;

/// Rows read per catch-up query.
const PAGE: i64 = 500;

impl Session {
    /// Starts tracking the user's memberships and subscriptions, as `read`
    /// (by the handshake) or as read now.
    pub(super) async fn load(&mut self, read: Option<SessionSnapshot>) -> Result<(), End> {
        let snapshot = match read {
            Some(snapshot) => snapshot,
            None => {
                let (core, user_id) = (&self.state.core, self.actor.id);
                patiently("a delivery", || core.session_snapshot(user_id)).await?
            }
        };
        let (memberships, subscriptions) = (snapshot.memberships, snapshot.subscriptions);
        let live_channels: Vec<i64> = memberships.iter().map(|m| m.channel_id).collect();
        let live_tags: Vec<i64> = subscriptions.iter().map(|s| s.tag_id).collect();
        for m in memberships {
            let label = m.label();
            let direct = matches!(m.kind, ChannelKind::Direct { .. });
            self.track_channel(m.channel_id, label, m.delivered_seq, !direct)
                .await;
        }
        for s in subscriptions {
            self.track_tag(s.tag_id, s.id, s.delivered_seq).await;
        }
        let gone: Vec<i64> = self
            .channels
            .keys()
            .filter(|c| !live_channels.contains(c))
            .copied()
            .collect();
        for channel in gone {
            self.untrack_channel(channel).await;
        }
        let gone: Vec<i64> = self
            .tags
            .keys()
            .filter(|t| !live_tags.contains(t))
            .copied()
            .collect();
        for tag in gone {
            self.untrack_tag(tag).await;
        }
        Ok(())
    }

    /// Starts delivering a channel from `delivered` unless already tracked.
    /// Topics are routed by channel key; direct messages by user key.
    pub(super) async fn track_channel(
        &mut self,
        channel_id: i64,
        label: String,
        delivered: i64,
        watch: bool,
    ) {
        if self.channels.contains_key(&channel_id) {
            return;
        }
        self.channels.insert(
            channel_id,
            Tracked {
                label,
                order: Sequencer::after(delivered),
                dirty: false,
            },
        );
        if watch {
            self.watch(Key::Channel(channel_id)).await;
        }
    }

    pub(super) async fn untrack_channel(&mut self, channel_id: i64) {
        if self.channels.remove(&channel_id).is_some() {
            self.unwatch(Key::Channel(channel_id)).await;
        }
    }

    async fn track_tag(&mut self, tag_id: i64, subscription_id: i64, delivered: i64) {
        if self.tags.contains_key(&tag_id) {
            return;
        }
        self.tags.insert(
            tag_id,
            TrackedTag {
                subscription_id,
                position: Position::after(delivered),
                dirty: false,
            },
        );
        self.watch(Key::Tag(tag_id)).await;
    }

    async fn untrack_tag(&mut self, tag_id: i64) {
        if self.tags.remove(&tag_id).is_some() {
            self.unwatch(Key::Tag(tag_id)).await;
        }
    }

    /// Everything missed in every channel and tag, each oldest first. Only
    /// streams whose newest seq moved past this session's position are
    /// read (one batched read tells which).
    pub(super) async fn catch_up_all(&mut self) -> Result<(), End> {
        let mut channels: Vec<i64> = self.channels.keys().copied().collect();
        channels.sort_unstable();
        let mut tags: Vec<i64> = self.tags.keys().copied().collect();
        tags.sort_unstable();
        let streams: Vec<Stream> = channels
            .iter()
            .map(|&id| Stream::Channel(id))
            .chain(tags.iter().map(|&id| Stream::Tag(id)))
            .collect();
        let core = &self.state.core;
        let heads = patiently("a delivery", || core.stream_heads(&streams)).await?;
        // A stream the read did not find is caught up anyway: the backlog
        // read is the one that knows.
        let moved =
            |stream: Stream, written: i64| heads.get(&stream).is_none_or(|&head| head > written);
        for channel in channels {
            let written = self
                .channels
                .get(&channel)
                .map(|t| t.order.position().written());
            match written {
                Some(written) if !moved(Stream::Channel(channel), written) => {
                    self.release_held(channel).await?;
                }
                _ => self.catch_up_channel(channel).await?,
            }
        }
        for tag in tags {
            let written = self.tags.get(&tag).map(|t| t.position.written());
            if written.is_none_or(|written| moved(Stream::Tag(tag), written)) {
                self.catch_up_tag(tag).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn catch_up_channel(&mut self, channel_id: i64) -> Result<(), End> {
        let core = self.state.core.clone();
        loop {
            let Some(tracked) = self.channels.get(&channel_id) else {
                return Ok(());
            };
            let (after, label) = (tracked.order.position().written(), tracked.label.clone());
            // The record serves what it holds; the store has the last word
            // (a read from the record's end, nearly always empty), so an
            // event the bus lost without a word is not missed either.
            if let Some(recent) = self.recent_after(channel_id, after) {
                self.state.hub.metrics().catch_up_recent.increment(1);
                let full = recent.len() >= PAGE as usize;
                self.write_recent(channel_id, &recent).await?;
                if full {
                    self.conn.flush().await?;
                }
                continue;
            }
            let me = Some(self.actor.id);
            let backlog =
                patiently("a delivery", || core.backlog(channel_id, after, PAGE, me)).await?;
            if !backlog.messages.is_empty() {
                self.state.hub.metrics().catch_up_store.increment(1);
            }
            let full = backlog.messages.len() as i64 >= PAGE;
            self.write_backlog(channel_id, &label, backlog).await?;
            if !full {
                return self.release_held(channel_id).await;
            }
            self.conn.flush().await?;
        }
    }

    /// What the hub's record of the topic holds after `after` (see
    /// `recent.rs`): the frames the live fan-out built, so nothing is read
    /// or serialized again.
    fn recent_after(&self, channel_id: i64, after: i64) -> Option<Vec<Recorded>> {
        let now = domain::time::now_millis();
        let recent = &self.state.hub.recent;
        recent.after(channel_id, after, PAGE as usize, now)
    }

    /// Writes recorded messages (the session's own are skipped, as live)
    /// and moves the channel's position past them.
    async fn write_recent(&mut self, channel_id: i64, recent: &[Recorded]) -> Result<(), End> {
        for message in recent {
            if message.sender_id != self.actor.id {
                self.conn
                    .feed(&message.frame, Kind::Message, Some(message.created_at))
                    .await?;
            }
        }
        if let (Some(last), Some(tracked)) = (recent.last(), self.channels.get_mut(&channel_id)) {
            tracked.order.position_mut().advance(last.seq);
            self.unproven = true;
        }
        Ok(())
    }

    /// Writes what retention took (if anything) and the stored messages
    /// after it, and moves the channel's position past both.
    pub(super) async fn write_backlog(
        &mut self,
        channel_id: i64,
        label: &str,
        backlog: Backlog,
    ) -> Result<(), End> {
        let mut last = None;
        if let Some(Pruned { from, to }) = backlog.pruned {
            let frame = ServerFrame::Pruned {
                topic: label.to_owned(),
                from,
                to,
            };
            self.conn.send(&frame, None).await?;
            last = Some(to);
        }
        for message in &backlog.messages {
            self.conn
                .send(&ServerFrame::Message(message.labelled(label)), None)
                .await?;
        }
        if let Some(seq) = backlog.messages.last().map(|m| m.seq) {
            last = Some(seq);
        }
        if let (Some(last), Some(tracked)) = (last, self.channels.get_mut(&channel_id)) {
            tracked.order.position_mut().advance(last);
            self.unproven = true;
        }
        Ok(())
    }

    async fn catch_up_tag(&mut self, tag_id: i64) -> Result<(), End> {
        let core = self.state.core.clone();
        loop {
            let Some(tracked) = self.tags.get(&tag_id) else {
                return Ok(());
            };
            let after = tracked.position.written();
            let me = self.actor.id;
            let batch = patiently("a delivery", || {
                core.notification_backlog(me, tag_id, after, PAGE)
            })
            .await?;
            let last = batch.last().map(|item| item.notification.seq);
            let full = batch.len() as i64 >= PAGE;
            for item in batch {
                self.conn
                    .send(&ServerFrame::notification(item), None)
                    .await?;
            }
            if let (Some(last), Some(tracked)) = (last, self.tags.get_mut(&tag_id)) {
                tracked.position.advance(last);
                self.unproven = true;
            }
            if !full {
                return Ok(());
            }
            self.conn.flush().await?;
        }
    }

    pub(super) async fn on_outbound(&mut self, out: Outbound) -> Result<(), End> {
        match out {
            Outbound::Resync => {
                self.handle.resync_started();
                Box::pin(async {
                    // A revocation may have been lost with the other events.
                    self.recheck_credential().await?;
                    self.load(None).await?;
                    self.catch_up_all().await
                })
                .await
            }
            Outbound::Events(run) => {
                for routed in run.iter() {
                    let frame = routed.frame.as_ref();
                    if !self.deliver_in_turn(&routed.event, frame) {
                        Box::pin(self.on_event(&routed.event, frame)).await?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The usual live event, handled without waiting on anything: the next
    /// message of a channel this session delivers, with room to buffer
    /// it. Nearly every event of a fan-out takes this path, and the
    /// general one costs a chain of futures per frame. `false`: nothing
    /// was done, take the general path.
    fn deliver_in_turn(&mut self, event: &Event, frame: Option<&Bytes>) -> bool {
        let (
            Event::TopicMessage { message, .. } | Event::DirectMessage { message, .. },
            Some(frame),
        ) = (event, frame)
        else {
            return false;
        };
        if !self.conn.has_room() {
            return false;
        }
        let Some(tracked) = self.channels.get_mut(&message.channel_id) else {
            return false;
        };
        if !tracked.order.take_in_turn(message.seq) {
            return false;
        }
        self.unproven = true;
        // The publisher's own sockets skip it.
        if message.sender_id != self.actor.id {
            self.conn
                .buffer(frame, Kind::Message, Some(message.created_at));
        }
        true
    }

    async fn on_event(&mut self, event: &Event, frame: Option<&Bytes>) -> Result<(), End> {
        match event {
            Event::TopicMessage { message, .. } => self.on_message(message, frame, None).await,
            Event::DirectMessage { message, .. } => {
                let peer_label = format!("@{}", message.sender);
                self.on_message(message, frame, Some(peer_label)).await
            }
            Event::Notification { notification, seq } => {
                let Some(tracked) = self.tags.get_mut(&notification.tag) else {
                    return Ok(());
                };
                let written = tracked.position.written();
                if *seq <= written {
                    return Ok(());
                }
                if *seq == written + 1 {
                    tracked.position.advance(*seq);
                    self.unproven = true;
                    if let Some(frame) = frame {
                        return self
                            .conn
                            .feed(frame, Kind::Notification, Some(notification.timestamp))
                            .await;
                    }
                }
                self.catch_up_tag(notification.tag).await
            }
            Event::Joined {
                channel_id,
                topic,
                from_seq,
                invited_by,
                ..
            } => {
                let (core, me) = (&self.state.core, self.actor.id);
                let delivered =
                    patiently("a delivery", || core.delivered_seq(*channel_id, me)).await?;
                // The membership may already be gone again (an unsubscribe
                // handled before this queued event): then there is nothing
                // to deliver.
                let Some(delivered) = delivered else {
                    return Ok(());
                };
                self.track_channel(*channel_id, topic.clone(), delivered.max(*from_seq), true)
                    .await;
                if let Some(by) = invited_by {
                    self.conn
                        .send(
                            &ServerFrame::Invited {
                                topic: topic.clone(),
                                by: by.clone(),
                            },
                            None,
                        )
                        .await?;
                }
                self.catch_up_channel(*channel_id).await
            }
            Event::Left { channel_id, .. } | Event::TopicDeleted { channel_id } => {
                self.untrack_channel(*channel_id).await;
                Ok(())
            }
            Event::Subscribed {
                subscription_id,
                tag_id,
                from_seq,
                ..
            } => {
                self.track_tag(*tag_id, *subscription_id, *from_seq).await;
                self.catch_up_tag(*tag_id).await
            }
            Event::Unsubscribed {
                subscription_id,
                tag_id,
                ..
            } => {
                if self
                    .tags
                    .get(tag_id)
                    .is_some_and(|t| t.subscription_id == *subscription_id)
                {
                    self.untrack_tag(*tag_id).await;
                }
                Ok(())
            }
            Event::Revoked { revocation, .. } => {
                if self.credential.is_revoked_by(revocation) {
                    return Err(End::Close(close::REVOKED, "credential revoked"));
                }
                Ok(())
            }
            Event::Inbox { .. } => match frame {
                Some(frame) => self.conn.feed(frame, Kind::Other, None).await,
                None => Ok(()),
            },
        }
    }

    /// A live message: write it if it is the next seq, skip it if it is
    /// old or our own, fill the gap from the store if something is missing.
    /// `direct` carries the label of a direct conversation, which may be
    /// new to this session.
    async fn on_message(
        &mut self,
        message: &StoredMessage,
        frame: Option<&Bytes>,
        direct: Option<String>,
    ) -> Result<(), End> {
        let channel_id = message.channel_id;
        if !self.channels.contains_key(&channel_id) {
            // A direct conversation this session does not know was begun
            // after its snapshot was read (the snapshot holds every one
            // that existed, and a conversation is never left), so none of
            // it has been delivered here: it starts at 0, and a first
            // frame past seq 1 fills the gap. The stored cursor is no
            // better, only slower: it may have been moved by another of
            // the user's sockets, whose deliveries this one has not made,
            // and reading it held every new conversation's first message
            // behind a store read (400 of them when 200 conversations
            // began at once).
            let Some(label) = direct else { return Ok(()) };
            self.track_channel(channel_id, label, 0, false).await;
        }
        let Some(tracked) = self.channels.get_mut(&channel_id) else {
            return Ok(());
        };
        let built;
        let frame = match frame {
            Some(frame) => frame,
            None => {
                let json =
                    ServerFrame::Message(message.labelled(tracked.label.clone())).to_json(None);
                built = Bytes::from(json);
                &built
            }
        };
        let held = || Held {
            sender_id: message.sender_id,
            created_at: message.created_at,
            frame: frame.clone(),
        };
        match tracked.order.offer(message.seq, held, Instant::now) {
            Verdict::Write => {
                self.unproven = true;
                self.write_live(message.sender_id, frame, message.created_at)
                    .await
            }
            Verdict::Ready => self.release_held(channel_id).await,
            Verdict::Duplicate | Verdict::Held => Ok(()),
            Verdict::Fill => self.catch_up_channel(channel_id).await,
        }
    }

    /// Writes a live frame in its turn (the publisher's own sockets skip it).
    async fn write_live(
        &mut self,
        sender_id: i64,
        frame: &Bytes,
        created_at: i64,
    ) -> Result<(), End> {
        if sender_id == self.actor.id {
            return Ok(());
        }
        self.conn.feed(frame, Kind::Message, Some(created_at)).await
    }

    /// Writes held frames that are next in line.
    async fn release_held(&mut self, channel_id: i64) -> Result<(), End> {
        while let Some(held) = self
            .channels
            .get_mut(&channel_id)
            .and_then(|t| t.order.next_ready())
        {
            self.unproven = true;
            self.write_live(held.sender_id, &held.frame, held.created_at)
                .await?;
        }
        Ok(())
    }

    /// Gaps that did not fill themselves in time are filled from the store.
    pub(super) async fn fill_stale_gaps(&mut self) -> Result<(), End> {
        let now = Instant::now();
        let stale: Vec<i64> = self
            .channels
            .iter()
            .filter(|(_, t)| t.order.stale(now))
            .map(|(&id, _)| id)
            .collect();
        for channel_id in stale {
            Box::pin(self.catch_up_channel(channel_id)).await?;
        }
        Ok(())
    }

    /// The positions written beyond what the client confirmed.
    pub(super) fn written(&self) -> Vec<(Stream, i64)> {
        let channels = self.channels.iter().filter_map(|(&id, t)| {
            let seq = t.order.position().unconfirmed()?;
            Some((Stream::Channel(id), seq))
        });
        let tags = self.tags.iter().filter_map(|(&id, t)| {
            let seq = t.position.unconfirmed()?;
            Some((Stream::Tag(id), seq))
        });
        channels.chain(tags).collect()
    }

    /// The client received these positions (a channel or tag left since
    /// has nothing to save).
    pub(super) fn confirm(&mut self, proven: Vec<(Stream, i64)>) {
        for (stream, seq) in proven {
            let (position, dirty) = match stream {
                Stream::Channel(id) => match self.channels.get_mut(&id) {
                    Some(t) => (t.order.position_mut(), &mut t.dirty),
                    None => continue,
                },
                Stream::Tag(id) => match self.tags.get_mut(&id) {
                    Some(t) => (&mut t.position, &mut t.dirty),
                    None => continue,
                },
            };
            if position.confirm(seq) {
                *dirty = true;
                self.unsaved = true;
            }
        }
    }

    /// Hands confirmed positions that moved to the cursor book.
    pub(super) fn note_cursors(&mut self) {
        if !std::mem::take(&mut self.unsaved) {
            return;
        }
        let user_id = self.actor.id;
        for (&channel_id, tracked) in self.channels.iter_mut().filter(|(_, t)| t.dirty) {
            tracked.dirty = false;
            self.state.cursors.note(
                Cursor::Channel {
                    channel_id,
                    user_id,
                },
                tracked.order.position().confirmed(),
            );
        }
        for tracked in self.tags.values_mut().filter(|t| t.dirty) {
            tracked.dirty = false;
            self.state.cursors.note(
                Cursor::Subscription {
                    id: tracked.subscription_id,
                },
                tracked.position.confirmed(),
            );
        }
    }
}
