//! sundial's storage engine: durable delay messages on RocksDB.
//!
//! A message's trip reads as file names: [`send`](crate::send) (delivery-time rules) →
//! `writer` (group commit) → `pump` (timer → ready) → `consume` (receive, ack, nack) →
//! `redeliver` (expiry, dead letters) → `retention` (compaction filters, disk pressure).
//! No RocksDB type is visible outside this crate.

#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

// The bottom: how data is laid out in RocksDB, and reads that see a round's writes.
mod store;
// Engine-wide pieces every layer may use.
mod clock;
mod compression;
mod error;
pub mod failpoints;
mod state;
mod types;
mod writer;
// The stored structures: each module is the only writer of its families.
mod inflight;
mod messages;
mod ready_log;
mod timer;
// The operations, each importing only the layers above.
mod consume;
mod disk;
mod lookup;
mod maintenance;
mod memtables;
mod pump;
mod recall;
mod redeliver;
mod retention;
pub mod send;
mod stats;
mod topics;

pub use clock::{Clock, ManualClock, SystemClock, Wake};
pub use consume::{MAX_INVISIBLE, MAX_RECEIVE, MIN_INVISIBLE};
pub use error::{Error, Result, StorageError, StorageErrorKind};
pub use lookup::MAX_FIND;
pub use maintenance::MaintenanceReport;
pub use pump::TickReport;
pub use stats::{Counters, FamilyStats, GroupStats, Observer, Stats, TopicStats};
/// Every key encoding (public for the micro-benchmarks; not a stable API).
#[doc(hidden)]
pub use store::keys;
pub use types::*;
pub use writer::{Pending, PendingFuture};

use rocksdb::{Options, DB};
use state::{EngineRecord, GroupRecord, State, TopicRecord};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use store::filters::Horizon;
use store::Store;
use store::{families, records};
use tokio::sync::watch;

/// Bytes of RocksDB's shared block cache.
const MEMORY_BLOCK_CACHE: usize = 64 << 20;
/// Bytes all memtables together may hold: the writer waits for a flush before writing
/// more (`memtables.rs`).
pub(crate) const MEMORY_MEMTABLES: usize = 192 << 20;
/// The write buffer manager's budget: RocksDB flushes the largest memtable when the
/// mutable ones reach 7/8 of it. It is a quarter below [`MEMORY_MEMTABLES`], so a flush
/// starts with 66 MiB of room left before the writer would wait, and the writer waits
/// only when the flushes fall well behind. (With the budget at the limit, a steady
/// 50k/s run held up to 170 MiB of memtables, 22 MiB from a wait.)
const MEMTABLE_FLUSH_BUDGET: usize = MEMORY_MEMTABLES / 4 * 3;

/// Jobs that may wait in the writer's queue before callers block.
const QUEUE_DEPTH: usize = 16 * 1024;

/// Everything the engine's threads share.
pub(crate) struct Shared {
    pub store: Store,
    pub path: PathBuf,
    pub config: Config,
    pub observer: Option<Arc<dyn Observer>>,
    pub state: Mutex<State>,
    pub jobs: Mutex<Option<SyncSender<writer::Job>>>,
    poisoned: Mutex<Option<String>>,
    pub fail_next_sync: AtomicBool,
    pub storage_full: AtomicBool,
    /// Set when a write found the file system full, cleared by the next write that
    /// succeeds: a WAL sync failing meanwhile waits for room instead of poisoning.
    pub out_of_space: AtomicBool,
    storage_full_why: Mutex<String>,
    /// Send bytes allowed before the next disk measurement (see `disk::DiskGuard`).
    pub disk_guard: disk::DiskGuard,
    pub horizon: Arc<Horizon>,
    pub ready_tx: watch::Sender<u64>,
    pub pump_wake: Arc<Wake>,
    pub maintenance_wake: Arc<Wake>,
    /// Whether stored records compress, and what the `messages` family is set to.
    pub compression: compression::RecordSampler,
    /// RocksDB's write buffer manager (the flush budget); its usage counts every
    /// family's memtables and falls when a flushed one is freed.
    pub memtables: rocksdb::WriteBufferManager,
    /// The writer's waits for the memtables to shrink below their budget.
    pub memtable_waits: memtables::Waits,
    pub shutdown: AtomicBool,
}

