//! Client actions: each parsed frame becomes one operation on the core,
//! and its result (or error, with `ref`) one reply frame.

use std::task::Poll;

use domain::names::{Target, TopicName, Username};
use domain::protocol::{ClientFrame, ErrorCode, FrameError, ServerFrame, parse};
use domain::service::{AtOnce, Published, ServiceError};
use futures_util::StreamExt;
use serde_json::Value;

use super::{Answer, End, Pending, Session, close};
use crate::error::frame_error;
use crate::metrics::frame_in;

type Reply = Result<Option<ServerFrame>, Failure>;

/// Why an action did not reply normally: the client gets an error frame,
/// or the session ends (the socket is gone, the store failed mid-replay).
/// Nothing an action does is dropped on the floor.
pub(super) enum Failure {
    Frame(FrameError),
    End(End),
}

impl From<FrameError> for Failure {
    fn from(error: FrameError) -> Self {
        Self::Frame(error)
    }
}

impl From<End> for Failure {
    fn from(end: End) -> Self {
        Self::End(end)
    }
}

impl Session {
    /// Replies come back in the order their frames came in. A publish is
    /// answered when it commits, while the socket goes on being read; a
    /// frame refused outright waits behind the publishes under way; any
    /// other action runs once they are answered, so its reply, and what it
    /// changes, come after theirs.
    pub(super) async fn on_text(&mut self, text: &str, pending: &mut Pending) -> Result<(), End> {
        let request = match parse(text) {
            Ok(request) => request,
            Err(mut error) => {
                frame_in("invalid");
                let reference = error.reference.take();
                return self.refuse(error, reference, pending).await;
            }
        };
        let reference = request.reference;
        if !matches!(request.frame, ClientFrame::Message { .. }) {
            self.answer_pending(pending).await?;
        }
        let reply = match request.frame {
            ClientFrame::Subscribe { topic, since } => {
                self.subscribe(topic, since, reference.as_ref()).await
            }
            ClientFrame::Unsubscribe { topic } => self.unsubscribe(topic).await,
            ClientFrame::Invite { topic, username } => self.invite(topic, username).await,
            ClientFrame::Message { target, content } => {
                self.publish(target, content, reference.clone(), pending)
            }
            ClientFrame::NotificationsList { page } => {
                frame_in("notifications_list");
                match self.state.core.inbox(&self.actor, None, page).await {
                    Ok(page) => Ok(Some(ServerFrame::notifications_list(page))),
                    Err(err) => Err(frame_error(err).into()),
                }
            }
            ClientFrame::MarkRead { id } => self.set_item(id, Some(true), None).await,
            ClientFrame::Delete { id } => self.set_item(id, None, Some(true)).await,
            ClientFrame::Disconnect => {
                frame_in("disconnect");
                return Err(End::Close(close::NORMAL, "goodbye"));
            }
        };
        match reply {
            Ok(Some(frame)) => self.conn.send(&frame, reference.as_ref()).await,
            Ok(None) => Ok(()),
            Err(Failure::Frame(error)) => self.refuse(error, reference, pending).await,
            Err(Failure::End(end)) => Err(end),
        }
    }

    /// Answers `error` now, or behind the publishes under way.
    pub(super) async fn refuse(
        &mut self,
        error: FrameError,
        reference: Option<Value>,
        pending: &mut Pending,
    ) -> Result<(), End> {
        if pending.is_empty() {
            return self
                .conn
                .send(&ServerFrame::error(&error), reference.as_ref())
                .await;
        }
        pending.push_back(Box::pin(std::future::ready((reference, Err(error)))));
        Ok(())
    }

    /// Waits for every publish under way and answers it.
    ///
    /// The session's own queue is not handled meanwhile, so it counts as
    /// waiting on its peer: far behind and counted as the process lagging,
    /// it would hold back the very commits it waits for (for 10 s, when
    /// held-back commits go ahead anyway).
    async fn answer_pending(&mut self, pending: &mut Pending) -> Result<(), End> {
        while !pending.is_empty() {
            self.handle.backlog.stalled(true);
            let answer = pending.next().await;
            self.handle.backlog.stalled(false);
            if let Some((reference, result)) = answer {
                self.on_published(reference, result).await?;
            }
        }
        Ok(())
    }

