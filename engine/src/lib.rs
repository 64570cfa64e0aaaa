//! sundial's storage engine: durable delay messages on RocksDB.
//!
//! A message's trip reads as file names: [`send`](crate::send) (delivery-time rules) →
//! `writer` (group commit) → `pump` (timer → ready) → `consume` (receive, ack, nack) →
//! `redeliver` (expiry, dead letters) → `retention` (compaction filters, disk pressure).
//! No RocksDB type is visible outside this crate.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod clock;
mod consume;
mod error;
pub mod failpoints;
mod families;
/// Every key encoding (public for the micro-benchmarks; not a stable API).
#[doc(hidden)]
pub mod keys;
mod lease;
mod lookup;
mod pump;
mod recall;
mod records;
mod redeliver;
mod retention;
pub mod send;
mod state;
mod stats;
mod topics;
mod types;
mod writer;

pub use clock::{Clock, ManualClock, SystemClock, Wake};
pub use consume::{MAX_INVISIBLE, MAX_RECEIVE, MIN_INVISIBLE};
pub use error::{Error, Result};
pub use lookup::MAX_FIND;
pub use pump::TickReport;
pub use stats::{Counters, FamilyStats, GroupStats, Observer, Stats, TopicStats};
pub use types::*;
pub use writer::{Pending, PendingFuture};

use retention::Horizon;
use rocksdb::{ColumnFamily, Options, ReadOptions, DB};
use state::{EngineRecord, GroupRecord, State, TopicRecord};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// Bytes of RocksDB's shared block cache.
const MEMORY_BLOCK_CACHE: usize = 64 << 20;
/// Bytes all memtables together may hold before the largest is flushed.
const MEMORY_MEMTABLES: usize = 192 << 20;

/// Jobs that may wait in the writer's queue before callers block.
const QUEUE_DEPTH: usize = 16 * 1024;

/// One stored key and its value.
pub(crate) type Row = (Box<[u8]>, Box<[u8]>);
/// Keys and values read by a scan.
pub(crate) type Rows = Vec<Row>;

/// Everything the engine's threads share.
pub(crate) struct Shared {
    pub db: DB,
    pub path: PathBuf,
    pub config: Config,
    pub observer: Option<Arc<dyn Observer>>,
    pub state: Mutex<State>,
    pub jobs: Mutex<Option<SyncSender<writer::Job>>>,
    poisoned: Mutex<Option<String>>,
    pub fail_next_sync: AtomicBool,
    pub storage_full: AtomicBool,
    storage_full_why: Mutex<String>,
    /// Send bytes allowed before the next disk measurement (see `retention::DiskGuard`).
    pub disk_guard: retention::DiskGuard,
    pub horizon: Arc<Horizon>,
    pub ready_tx: watch::Sender<u64>,
    pub pump_wake: Arc<Wake>,
    pub maintenance_wake: Arc<Wake>,
    pub shutdown: AtomicBool,
}

