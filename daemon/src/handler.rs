//! One function per request kind: checks the arguments, calls the engine, maps the
//! result to a [`Response`]. Engine errors become wire error codes here, once.

use crate::metrics::{self, Live};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_engine::{
    Engine, Error, GroupMessageState, GroupStart, MessageId, MessageState, NewMessage,
    ReceiveRequest, TopicKind,
};
use sundial_wire::{
    Delivered, ErrorCode, FamilyCounts, GroupCounts, GroupInfo, GroupState, MessageInfo,
    OutgoingMessage, Receipt, Request, Response, StartFrom, StatsReport, TopicCounts, TopicInfo,
    TopicType, Welcome, WireFailure, PROTOCOL_VERSION,
};
use tokio::sync::watch;

/// Longest long-poll wait a receive may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most messages in one batch send, receipts in one ack or nack.
pub const MAX_BATCH: usize = 4096;

/// Serves requests against one engine.
pub struct Handler {
    engine: Engine,
    live: Arc<Live>,
    started: Instant,
    /// Stored bytes one receive may hand out so its answer fits a frame.
    max_answer_bytes: usize,
    /// Engine jobs queued by async requests at once: below the engine's queue depth, so
    /// queueing a job never blocks an async worker thread; beyond it requests wait here.
    job_slots: Arc<tokio::sync::Semaphore>,
    /// The last stats answer and when it was made (see [`STATS_FRESH`]).
    stats: tokio::sync::Mutex<Option<(Instant, StatsReport)>>,
}

/// How long a stats answer is reused. Stats read every family's properties and walk
/// the data directory; a client asking in a loop would otherwise take a core from
/// everyone else. Concurrent askers wait for one computation and share it.
const STATS_FRESH: Duration = Duration::from_millis(250);

/// Engine jobs async requests may have queued at once (the engine queues 16,384).
const JOB_SLOTS: usize = 8 * 1024;

type Answer = Result<Response, Error>;

/// The native protocol's code for an engine error: the one place engine errors become
/// wire codes (exhaustive, so a new engine error needs a decision here).
pub fn error_code(e: &Error) -> ErrorCode {
    match e {
        Error::BadRequest(_) => ErrorCode::BadRequest,
        Error::TopicNotFound(_) => ErrorCode::TopicNotFound,
        Error::TopicExists(_) => ErrorCode::TopicExists,
        Error::TopicTypeMismatch { .. } => ErrorCode::TopicTypeMismatch,
        Error::BadDeliveryTime(_) => ErrorCode::BadDeliveryTime,
        Error::BadInvisibleDuration(_) => ErrorCode::BadInvisibleDuration,
        Error::BadReceiptHandle(_) => ErrorCode::BadReceiptHandle,
        Error::NotFound(_) => ErrorCode::NotFound,
        Error::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        Error::StorageFull(_) => ErrorCode::StorageFull,
        Error::ShuttingDown => ErrorCode::ShuttingDown,
        Error::Poisoned(_) | Error::Storage(_) | Error::Corrupt(_) | Error::Internal(_) => {
            ErrorCode::Internal
        }
    }
}

fn failure(e: &Error) -> WireFailure {
    WireFailure::new(error_code(e), e.to_string())
}

/// Per-receipt outcomes of an ack or nack.
fn settled(v: Vec<Result<(), Error>>) -> Response {
    Response::Settled(v.into_iter().map(|r| r.map_err(|e| failure(&e))).collect())
}

fn check_batch(n: usize) -> Result<(), Error> {
    if n > MAX_BATCH {
        return Err(Error::BadRequest(format!(
            "a batch holds at most {MAX_BATCH} items, not {n}"
        )));
    }
    Ok(())
}

/// Compares secrets without stopping at the first differing byte.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn topic_kind(t: TopicType) -> TopicKind {
    match t {
        TopicType::Normal => TopicKind::Normal,
        TopicType::Delay => TopicKind::Delay,
        TopicType::Mixed => TopicKind::Mixed,
    }
}