    /// Joins (or confirms membership of) a topic, replies `subscribed`,
    /// then replays history after `since` and any undelivered backlog.
    async fn subscribe(
        &mut self,
        topic: TopicName,
        since: Option<i64>,
        reference: Option<&serde_json::Value>,
    ) -> Reply {
        frame_in("subscribe");
        let topic = self
            .state
            .core
            .subscribe(&self.actor, &topic)
            .await
            .map_err(frame_error)?;
        let core = self.state.core.clone();
        let delivered = core
            .delivered_seq(topic.id, self.actor.id)
            .await
            .map_err(frame_error)?;
        self.track_channel(
            topic.id,
            topic.name.clone(),
            delivered.unwrap_or(topic.last_seq),
            true,
        )
        .await;
        let reply = ServerFrame::Subscribed {
            topic: topic.name.clone(),
            seq: topic.last_seq,
        };
        self.conn.send(&reply, reference).await?;
        if let Some(since) = since {
            let limit = self.state.core.limits.max_history;
            let mut after = since.max(0);
            loop {
                let backlog = core
                    .backlog(topic.id, after, limit, None)
                    .await
                    .map_err(frame_error)?;
                let next = backlog
                    .messages
                    .last()
                    .map(|m| m.seq)
                    .or(backlog.pruned.map(|p| p.to));
                let Some(next) = next else {
                    break;
                };
                self.write_backlog(topic.id, &topic.name, backlog).await?;
                after = next;
            }
        }
        self.catch_up_channel(topic.id).await?;
        Ok(None)
    }

    async fn unsubscribe(&mut self, topic: TopicName) -> Reply {
        frame_in("unsubscribe");
        let topic = self
            .state
            .core
            .leave(&self.actor, &topic)
            .await
            .map_err(frame_error)?;
        self.untrack_channel(topic.id).await;
        Ok(Some(ServerFrame::Unsubscribed { topic: topic.name }))
    }

    async fn invite(&mut self, topic: TopicName, username: Username) -> Reply {
        frame_in("invite");
        let user = self
            .state
            .core
            .user_named(&username)
            .await
            .map_err(frame_error)?;
        self.state
            .core
            .add_member(&self.actor, &topic, &user)
            .await
            .map_err(frame_error)?;
        Ok(Some(ServerFrame::Ok))
    }