impl Shared {
    pub fn cf(&self, f: families::Family) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(f.name())
            .ok_or_else(|| Error::Storage(format!("column family {} is missing", f.name())))
    }

    /// Every family's handle, in [`families::ALL`] order.
    pub fn handles(&self) -> Result<[&ColumnFamily; 7]> {
        let mut out = Vec::with_capacity(7);
        for f in families::ALL {
            out.push(self.cf(f)?);
        }
        out.try_into()
            .map_err(|_| Error::Storage("column family count".into()))
    }

    pub fn get(&self, cf: families::Family, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, k)?)
    }

    /// Keys and values in `[lower, upper)`, at most `limit`. The bounds are given to
    /// RocksDB so the iterator never steps over tombstones outside them.
    pub fn scan(
        &self,
        cf: families::Family,
        lower: &[u8],
        upper: &[u8],
        limit: usize,
    ) -> Result<Rows> {
        let mut out = Vec::new();
        if limit > 0 {
            self.visit(cf, lower, upper, |k, v| {
                out.push((Box::from(k), Box::from(v)));
                Ok(out.len() < limit)
            })?;
        }
        Ok(out)
    }

    /// The last key and value in `[lower, upper)`, if any.
    pub fn last_in(&self, cf: families::Family, lower: &[u8], upper: &[u8]) -> Result<Option<Row>> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        it.seek_to_last();
        let last = match (it.valid(), it.key(), it.value()) {
            (true, Some(k), Some(v)) => Some((Box::from(k), Box::from(v))),
            _ => None,
        };
        it.status()?;
        Ok(last)
    }

    /// Visits keys and values in `[lower, upper)` in order until `f` returns false.
    pub fn visit(
        &self,
        cf: families::Family,
        lower: &[u8],
        upper: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lower.to_vec());
        ro.set_iterate_upper_bound(upper.to_vec());
        let mut it = self.db.raw_iterator_cf_opt(self.cf(cf)?, ro);
        it.seek_to_first();
        while it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !f(k, v)? {
                    return Ok(());
                }
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    pub fn poisoned(&self) -> Option<String> {
        self.poisoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn poison(&self, why: &str) {
        tracing::error!(why, "storage failure: refusing writes until restart");
        let mut p = self.poisoned.lock().unwrap_or_else(|p| p.into_inner());
        if p.is_none() {
            *p = Some(why.to_string());
        }
    }

    /// Refuses sends with `StorageFull` for `why` until a maintenance pass finds the
    /// store under the low watermark.
    pub fn set_storage_full(&self, why: String) {
        *self
            .storage_full_why
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = why;
        self.storage_full.store(true, Ordering::SeqCst);
    }

    pub fn storage_full_reason(&self) -> String {
        self.storage_full_why
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn config_observer(&self) -> Option<&Arc<dyn Observer>> {
        self.observer.as_ref()
    }

    pub fn retention_ms(&self) -> u64 {
        u64::try_from(self.config.retention.as_millis()).unwrap_or(u64::MAX)
    }

    /// Retention checkpoints are kept about a thousand per retention period.
    pub fn checkpoint_every_ms(&self) -> u64 {
        (self.retention_ms() / 1000).clamp(1, 60_000)
    }
}

/// What one maintenance pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Message records due before this time are past retention.
    pub retention_horizon_ms: u64,
    /// Bytes of the data directory after the pass.
    pub disk_bytes: u64,
    /// Whether the disk was over its high watermark when the pass started.
    pub over_watermark: bool,
    /// Ready messages deleted because every group had finished with them.
    pub purged: u64,
    /// Ready messages dropped under `drop-oldest`.
    pub dropped: u64,
    /// Whether sends are now refused with `StorageFull`.
    pub storage_full: bool,
}

/// The storage engine. Cheap to clone; the last clone to drop shuts it down.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    sh: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        self.sh.shutdown.store(true, Ordering::SeqCst);
        self.sh.pump_wake.kick();
        self.sh.maintenance_wake.kick();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
        // Closing the queue lets the writer finish what is queued and exit.
        self.sh
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = w.join();
        }
    }
}

fn load_state(db: &DB) -> Result<State> {
    let meta = db
        .cf_handle(families::META.name())
        .ok_or_else(|| Error::Storage("meta family missing".into()))?;
    let mut st = State::default();
    if let Some(v) = db.get_cf(meta, keys::ENGINE_META)? {
        st.engine = state::decode::<EngineRecord>("engine record", &v)?;
    }
    if let Some(v) = db.get_cf(meta, keys::CHECKPOINTS_META)? {
        st.checkpoints = state::decode("retention checkpoints", &v)?;
    }
    let mut groups = Vec::new();
    for item in db.prefix_iterator_cf(meta, keys::TOPIC_META_PREFIX) {
        let (k, v) = item?;
        if !k.starts_with(keys::TOPIC_META_PREFIX) {
            break;
        }
        st.add_topic(state::decode::<TopicRecord>("topic record", &v)?);
    }
    for item in db.prefix_iterator_cf(meta, keys::GROUP_META_PREFIX) {
        let (k, v) = item?;
        if !k.starts_with(keys::GROUP_META_PREFIX) {
            break;
        }
        groups.push(state::decode::<GroupRecord>("group record", &v)?);
    }
    for g in groups {
        st.add_group(g)?;
    }
    // Loading marks everything dirty; nothing changed, so nothing needs rewriting.
    let _ = st.take_dirty()?;
    Ok(st)
}

impl Engine {
    /// Opens (or creates) the store at `path`. Start-up reads only the topic and group
    /// records and one key per index; it never scans the messages.
    pub fn open(path: impl AsRef<Path>, config: Config) -> Result<Engine> {
        Self::open_with_observer(path, config, None)
    }