fn receipt(r: sundial_engine::SendReceipt) -> Receipt {
    Receipt {
        message_id: r.message_id.to_string(),
        recall_handle: r.recall_handle,
        deliver_at_ms: r.deliver_at_ms,
        adjusted: r.adjusted,
    }
}

fn new_message(m: OutgoingMessage) -> NewMessage {
    NewMessage {
        topic: m.topic,
        tag: m.tag,
        keys: m.keys,
        properties: m.properties,
        body: m.body,
        deliver_at_ms: m.deliver_at_ms,
    }
}

fn topic_info(t: sundial_engine::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name,
        message_type: t.kind.to_string(),
        created_ms: t.created_ms,
    }
}

fn group_info(g: sundial_engine::GroupInfo) -> GroupInfo {
    GroupInfo {
        group: g.name,
        topic: g.topic,
        filter: g.filter,
        created_ms: g.created_ms,
    }
}

fn topic_counts(t: sundial_engine::TopicStats) -> TopicCounts {
    TopicCounts {
        topic: t.name,
        message_type: t.kind.to_string(),
        timing: t.timing,
        ready_total: t.ready_total,
        sent: t.sent,
        recalled: t.recalled,
        purged: t.purged,
        dropped: t.dropped,
        groups: t
            .groups
            .into_iter()
            .map(|g| GroupCounts {
                group: g.name,
                ready: g.backlog,
                inflight: g.inflight,
                retry: g.retry,
                acked: g.acked,
                dead_lettered: g.dead_lettered,
                redelivered: g.redelivered,
                skipped: g.skipped,
                next_offset: g.next_offset,
            })
            .collect(),
    }
}

fn message_info(v: sundial_engine::MessageView) -> MessageInfo {
    let (state, ready_at_ms) = match v.state {
        MessageState::Timing => ("Timing", None),
        MessageState::Ready { ready_at_ms } => ("Ready", Some(ready_at_ms)),
    };
    MessageInfo {
        message_id: v.message_id.to_string(),
        topic: v.topic,
        tag: v.tag,
        keys: v.keys,
        properties: v.properties,
        body_bytes: v.body_len as u64,
        born_ms: v.born_ms,
        deliver_at_ms: v.deliver_at_ms,
        adjusted: v.adjusted,
        state: state.into(),
        ready_at_ms,
        groups: v
            .groups
            .into_iter()
            .map(|(group, s)| {
                let (state, attempt, visible_at_ms) = match s {
                    GroupMessageState::Ready => ("Ready", None, None),
                    GroupMessageState::Inflight {
                        attempt,
                        visible_at_ms,
                    } => ("Inflight", Some(attempt), Some(visible_at_ms)),
                    GroupMessageState::Retry { attempt } => ("Retry", Some(attempt), None),
                    GroupMessageState::Acked => ("Acked", None, None),
                    GroupMessageState::DeadLettered => ("DeadLettered", None, None),
                    GroupMessageState::Skipped => ("Skipped", None, None),
                };
                GroupState {
                    group,
                    state: state.into(),
                    attempt,
                    visible_at_ms,
                }
            })
            .collect(),
    }
}

impl Handler {
    /// A handler over `engine` whose answers must fit `max_frame` bytes.
    pub fn new(engine: Engine, live: Arc<Live>, max_frame: usize) -> Self {
        Handler {
            engine,
            live,
            started: Instant::now(),
            // Each delivered message adds its id, topic, times and receipt (at most
            // about 250 bytes) to its stored record; keep room for 1024 of them. A
            // single message always fits: it came in a frame, and answers may exceed
            // the frame limit by `RESPONSE_HEADROOM`.
            max_answer_bytes: max_frame.saturating_sub(256 * 1024).max(1),
            job_slots: Arc::new(tokio::sync::Semaphore::new(JOB_SLOTS)),
            stats: tokio::sync::Mutex::new(None),
        }
    }