    /// Starts a publish; its ack (or error) is sent when it commits, in
    /// the order publishes were sent, while the socket keeps being served.
    ///
    /// Publishes are checked concurrently (a private topic's membership,
    /// a new conversation's peer), but each waits for the one sent before
    /// it to be queued before queuing itself, so the store assigns seqs in
    /// the order the client sent them.
    fn publish(
        &mut self,
        target: Target,
        content: String,
        reference: Option<Value>,
        pending: &mut Pending,
    ) -> Reply {
        frame_in("message");
        if !self.bucket.take() {
            return Err(
                FrameError::new(ErrorCode::RateLimited, "publishing too fast; slow down").into(),
            );
        }
        let (core, actor) = (self.state.core.clone(), self.actor.clone());
        // The usual publish (a known public topic) is queued right here,
        // when nothing sent before it still waits for its place.
        let content = match self.turn_is_free() {
            true => match core.queue_at_once(&actor, &target, content) {
                AtOnce::Queued(queued) => {
                    pending.push_back(Box::pin(async move {
                        let committed = core.committed_apart(&actor, queued).await;
                        (reference, committed.map_err(frame_error))
                    }));
                    return Ok(None);
                }
                AtOnce::Refused(err) => {
                    let refused = Err(frame_error(err));
                    pending.push_back(Box::pin(std::future::ready((reference, refused))));
                    return Ok(None);
                }
                AtOnce::Wait(content) => content,
            },
            false => content,
        };
        // Dropped once this publish is queued (or failed, or abandoned):
        // the next one's turn.
        let (queued, turn) = tokio::sync::oneshot::channel::<()>();
        let previous = self.turn.replace(turn);
        // A task of its own, not a future polled by the session: while the
        // session awaits something else (a read of its own, a resync), a
        // publish that holds a pool connection, or is next in the pool's
        // queue, must still run and let go of it. Aborted if the session
        // ends without waiting for it, like any unanswered frame.
        let publish = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let checked = core.check_publish(&actor, &target, content).await;
            if let Some(previous) = previous {
                let _ = previous.await;
            }
            let queued_publish = match checked {
                Ok(checked) => core.queue_publish(&actor, checked).await,
                Err(err) => Err(err),
            };
            drop(queued);
            match queued_publish {
                Ok(queued_publish) => core.committed(&actor, queued_publish).await,
                Err(err) => Err(err),
            }
        }));
        pending.push_back(Box::pin(async move {
            let result = publish
                .await
                .unwrap_or(Err(ServiceError::Internal("the publish stopped")));
            (reference, result.map_err(frame_error))
        }));
        Ok(None)
    }

    /// Whether every publish sent before has its place in the commit queue.
    fn turn_is_free(&mut self) -> bool {
        use tokio::sync::oneshot::error::TryRecvError;
        // The sender is dropped (Closed) once that publish has its place.
        // A receiver that has answered must not be awaited again: let go.
        if let Some(turn) = self.turn.as_mut()
            && let Err(TryRecvError::Empty) = turn.try_recv()
        {
            return false;
        }
        self.turn = None;
        true
    }

    /// Acks `first`, then every publish after it whose commit is already
    /// done, before the session's next flush.
    ///
    /// A commit answers its whole batch at once. Acked one per turn of the
    /// session's loop, each ack went out in a write of its own: a send per
    /// message, and a wake-up of the client for each (40,765 `writev`s for
    /// 40,000 messages to one subscriber).
    pub(super) async fn on_answers(
        &mut self,
        first: Answer,
        pending: &mut Pending,
    ) -> Result<(), End> {
        let mut next = Some(first);
        while let Some((reference, result)) = next {
            self.on_published(reference, result).await?;
            next = answered(pending).await;
        }
        Ok(())
    }

    pub(super) async fn on_published(
        &mut self,
        reference: Option<Value>,
        result: Result<Published, FrameError>,
    ) -> Result<(), End> {
        let frame = match result {
            Ok(published) => {
                let message = &published.message;
                ServerFrame::Ack {
                    id: message.id,
                    topic: published.label.clone(),
                    seq: message.seq,
                }
            }
            Err(error) => ServerFrame::error(&error),
        };
        self.conn.send(&frame, reference.as_ref()).await
    }

    async fn set_item(
        &mut self,
        id: i64,
        is_read: Option<bool>,
        is_deleted: Option<bool>,
    ) -> Reply {
        frame_in(if is_deleted.is_some() {
            "delete"
        } else {
            "mark_read"
        });
        self.state
            .core
            .update_inbox_item(&self.actor, id, is_read, is_deleted)
            .await
            .map_err(frame_error)?;
        Ok(Some(ServerFrame::Ok))
    }
}

/// The next publish already answered, without waiting for one. Polled
/// with the session's own waker, so a publish still under way wakes it.
async fn answered(pending: &mut Pending) -> Option<Answer> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match pending.poll_next_unpin(cx) {
            Poll::Ready(answer) => answer,
            Poll::Pending => None,
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn answer(n: i64) -> Answer {
        (
            Some(json!(n)),
            Err(FrameError::new(ErrorCode::Internal, "refused")),
        )
    }

    /// What `on_answers` acks in one go: the answers already in, in the
    /// order sent, stopping at the first publish still under way even
    /// when later ones are done.
    #[tokio::test]
    async fn takes_the_answers_already_in_in_order_and_stops_at_one_under_way() {
        let mut pending = Pending::new();
        for n in 0..3 {
            pending.push_back(Box::pin(async move { answer(n) }));
        }
        let (commit, committed) = tokio::sync::oneshot::channel::<()>();
        pending.push_back(Box::pin(async move {
            let _ = committed.await;
            answer(3)
        }));
        pending.push_back(Box::pin(async move { answer(4) }));

        let mut refs = Vec::new();
        let drained = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some((reference, _)) = answered(&mut pending).await {
                refs.push(reference);
            }
        })
        .await;
        assert!(drained.is_ok(), "waited for a publish still under way");
        assert_eq!(refs, [Some(json!(0)), Some(json!(1)), Some(json!(2))]);

        commit.send(()).expect("the publish is still pending");
        let mut rest = Vec::new();
        while let Some((reference, _)) = answered(&mut pending).await {
            rest.push(reference);
        }
        assert_eq!(rest, [Some(json!(3)), Some(json!(4))]);
        assert!(pending.is_empty());
    }
}