    /// Like [`Engine::open`], with hooks for metrics.
    pub fn open_with_observer(
        path: impl AsRef<Path>,
        config: Config,
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Engine> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Storage(format!("cannot create {}: {e}", path.display())))?;
        if config.retention.is_zero() {
            return Err(Error::BadRequest("retention must be positive".into()));
        }
        if config
            .retry_backoff
            .iter()
            .any(|d| *d < consume::MIN_INVISIBLE)
        {
            return Err(Error::BadRequest(
                "every retry backoff must be at least 100 ms".into(),
            ));
        }
        if config.precision_ms > u64::try_from(config.max_delay.as_millis()).unwrap_or(u64::MAX) {
            return Err(Error::BadRequest(
                "precision_ms must not exceed max_delay".into(),
            ));
        }
        if config.max_delivery_attempts == 0 || config.pump_step == 0 {
            return Err(Error::BadRequest(
                "max_delivery_attempts and pump_step must be positive".into(),
            ));
        }
        let retention_ms = u64::try_from(config.retention.as_millis()).unwrap_or(u64::MAX);
        let horizon = Arc::new(Horizon::new(retention_ms));
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        // Compactions run at a lower CPU and I/O priority than the writer, the pump
        // and the request threads: on a small machine they otherwise take the cores
        // that requests wait for. Flushes keep normal priority, so memtables drain and
        // writes do not stall.
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_thread_pool_io_priority();
        opts.set_env(&env);
        opts.set_keep_log_file_num(4);
        opts.set_bytes_per_sync(1 << 20);
        opts.set_max_total_wal_size(512 << 20);
        // Memory stays bounded however many messages wait: memtables share one
        // budget and every family's blocks, indexes and filters one cache.
        let cache = rocksdb::Cache::new_lru_cache(MEMORY_BLOCK_CACHE);
        let wbm = rocksdb::WriteBufferManager::new_write_buffer_manager(MEMORY_MEMTABLES, false);
        opts.set_write_buffer_manager(&wbm);
        let db = DB::open_cf_descriptors(
            &opts,
            &path,
            families::descriptors(&horizon, config.retention.as_secs(), &cache)?,
        )?;
        let mut st = load_state(&db)?;
        let (ready_tx, _) = watch::channel(0u64);
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let pump_wake = Arc::new(Wake::default());
        let maintenance_wake = Arc::new(Wake::default());
        config.clock.subscribe(Arc::downgrade(&pump_wake));
        let now = config.clock.now_ms().max(st.engine.last_now);
        st.engine.last_now = now;
        horizon.update(now, &st.checkpoints);
        let sh = Arc::new(Shared {
            db,
            path,
            config,
            observer,
            state: Mutex::new(State::default()),
            jobs: Mutex::new(Some(tx)),
            poisoned: Mutex::new(None),
            fail_next_sync: AtomicBool::new(false),
            storage_full: AtomicBool::new(false),
            storage_full_why: Mutex::new(String::new()),
            disk_guard: retention::DiskGuard::default(),
            horizon,
            ready_tx,
            pump_wake,
            maintenance_wake,
            shutdown: AtomicBool::new(false),
        });
        st.next_timer_due = pump::next_timer_due(&sh, st.engine.watermark)?;
        let group_ids: Vec<_> = st.groups.keys().copied().collect();
        for g in group_ids {
            let from = st.groups.get(&g).map(|gs| gs.rec.cursor.expired_to);
            if let Some(from) = from {
                let next = redeliver::next_visible(&sh, g, from)?;
                if let Some(gs) = st.groups.get_mut(&g) {
                    gs.next_visible = next;
                }
            }
        }
        *sh.state.lock().unwrap_or_else(|p| p.into_inner()) = st;
        sh.disk_guard
            .measured(retention::disk_level(&sh).map(|l| l.headroom()));
        let w = {
            let sh = sh.clone();
            std::thread::Builder::new()
                .name("sundial-writer".into())
                .spawn(move || writer::run(sh, rx))
                .map_err(|e| Error::Storage(format!("cannot start writer: {e}")))?
        };
        let mut threads = Vec::new();
        if sh.config.background {
            let p = sh.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sundial-pump".into())
                    .spawn(move || pump::run(p))
                    .map_err(|e| Error::Storage(format!("cannot start pump: {e}")))?,
            );
            let m = sh.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sundial-maintenance".into())
                    .spawn(move || maintenance_loop(m))
                    .map_err(|e| Error::Storage(format!("cannot start maintenance: {e}")))?,
            );
        }
        Ok(Engine {
            inner: Arc::new(EngineInner {
                sh,
                threads: Mutex::new(threads),
                writer: Mutex::new(Some(w)),
            }),
        })
    }

    fn sh(&self) -> &Shared {
        &self.inner.sh
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.sh().config.clock
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &Config {
        &self.sh().config
    }

    /// Creates a topic with a message type.
    pub fn create_topic(&self, name: &str, kind: TopicKind) -> Result<TopicInfo> {
        let name = name.to_string();
        writer::submit(self.sh(), true, move |ctx| {
            topics::create_topic(ctx, &name, kind)
        })
        .wait()
    }

    /// Deletes a topic, its groups and its ready log.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        writer::submit(self.sh(), true, move |ctx| topics::delete_topic(ctx, &name)).wait()
    }

    /// Every topic, by name.
    pub fn list_topics(&self) -> Vec<TopicInfo> {
        let st = self.sh().state.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<_> = st.topics.values().map(|t| st.topic_info(t)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// One topic.
    pub fn topic(&self, name: &str) -> Result<TopicInfo> {
        let st = self.sh().state.lock().unwrap_or_else(|p| p.into_inner());
        let t = st.topic_by_name(name)?;
        Ok(st.topic_info(t))
    }

    /// Creates a consumer group on a topic (or updates its filter if it exists).
    pub fn create_group(
        &self,
        topic: &str,
        group: &str,
        start: GroupStart,
        filter: Option<&str>,
    ) -> Result<GroupInfo> {
        let (topic, group, filter) = (
            topic.to_string(),
            group.to_string(),
            filter.map(str::to_string),
        );
        writer::submit(self.sh(), true, move |ctx| {
            topics::create_group(ctx, &topic, &group, start, filter.as_deref())
        })
        .wait()
    }

    /// Every group, optionally of one topic.
    pub fn list_groups(&self, topic: Option<&str>) -> Result<Vec<GroupInfo>> {
        let st = self.sh().state.lock().unwrap_or_else(|p| p.into_inner());
        let only = topic
            .map(|t| st.topic_by_name(t).map(|t| t.rec.id))
            .transpose()?;
        let mut v: Vec<_> = st
            .groups
            .values()
            .filter(|g| only.is_none_or(|t| g.rec.topic == t))
            .map(|g| st.group_info(g))
            .collect();
        v.sort_by(|a, b| (&a.topic, &a.name).cmp(&(&b.topic, &b.name)));
        Ok(v)
    }

    /// Resets a group to the first message that became Ready at or after `to_ms`;
    /// returns the new ready-log offset.
    pub fn reset_offset(&self, topic: &str, group: &str, to_ms: u64) -> Result<u64> {
        let (topic, group) = (topic.to_string(), group.to_string());
        writer::submit(self.sh(), true, move |ctx| {
            topics::reset_offset(ctx, &topic, &group, to_ms)
        })
        .wait()
    }

    /// Sends one message; returns once it is durable.
    pub fn send(&self, m: NewMessage) -> Result<SendReceipt> {
        self.send_batch(vec![m])
            .into_iter()
            .next()
            .unwrap_or(Err(Error::Storage("empty reply from the writer".into())))
    }

    /// Sends messages in one group commit; each succeeds or fails on its own.
    pub fn send_batch(&self, msgs: Vec<NewMessage>) -> Vec<Result<SendReceipt>> {
        let n = msgs.len();
        match self.submit_send_batch(msgs).wait() {
            Ok(v) => v,
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }

    /// Queues a batch of sends without waiting; the result arrives once durable, so one
    /// producer can keep many batches in flight. Blocking calls (`send`, `ack`, ...)
    /// must not be made from async code: await these `Pending` results there instead.
    pub fn submit_send_batch(&self, msgs: Vec<NewMessage>) -> Pending<Vec<Result<SendReceipt>>> {
        let weight = msgs.len();
        writer::submit_weighted(self.sh(), true, weight, move |ctx| {
            send::send_batch(ctx, msgs)
        })
    }

    /// Receives up to `max_messages` Ready messages for a group (created from latest if
    /// unknown); returns at once, possibly with none (see [`Engine::ready_signal`]).
    pub fn receive(&self, req: ReceiveRequest) -> Result<Vec<ReceivedMessage>> {
        let topic = req.topic.clone();
        let (deliveries, durable) = self.submit_receive(req).wait()?;
        let out = self.load_bodies(&topic, deliveries);
        durable.wait()?;
        out
    }

    /// Async form of [`Engine::receive`].
    pub async fn receive_async(&self, req: ReceiveRequest) -> Result<Vec<ReceivedMessage>> {
        let topic = req.topic.clone();
        let (deliveries, durable) = self.submit_receive(req).await?;
        let out = self.load_bodies(&topic, deliveries);
        durable.await?;
        out
    }

    /// Queues a receive. Its hand-outs are answered as soon as they are written, so the
    /// bodies are read while the WAL sync runs; the second part says when the hand-outs
    /// (cursor moves and leases) are durable, and nothing may reach a consumer before.
    fn submit_receive(
        &self,
        req: ReceiveRequest,
    ) -> Pending<(Vec<consume::Delivery>, Pending<()>)> {
        writer::submit_weighted(self.sh(), false, req.max_messages, move |ctx| {
            let deliveries = consume::receive(ctx, &req)?;
            Ok((deliveries, ctx.durable_ticket()))
        })
    }

    fn load_bodies(&self, topic: &str, ds: Vec<consume::Delivery>) -> Result<Vec<ReceivedMessage>> {
        let sh = self.sh();
        let cf = sh.cf(families::MESSAGES)?;
        let ks: Vec<_> = ds.iter().map(|d| keys::message(d.id)).collect();
        // Bodies are read once per delivery: keep them out of the block cache. New
        // deliveries come in id order, so RocksDB need not sort the batch.
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        let sorted = ds.windows(2).all(|w| w[0].id < w[1].id);
        let values = sh.db.batched_multi_get_cf_opt(cf, &ks, sorted, &ro);
        let mut out = Vec::with_capacity(ds.len());
        for (d, v) in ds.into_iter().zip(values) {
            let Some(v) = v? else {
                // Removed by retention between hand-out and read; its inflight record
                // expires and is dropped on redelivery.
                continue;
            };
            let (_, m) = records::decode_message(&v)?;
            out.push(ReceivedMessage {
                message_id: d.id,
                topic: topic.to_string(),
                tag: m.tag,
                keys: m.keys,
                properties: m.properties,
                body: m.body,
                deliver_at_ms: d.deliver_at_ms,
                ready_at_ms: d.ready_at_ms,
                delivery_attempt: d.attempt,
                receipt_handle: d.receipt.encode(),
            });
        }
        Ok(out)
    }

    /// A watch that changes whenever something may have become receivable (a message
    /// became Ready, or an invisible time ran out); long polls wait on it.
    pub fn ready_signal(&self) -> watch::Receiver<u64> {
        self.sh().ready_tx.subscribe()
    }

    /// Acknowledges one delivery; final for the group.
    pub fn ack(&self, topic: &str, group: &str, receipt: &str) -> Result<()> {
        self.ack_batch(topic, group, vec![receipt.to_string()])
            .into_iter()
            .next()
            .unwrap_or(Err(Error::Storage("empty reply from the writer".into())))
    }

    /// Acknowledges many deliveries in one commit; each succeeds or fails on its own.
    pub fn ack_batch(&self, topic: &str, group: &str, receipts: Vec<String>) -> Vec<Result<()>> {
        let n = receipts.len();
        match self.submit_ack_batch(topic, group, receipts).wait() {
            Ok(v) => v,
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        }
    }

    /// Queues acks without waiting (await the result from async code).
    pub fn submit_ack_batch(
        &self,
        topic: &str,
        group: &str,
        receipts: Vec<String>,
    ) -> Pending<Vec<Result<()>>> {
        let (topic, group) = (topic.to_string(), group.to_string());
        let receipts: Vec<_> = receipts
            .iter()
            .map(|r| consume::Receipt::parse(r))
            .collect();
        writer::submit_weighted(self.sh(), true, receipts.len(), move |ctx| {
            consume::ack(ctx, &topic, &group, &receipts)
        })
    }

    /// Ready-log entries the group's cursor has not passed yet (matching its filter or
    /// not); 0 for an unknown topic or group. A receive that returned nothing while
    /// this is above 0 stopped at its skip budget and can be asked again at once.
    pub fn unscanned(&self, topic: &str, group: &str) -> u64 {
        let st = self.sh().state.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(t) = st.topic_by_name(topic) else {
            return 0;
        };
        let c = &t.rec.counters;
        t.groups
            .get(group)
            .and_then(|g| st.groups.get(g))
            .map_or(0, |g| {
                c.ready_end
                    .saturating_sub(g.rec.cursor.next_offset.max(c.head))
            })
    }

    /// Queues nacks of many deliveries in one commit (await the result from async
    /// code); each succeeds or fails on its own.
    pub fn submit_nack_batch(
        &self,
        topic: &str,
        group: &str,
        receipts: Vec<String>,
    ) -> Pending<Vec<Result<()>>> {
        let (topic, group) = (topic.to_string(), group.to_string());
        writer::submit_weighted(self.sh(), true, receipts.len(), move |ctx| {
            Ok(receipts
                .iter()
                .map(|r| consume::nack(ctx, &topic, &group, r))
                .collect())
        })
    }

    /// Gives a delivery back: visible again after the retry backoff of its attempt.
    pub fn nack(&self, topic: &str, group: &str, receipt: &str) -> Result<()> {
        let (topic, group, receipt) = (topic.to_string(), group.to_string(), receipt.to_string());
        writer::submit(self.sh(), true, move |ctx| {
            consume::nack(ctx, &topic, &group, &receipt)
        })
        .wait()
    }

    /// Makes a delivery invisible for `d` from now; returns its new receipt (the old
    /// one becomes stale).
    pub fn change_invisible_duration(
        &self,
        topic: &str,
        group: &str,
        receipt: &str,
        d: Duration,
    ) -> Result<String> {
        let (topic, group, receipt) = (topic.to_string(), group.to_string(), receipt.to_string());
        writer::submit(self.sh(), true, move |ctx| {
            consume::change_invisible(ctx, &topic, &group, &receipt, d)
        })
        .wait()
    }

    /// Cancels a Timing message; `NotFound` once it is Ready.
    pub fn recall(&self, handle: &str) -> Result<()> {
        let handle = handle.to_string();
        writer::submit(self.sh(), true, move |ctx| recall::recall(ctx, &handle)).wait()
    }

    /// Moves a Timing message to a new delivery time; `NotFound` once it is Ready.
    pub fn reschedule(&self, handle: &str, deliver_at_ms: i64) -> Result<SendReceipt> {
        let handle = handle.to_string();
        writer::submit(self.sh(), true, move |ctx| {
            recall::reschedule(ctx, &handle, deliver_at_ms)
        })
        .wait()
    }

    /// The state of one message, and per group for Ready ones.
    pub fn show(&self, id: MessageId) -> Result<MessageView> {
        lookup::show(self.sh(), id)
    }

    /// Ids of retained messages of `topic` with lookup key `key` (at most [`MAX_FIND`]).
    pub fn find_by_key(&self, topic: &str, key: &str) -> Result<Vec<MessageId>> {
        lookup::find(self.sh(), topic, key)
    }

    /// The exact counters alone (cheap: no storage properties).
    pub fn counters(&self) -> Counters {
        stats::counters(self.sh())
    }

    /// Exact counters and storage figures.
    pub fn stats(&self) -> Stats {
        stats::stats(self.sh())
    }

    /// Runs pump steps until nothing more is due now (for callers that turned the
    /// background threads off, such as tests).
    pub fn tick(&self) -> Result<TickReport> {
        let mut total = TickReport::default();
        for _ in 0..1_000_000 {
            let r = writer::submit(self.sh(), false, pump::tick).wait()?;
            total.promoted += r.promoted;
            total.expired += r.expired;
            total.dead_lettered += r.dead_lettered;
            if !r.more {
                break;
            }
        }
        Ok(total)
    }

    /// One maintenance pass: retention horizon, then disk pressure.
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        maintain(&self.inner.sh)
    }

    /// Compacts every family so retention filters run now (tests and operators).
    pub fn compact(&self) -> Result<()> {
        let sh = self.sh();
        for f in families::ALL {
            let cf = sh.cf(f)?;
            sh.db.flush_cf(cf)?;
            sh.db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// Makes the next WAL sync fail, to exercise poisoning (tests only).
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.sh().fail_next_sync.store(true, Ordering::SeqCst);
    }
}

/// One maintenance pass; see [`Engine::maintain`].
fn maintain(sh: &Arc<Shared>) -> Result<MaintenanceReport> {
    let _ = writer::submit(sh, false, pump::tick).wait()?;
    let (now, cps) = {
        let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        (st.engine.last_now, st.checkpoints.clone())
    };
    sh.horizon.update(now, &cps);
    let mut report = MaintenanceReport {
        retention_horizon_ms: sh.horizon.deliver_before_ms.load(Ordering::SeqCst),
        ..MaintenanceReport::default()
    };
    let over = || retention::marks(retention::disk_level(sh).as_ref());
    let first = retention::disk_level(sh);
    let (is_over, below_low) = retention::marks(first.as_ref());
    report.over_watermark = is_over;
    // Refusing sends between the marks frees room too, or refusals would last until
    // the store crossed the high mark again, which refused sends never make it do.
    let refusing = sh.storage_full.load(Ordering::SeqCst) && !below_low;
    let freeing = is_over || refusing;
    if freeing {
        let mut ranges = Vec::new();
        for _ in 0..10_000 {
            let p =
                writer::submit(sh, true, |ctx| retention::purge_acked(ctx, 64 * 1024)).wait()?;
            report.purged += p.rows;
            ranges.extend(p.ranges);
            if p.rows == 0 {
                break;
            }
        }
        reclaim(sh, &ranges)?;
        if over().0 && sh.config.storage_policy == StoragePolicy::DropOldest {
            // Drop in steps of a tenth of the Ready data (at least 16 Ki messages),
            // reclaiming only the ranges each step deleted, until under the watermark.
            let ready: u64 = {
                let st = sh.state.lock().unwrap_or_else(|p| p.into_inner());
                st.topics
                    .values()
                    .map(|t| t.rec.counters.ready_end - t.rec.counters.head)
                    .sum()
            };
            let step = (ready / 10).max(16 * 1024);
            for _ in 0..1_000 {
                let p = writer::submit(sh, true, move |ctx| retention::drop_oldest(ctx, step))
                    .wait()?;
                report.dropped += p.rows;
                reclaim(sh, &p.ranges)?;
                if p.rows == 0 || !over().0 {
                    break;
                }
            }
        }
    }
    // One measurement decides the refusals and gives the send guard its headroom: the
    // first, unless deleting changed the store since.
    let level = if freeing {
        retention::disk_level(sh)
    } else {
        first
    };
    let (still_over, below_low) = retention::marks(level.as_ref());
    let used = retention::dir_bytes(&sh.path);
    if still_over {
        let why = format!(
            "data directory uses {used} bytes (plus memtables to flush), over the high watermark; acked data was deleted and it was not enough"
        );
        sh.set_storage_full(why);
    } else if below_low {
        sh.storage_full.store(false, Ordering::SeqCst);
    }
    report.disk_bytes = used;
    report.storage_full = sh.storage_full.load(Ordering::SeqCst);
    sh.disk_guard.measured(level.map(|l| l.headroom()));
    Ok(report)
}

/// Flushes the memtables, then compacts only the key ranges a purge deleted, so the
/// deleted bytes leave the disk without rewriting the whole store.
fn reclaim(sh: &Shared, ranges: &[(families::Family, Vec<u8>, Vec<u8>)]) -> Result<()> {
    for f in families::ALL {
        let cf = sh.cf(f)?;
        sh.db.flush_cf(cf)?;
    }
    for (f, lo, hi) in ranges {
        let cf = sh.cf(*f)?;
        sh.db
            .compact_range_cf(cf, Some(lo.as_slice()), Some(hi.as_slice()));
    }
    Ok(())
}

fn maintenance_loop(sh: Arc<Shared>) {
    loop {
        sh.maintenance_wake
            .wait(Some(sh.config.maintenance_interval));
        if sh.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = maintain(&sh) {
            if sh.shutdown.load(Ordering::SeqCst) {
                return;
            }
            tracing::warn!(error = %e, "maintenance pass failed");
        }
    }
}