    /// The handshake answer.
    pub fn welcome(&self, max_frame: usize) -> Response {
        Response::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            server: format!("sundial {}", env!("CARGO_PKG_VERSION")),
            max_frame: max_frame as u64,
        })
    }

    /// Queues an engine job once a slot is free and awaits its result.
    async fn job<T, Fut>(&self, f: impl FnOnce(&Engine) -> Fut) -> Result<T, Error>
    where
        Fut: std::future::IntoFuture<Output = Result<T, Error>>,
    {
        let _slot = self
            .job_slots
            .acquire()
            .await
            .map_err(|_| Error::ShuttingDown)?;
        f(&self.engine).into_future().await
    }

    /// Runs a blocking engine call on the blocking pool (engine calls wait on the
    /// writer thread; async threads must not).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .unwrap_or_else(|e| Err(Error::Internal(format!("engine task failed: {e}"))))
    }

    /// Answers one request. `stop` turns true when the daemon shuts down; long polls
    /// then return what they have.
    pub async fn handle(&self, req: Request, stop: watch::Receiver<bool>) -> Response {
        let op = req.op();
        let started = Instant::now();
        let r = self.dispatch(req, stop).await;
        let resp = r.unwrap_or_else(|e| Response::Failed(failure(&e)));
        let code = match &resp {
            Response::Failed(f) => Some(f.code.as_str()),
            _ => None,
        };
        if let Response::Failed(f) = &resp {
            if f.code == ErrorCode::Internal {
                tracing::error!(op, error = %f.message, "request failed");
            } else {
                tracing::debug!(op, error = %f.message, "request refused");
            }
        }
        metrics::request_done(op, started, code);
        resp
    }

    async fn dispatch(&self, req: Request, stop: watch::Receiver<bool>) -> Answer {
        match req {
            Request::Hello(_) => Err(Error::BadRequest("handshake already made".into())),
            Request::CreateTopic {
                topic,
                message_type,
            } => {
                let kind = topic_kind(message_type);
                let t = self.blocking(move |e| e.create_topic(&topic, kind)).await?;
                Ok(Response::Topic(topic_info(t)))
            }
            Request::DeleteTopic { topic } => {
                self.blocking(move |e| e.delete_topic(&topic)).await?;
                Ok(Response::Done)
            }
            Request::ListTopics => {
                let v = self.blocking(|e| Ok(e.list_topics())).await?;
                Ok(Response::Topics(v.into_iter().map(topic_info).collect()))
            }
            Request::ShowTopic { topic } => {
                let t = topic.clone();
                let c = self
                    .blocking(move |e| e.topic(&t).map(|_| e.counters()))
                    .await?;
                c.topics
                    .into_iter()
                    .find(|t| t.name == topic)
                    .map(|t| Response::TopicCounts(topic_counts(t)))
                    .ok_or(Error::TopicNotFound(topic))
            }
            Request::CreateGroup {
                topic,
                group,
                from,
                filter,
            } => {
                let start = match from {
                    StartFrom::Latest => GroupStart::Latest,
                    StartFrom::Earliest => GroupStart::Earliest,
                };
                let g = self
                    .blocking(move |e| e.create_group(&topic, &group, start, filter.as_deref()))
                    .await?;
                Ok(Response::Group(group_info(g)))
            }
            Request::ListGroups { topic } => {
                let v = self
                    .blocking(move |e| e.list_groups(topic.as_deref()))
                    .await?;
                Ok(Response::Groups(v.into_iter().map(group_info).collect()))
            }
            Request::ResetOffset {
                topic,
                group,
                to_ms,
            } => {
                let o = self
                    .blocking(move |e| e.reset_offset(&topic, &group, to_ms))
                    .await?;
                Ok(Response::Offset(o))
            }
            Request::Send(m) => {
                let r = self
                    .job(|e| e.submit_send_batch(vec![new_message(m)]))
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::Internal("no result for the message".into()))??;
                Ok(Response::Sent(receipt(r)))
            }
            Request::SendBatch(ms) => {
                check_batch(ms.len())?;
                let v = self
                    .job(|e| e.submit_send_batch(ms.into_iter().map(new_message).collect()))
                    .await?;
                Ok(Response::SentBatch(
                    v.into_iter()
                        .map(|r| r.map(receipt).map_err(|e| failure(&e)))
                        .collect(),
                ))
            }
            Request::Receive {
                topic,
                group,
                filter,
                max_messages,
                invisible_ms,
                wait_ms,
            } => {
                let wait = Duration::from_millis(wait_ms);
                if wait > MAX_WAIT {
                    return Err(Error::BadRequest(format!(
                        "wait {wait_ms} ms is over the {} ms limit",
                        MAX_WAIT.as_millis()
                    )));
                }
                let req = ReceiveRequest {
                    topic,
                    group,
                    filter,
                    max_messages: max_messages as usize,
                    invisible_duration: Duration::from_millis(invisible_ms),
                    // The answer must fit a frame: stored records plus room for ids.
                    max_bytes: Some(self.max_answer_bytes),
                };
                self.receive(req, wait, stop).await
            }
            Request::Ack {
                topic,
                group,
                receipts,
            } => {
                check_batch(receipts.len())?;
                let v = self
                    .job(|e| e.submit_ack_batch(&topic, &group, receipts))
                    .await?;
                Ok(settled(v))
            }
            Request::Nack {
                topic,
                group,
                receipts,
            } => {
                check_batch(receipts.len())?;
                let v = self
                    .job(|e| e.submit_nack_batch(&topic, &group, receipts))
                    .await?;
                // Only nacks that took effect: a refused one may name no real group,
                // and a label from it would be a series a client could multiply.
                let n = v.iter().filter(|r| r.is_ok()).count() as u64;
                if n > 0 {
                    metrics::nacked(&topic, &group, n);
                }
                Ok(settled(v))
            }
            Request::ChangeInvisible {
                topic,
                group,
                receipt,
                invisible_ms,
            } => {
                let d = Duration::from_millis(invisible_ms);
                let h = self
                    .blocking(move |e| e.change_invisible_duration(&topic, &group, &receipt, d))
                    .await?;
                Ok(Response::NewReceipt(h))
            }
            Request::Recall { handle } => {
                self.blocking(move |e| e.recall(&handle)).await?;
                Ok(Response::Done)
            }
            Request::Reschedule {
                handle,
                deliver_at_ms,
            } => {
                let r = self
                    .blocking(move |e| e.reschedule(&handle, deliver_at_ms))
                    .await?;
                Ok(Response::Sent(receipt(r)))
            }
            Request::ShowMessage { message_id } => {
                let id: MessageId = message_id.parse()?;
                let v = self.blocking(move |e| e.show(id)).await?;
                Ok(Response::Message(message_info(v)))
            }
            Request::FindMessages { topic, key } => {
                let ids = self.blocking(move |e| e.find_by_key(&topic, &key)).await?;
                Ok(Response::MessageIds(
                    ids.into_iter().map(|i| i.to_string()).collect(),
                ))
            }
            Request::Stats => {
                let mut cached = self.stats.lock().await;
                if let Some((at, r)) = cached.as_ref() {
                    if at.elapsed() < STATS_FRESH {
                        return Ok(Response::Stats(r.clone()));
                    }
                }
                let s = self.blocking(|e| Ok(e.stats())).await?;
                let r = StatsReport {
                    topics: s.topics.into_iter().map(topic_counts).collect(),
                    timing_total: s.timing_total,
                    early_deliveries: s.early_deliveries,
                    families: s
                        .families
                        .into_iter()
                        .map(|f| FamilyCounts {
                            family: f.name,
                            sst_bytes: f.sst_bytes,
                            memtable_bytes: f.memtable_bytes,
                            estimated_keys: f.estimated_keys,
                            pending_compaction_bytes: f.pending_compaction_bytes,
                        })
                        .collect(),
                    disk_bytes: s.disk_bytes,
                    disk_high_watermark_bytes: s.disk_high_watermark_bytes,
                    disk_high_ratio: s.disk_high_ratio,
                    filesystem_used_bytes: s.filesystem.map(|f| f.0),
                    filesystem_size_bytes: s.filesystem.map(|f| f.1),
                    storage_full: s.storage_full,
                    write_stopped: s.write_stopped,
                    poisoned: s.poisoned,
                    block_cache_bytes: s.block_cache_bytes,
                    block_cache_pinned_bytes: s.block_cache_pinned_bytes,
                    table_readers_bytes: s.table_readers_bytes,
                    connections: self.live.connections.load(Ordering::Relaxed),
                    uptime_s: self.started.elapsed().as_secs(),
                };
                *cached = Some((Instant::now(), r.clone()));
                Ok(Response::Stats(r))
            }
        }
    }

    /// Receives; when nothing is there, waits for the engine's Ready signal (a message
    /// became Ready or an invisible time ran out) until the wait is over or the daemon
    /// stops. No polling: each wake-up is a real change.
    async fn receive(
        &self,
        req: ReceiveRequest,
        wait: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> Answer {
        let deadline = tokio::time::Instant::now() + wait;
        let (topic, group) = (req.topic.clone(), req.group.clone());
        let mut rescans = 0;
        loop {
            // Subscribe before looking, so a change in between is not missed.
            let mut signal = self.engine.ready_signal();
            let got = self
                .job(|e| {
                    let (e, req) = (e.clone(), req.clone());
                    async move { e.receive_async(req).await }
                })
                .await?;
            if !got.is_empty() {
                let now = self.engine.clock().now_ms();
                metrics::delivered(
                    &topic,
                    &group,
                    got.len() as u64,
                    got.iter()
                        .filter(|m| m.delivery_attempt == 1)
                        .map(|m| now.saturating_sub(m.deliver_at_ms)),
                );
                return Ok(Response::Messages(
                    got.into_iter()
                        .map(|m| Delivered {
                            message_id: m.message_id.to_string(),
                            topic: m.topic,
                            tag: m.tag,
                            keys: m.keys,
                            properties: m.properties,
                            body: m.body,
                            deliver_at_ms: m.deliver_at_ms,
                            ready_at_ms: m.ready_at_ms,
                            delivery_attempt: m.delivery_attempt,
                            receipt_handle: m.receipt_handle,
                        })
                        .collect(),
                ));
            }
            if *stop.borrow() {
                return Ok(Response::Messages(Vec::new()));
            }
            if rescans < 64 && self.engine.unscanned(&topic, &group) > 0 {
                rescans += 1;
                // The receive stopped at its skip budget in a run of entries this call's
                // filter does not want; go on scanning rather than wait for a signal.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                r = signal.changed() => if r.is_err() {
                    return Err(Error::ShuttingDown);
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(Response::Messages(Vec::new())),
                _ = stop.changed() => return Ok(Response::Messages(Vec::new())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn every_engine_error_maps_to_a_spec_code() {
        let errors = [
            Error::BadRequest("x".into()),
            Error::TopicNotFound("t".into()),
            Error::StorageFull("x".into()),
            Error::Poisoned("x".into()),
            Error::ShuttingDown,
        ];
        let codes: Vec<_> = errors.iter().map(|e| failure(e).code).collect();
        assert_eq!(
            codes,
            vec![
                ErrorCode::BadRequest,
                ErrorCode::TopicNotFound,
                ErrorCode::StorageFull,
                ErrorCode::Internal,
                ErrorCode::ShuttingDown
            ]
        );
    }
}