impl Shared {
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
        .ok_or_else(|| Error::Internal("meta family missing".into()))?;
    let mut st = State::default();
    if let Some(v) = db.get_cf(meta, keys::ENGINE_META)? {
        st.engine = state::decode::<EngineRecord>("engine record", &v)?;
    }
    if let Some(v) = db.get_cf(meta, keys::CHECKPOINTS_META)? {
        st.checkpoints = Arc::new(state::decode("retention checkpoints", &v)?);
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

/// Fills in what memory keeps besides the records: the earliest due time of the timer
/// index and each group's earliest visibility entry.
fn derive_hints(store: &Store, st: &mut State) -> Result<()> {
    st.next_timer_due = timer::next_due(store, st.engine.watermark)?;
    let group_ids: Vec<_> = st.groups.keys().copied().collect();
    for g in group_ids {
        let from = st.groups.get(&g).map(|gs| gs.rec.cursor.expired_to);
        if let Some(from) = from {
            let next = inflight::next_visible(store, g, from)?;
            if let Some(gs) = st.groups.get_mut(&g) {
                gs.next_visible = next;
            }
        }
    }
    Ok(())
}

/// The state as the store holds it, as opening the store would find it: what memory
/// goes back to after a round the store refused (it wrote nothing). The engine's
/// clock keeps `last_now`, so it still never goes back.
pub(crate) fn reload_state(store: &Store, last_now: u64) -> Result<State> {
    let mut st = load_state(&store.db)?;
    st.engine.last_now = st.engine.last_now.max(last_now);
    derive_hints(store, &mut st)?;
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
            .map_err(|e| Error::Internal(format!("cannot create {}: {e}", path.display())))?;
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
        let wbm =
            rocksdb::WriteBufferManager::new_write_buffer_manager(MEMTABLE_FLUSH_BUDGET, false);
        opts.set_write_buffer_manager(&wbm);
        let db = DB::open_cf_descriptors(
            &opts,
            &path,
            families::descriptors(&horizon, config.retention.as_secs(), &cache)?,
        )?;
        let moved = store::upgrade::move_runs(&db)?;
        if moved > 0 {
            tracing::info!(
                moved,
                "moved the run records of earlier builds to their own family"
            );
        }
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
            store: Store { db },
            path,
            config,
            observer,
            state: Mutex::new(State::default()),
            jobs: Mutex::new(Some(tx)),
            poisoned: Mutex::new(None),
            fail_next_sync: AtomicBool::new(false),
            storage_full: AtomicBool::new(false),
            out_of_space: AtomicBool::new(false),
            storage_full_why: Mutex::new(String::new()),
            disk_guard: disk::DiskGuard::default(),
            horizon,
            ready_tx,
            pump_wake,
            maintenance_wake,
            compression: compression::RecordSampler::default(),
            memtables: wbm,
            memtable_waits: memtables::Waits::default(),
            shutdown: AtomicBool::new(false),
        });
        derive_hints(&sh.store, &mut st)?;
        *sh.state.lock().unwrap_or_else(|p| p.into_inner()) = st;
        sh.disk_guard
            .measured(disk::disk_level(&sh).map(|l| l.headroom()));
        let w = {
            let sh = sh.clone();
            std::thread::Builder::new()
                .name("sundial-writer".into())
                .spawn(move || writer::run(sh, rx))
                .map_err(|e| Error::Internal(format!("cannot start writer: {e}")))?
        };
        let mut threads = Vec::new();
        if sh.config.background {
            let p = sh.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sundial-pump".into())
                    .spawn(move || pump::run(p))
                    .map_err(|e| Error::Internal(format!("cannot start pump: {e}")))?,
            );
            let m = sh.clone();
            threads.push(
                std::thread::Builder::new()
                    .name("sundial-maintenance".into())
                    .spawn(move || maintenance::maintenance_loop(m))
                    .map_err(|e| Error::Internal(format!("cannot start maintenance: {e}")))?,
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
            .unwrap_or(Err(Error::Internal("empty reply from the writer".into())))
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

    /// Queues a batch of sends named by their clients: each message carries its client's
    /// id in property `id_property` and among its keys. A message whose id was stored
    /// less than `window` ago (by an earlier round, or earlier in this batch) is not
    /// stored again: it gets the first one's receipt, marked `true`. The check and the
    /// write happen in one writer round, so concurrent retries cannot both store.
    pub fn submit_send_once(
        &self,
        msgs: Vec<NewMessage>,
        id_property: &'static str,
        window: Duration,
    ) -> Pending<Vec<Result<(SendReceipt, bool)>>> {
        let weight = msgs.len();
        let once = send::Once {
            property: id_property,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
        };
        writer::submit_weighted(self.sh(), true, weight, move |ctx| {
            send::send_batch_once(ctx, msgs, Some(once))
        })
    }

    /// Receives up to `max_messages` Ready messages for a group (created from latest if
    /// unknown); returns at once, possibly with none (see [`Engine::ready_signal`]).
    pub fn receive(&self, req: ReceiveRequest) -> Result<Vec<ReceivedMessage>> {
        let (deliveries, durable) = self.submit_receive(req).wait()?;
        let out = self.load_bodies(deliveries);
        durable.wait()?;
        out
    }

    /// Async form of [`Engine::receive`].
    pub async fn receive_async(&self, req: ReceiveRequest) -> Result<Vec<ReceivedMessage>> {
        let (deliveries, durable) = self.submit_receive(req).await?;
        let out = self.load_bodies(deliveries);
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

    fn load_bodies(&self, ds: Vec<consume::Delivery>) -> Result<Vec<ReceivedMessage>> {
        // Read in id order, which is the order the records are stored in (new
        // deliveries usually come in it already), and hand out in delivery order.
        let mut order: Vec<usize> = (0..ds.len()).collect();
        if !ds.windows(2).all(|w| w[0].id <= w[1].id) {
            order.sort_unstable_by_key(|&i| ds[i].id);
        }
        let ks: Vec<_> = order.iter().map(|&i| keys::message(ds[i].id)).collect();
        let mut bodies: Vec<Option<records::Deliverable>> = Vec::new();
        bodies.resize_with(ds.len(), || None);
        self.sh()
            .store
            .read_sorted(families::MESSAGES, &ks, |j, v| {
                // A record missing was removed by retention between hand-out and read;
                // its inflight record expires and is dropped on redelivery.
                if let Some(v) = v {
                    bodies[order[j]] = Some(records::decode_deliverable(v)?);
                }
                Ok(())
            })?;
        let mut out = Vec::with_capacity(ds.len());
        for (d, m) in ds.into_iter().zip(bodies) {
            let Some(m) = m else { continue };
            out.push(ReceivedMessage {
                message_id: d.id,
                tag: m.tag,
                keys: m.keys,
                properties: m.properties,
                body: m.body,
                deliver_at_ms: d.deliver_at_ms,
                ready_at_ms: d.ready_at_ms,
                born_ms: m.born_ms,
                delivery_attempt: d.attempt,
                receipt_handle: d.receipt,
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
    pub fn ack(&self, topic: &str, group: &str, receipt: &ReceiptHandle) -> Result<()> {
        self.ack_batch(topic, group, vec![*receipt])
            .into_iter()
            .next()
            .unwrap_or(Err(Error::Internal("empty reply from the writer".into())))
    }

    /// Acknowledges many deliveries in one commit; each succeeds or fails on its own.
    pub fn ack_batch(
        &self,
        topic: &str,
        group: &str,
        receipts: Vec<ReceiptHandle>,
    ) -> Vec<Result<()>> {
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
        receipts: Vec<ReceiptHandle>,
    ) -> Pending<Vec<Result<()>>> {
        let (topic, group) = (topic.to_string(), group.to_string());
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
        receipts: Vec<ReceiptHandle>,
    ) -> Pending<Vec<Result<()>>> {
        let (topic, group) = (topic.to_string(), group.to_string());
        writer::submit_weighted(self.sh(), true, receipts.len(), move |ctx| {
            Ok(receipts
                .iter()
                .map(|&r| consume::nack(ctx, &topic, &group, r))
                .collect())
        })
    }

    /// Gives a delivery back: visible again after the retry backoff of its attempt.
    pub fn nack(&self, topic: &str, group: &str, receipt: &ReceiptHandle) -> Result<()> {
        let (topic, group, receipt) = (topic.to_string(), group.to_string(), *receipt);
        writer::submit(self.sh(), true, move |ctx| {
            consume::nack(ctx, &topic, &group, receipt)
        })
        .wait()
    }

    /// Moves a delivery to `%DLQ%<group>` now, whatever its attempt; its receipt
    /// becomes stale.
    pub fn dead_letter(&self, topic: &str, group: &str, receipt: &ReceiptHandle) -> Result<()> {
        let (topic, group, receipt) = (topic.to_string(), group.to_string(), *receipt);
        writer::submit(self.sh(), true, move |ctx| {
            consume::dead_letter_now(ctx, &topic, &group, receipt)
        })
        .wait()
    }

    /// Makes a delivery invisible for `d` from now; returns its new receipt (the old
    /// one becomes stale).
    pub fn change_invisible_duration(
        &self,
        topic: &str,
        group: &str,
        receipt: &ReceiptHandle,
        d: Duration,
    ) -> Result<ReceiptHandle> {
        let (topic, group, receipt) = (topic.to_string(), group.to_string(), *receipt);
        writer::submit(self.sh(), true, move |ctx| {
            consume::change_invisible(ctx, &topic, &group, receipt, d)
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

    /// Bytes the memtables of every family hold now, counted by RocksDB as it
    /// allocates and frees their blocks (one atomic read: cheap enough to poll).
    pub fn memtable_bytes(&self) -> usize {
        self.sh().memtables.get_usage()
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
        maintenance::maintain(&self.inner.sh)
    }

    /// Compacts every family so retention filters run now (tests and operators).
    pub fn compact(&self) -> Result<()> {
        let sh = self.sh();
        for f in families::ALL {
            let cf = sh.store.cf(f)?;
            sh.store.db.flush_cf(cf)?;
            sh.store
                .db
                .compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// How many rows family `name` holds, counted by a full scan (tests only: it reads
    /// the whole family).
    #[doc(hidden)]
    pub fn count_rows(&self, name: &str) -> Result<usize> {
        let sh = self.sh();
        let f = families::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| Error::NotFound(format!("column family {name:?}")))?;
        let mut it = sh.store.db.raw_iterator_cf(sh.store.cf(f)?);
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Makes the next WAL sync fail, to exercise poisoning (tests only).
    #[doc(hidden)]
    pub fn inject_sync_failure(&self) {
        self.sh().fail_next_sync.store(true, Ordering::SeqCst);
    }
}
