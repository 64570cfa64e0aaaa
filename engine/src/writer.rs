//! Group commit. One writer thread applies every state change in order; the changes of
//! many callers gathered from the queue go to RocksDB together and share one WAL sync,
//! and no caller of a durable operation hears "done" before that sync.
//!
//! Atomicity: the jobs of a round write into one in-memory [`Round`], whose reads see
//! the round's own writes, and the round reaches RocksDB as one WriteBatch together
//! with the records (topics, groups, counters) it changed. Each written batch is
//! therefore a consistent state on its own, and RocksDB's WAL recovery restores a
//! prefix of them. A round the file system has no room for is not written at all:
//! memory goes back to where it was before the round and its callers are refused with
//! `StorageFull`.
//!
//! Syncs run on their own thread: the writer writes a round (unsynced) and hands its
//! answers to the syncer, which syncs the WAL (one sync covers every round written
//! before it) and only then answers. Meanwhile the writer already applies the next
//! round, so a burst is not paced by the disk's sync latency. A later round may read
//! what an earlier, not yet synced round wrote; its own answers wait for a sync that
//! covers both. If a write fails for any reason but a full disk, or a sync fails, or
//! a job panics, the engine is poisoned: every caller still waiting for a sync gets the
//! error and later writes are refused until the engine is reopened.

use crate::error::{Error, Result};
use crate::failpoints;
use crate::state::State;
use crate::store::families::{self, Family};
use crate::store::keys::TopicId;
use crate::store::records::MessageBody;
use crate::store::{Read, Round, Row, RowBuf, Rows, Spare};
use crate::Shared;
use rocksdb::{ColumnFamily, WriteOptions};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Most jobs applied in one commit round.
const MAX_JOBS_PER_ROUND: usize = 512;
/// Jobs of at most this weight (messages they write) are light: a single send, a
/// receive of a few messages, an ack, a pump pass.
const LIGHT: usize = 16;
/// Most weight of heavy jobs in one round.
const MAX_WEIGHT_PER_ROUND: usize = 16 * 1024;
/// Most heavy jobs held back for later rounds; beyond it the queue is not drained.
const MAX_DEFERRED: usize = 4 * 1024;
/// Most rows [`Ctx::walk`] reads at a time once its first chunk is used up.
const WALK_MAX_CHUNK: usize = 1024;

type Reply = Box<dyn FnOnce(Option<&Error>) + Send>;

/// The answer to one job, and whether it may only be given after a WAL sync.
struct Answer {
    durable: bool,
    reply: Reply,
}

/// One unit of work for the writer thread.
pub(crate) struct Job {
    run: Box<dyn FnOnce(&mut Ctx<'_>) + Send>,
    /// About how many messages it writes (see [`LIGHT`]).
    weight: usize,
}

/// The result of a submitted operation, available once it is durable.
#[must_use = "a pending operation does nothing unless waited for"]
pub struct Pending<T> {
    rx: Option<oneshot::Receiver<Result<T>>>,
    early: Option<Error>,
}

impl<T> Pending<T> {
    fn waiting(rx: oneshot::Receiver<Result<T>>) -> Self {
        Pending {
            rx: Some(rx),
            early: None,
        }
    }

    fn failed(e: Error) -> Self {
        Pending {
            rx: None,
            early: Some(e),
        }
    }

    /// Blocks the current thread until the result is durable (not from async code).
    pub fn wait(self) -> Result<T> {
        match (self.rx, self.early) {
            (_, Some(e)) => Err(e),
            (Some(rx), None) => rx.blocking_recv().unwrap_or_else(|_| Err(unanswered())),
            (None, None) => Err(Error::ShuttingDown),
        }
    }
}

/// The error of a job whose answer was dropped: the writer or the syncer panicked on
/// it (the engine drains every queued job before it closes, so nothing else drops one).
fn unanswered() -> Error {
    Error::Poisoned("an engine thread failed before answering (see the log)".into())
}

/// Poisons the engine if the thread holding it panics, so no caller goes on with
/// half-applied state (held by the writer, the syncer, the pump and maintenance).
pub(crate) struct PoisonOnPanic<'a> {
    sh: &'a Shared,
    thread: &'static str,
}

impl<'a> PoisonOnPanic<'a> {
    /// Guards the current thread, named `thread` in the poison reason.
    pub fn new(sh: &'a Shared, thread: &'static str) -> Self {
        PoisonOnPanic { sh, thread }
    }
}

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.sh
                .poison(&format!("the engine's {} thread panicked", self.thread));
        }
    }
}

/// Future side of [`Pending`], for async callers.
pub struct PendingFuture<T> {
    inner: Pending<T>,
}

impl<T> IntoFuture for Pending<T> {
    type Output = Result<T>;
    type IntoFuture = PendingFuture<T>;
    fn into_future(self) -> PendingFuture<T> {
        PendingFuture { inner: self }
    }
}

impl<T> Future for PendingFuture<T> {
    type Output = Result<T>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        if let Some(e) = self.inner.early.take() {
            return Poll::Ready(Err(e));
        }
        match self.inner.rx.as_mut() {
            Some(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or_else(|_| Err(unanswered()))),
            None => Poll::Ready(Err(Error::ShuttingDown)),
        }
    }
}

/// Queues `f` for the writer. `durable`: the reply waits for a WAL sync.
pub(crate) fn submit<T, F>(sh: &Shared, durable: bool, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
{
    submit_weighted(sh, durable, 1, f)
}

/// Like [`submit`] for a job writing about `weight` messages.
pub(crate) fn submit_weighted<T, F>(sh: &Shared, durable: bool, weight: usize, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce(&mut Ctx<'_>) -> Result<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let job = Job {
        weight,
        run: Box::new(move |ctx: &mut Ctx<'_>| {
            let r = ctx.run_job(f);
            ctx.replies.push(Answer {
                durable,
                reply: Box::new(move |fail: Option<&Error>| {
                    let r = match (r, fail) {
                        (Ok(_), Some(e)) => Err(e.clone()),
                        (r, _) => r,
                    };
                    let _ = tx.send(r);
                }),
            });
        }),
    };
    let sender = sh.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
    match sender {
        Some(s) if s.send(job).is_ok() => Pending::waiting(rx),
        _ => Pending::failed(Error::ShuttingDown),
    }
}

/// What a job sees: the engine, the state, and the round being built. Reads through it
/// ([`Read`]) see every earlier job's writes of the round.
pub(crate) struct Ctx<'a> {
    pub sh: &'a Shared,
    round: Round<'a>,
    pub st: &'a mut State,
    /// The engine's time for the current job (never goes back).
    pub now: u64,
    job_wrote: bool,
    /// Set when something became Ready or visible again, to wake long polls.
    pub ready_changed: bool,
    /// Set when the pump should re-check its next due time.
    pub kick_pump: bool,
    /// Messages made Ready this round, with their lateness, for the observer: told
    /// only once the round is stored, so a refused round counts nothing.
    pub readied: Vec<(TopicId, u64)>,
    /// Whether anything was written to RocksDB this round.
    wrote: bool,
    replies: Vec<Answer>,
    failed: Option<Error>,
    /// A buffer values are encoded into before they go into the round.
    scratch: Vec<u8>,
    /// Sent messages, written and no longer needed: freed by the syncer once it has
    /// answered, not on the writer thread (their memory was allocated by the callers'
    /// threads, and freeing it was a twentieth of a send's time here).
    pub spent: Vec<MessageBody>,
}

impl<'a> Ctx<'a> {
    fn new(
        sh: &'a Shared,
        handles: [&'a ColumnFamily; crate::store::families::COUNT],
        st: &'a mut State,
        spare: Spare,
    ) -> Self {
        Ctx {
            sh,
            round: Round::new(&sh.store.db, handles, spare),
            st,
            now: 0,
            job_wrote: false,
            ready_changed: false,
            kick_pump: false,
            readied: Vec::new(),
            wrote: false,
            replies: Vec::new(),
            failed: None,
            scratch: Vec::new(),
            spent: Vec::new(),
        }
    }

    fn run_job<T>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> Result<T>) -> Result<T> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if let Some(why) = self.sh.poisoned() {
            return Err(Error::Poisoned(why));
        }
        let clock_now = self.sh.config.clock.now_ms();
        if clock_now > self.st.engine.last_now {
            // Persisted lazily with the next change; reopen never reads an older time.
            self.st.engine_mut().last_now = clock_now;
        }
        self.now = self.st.engine.last_now;
        self.job_wrote = false;
        let r = f(self);
        match &r {
            Ok(_) => {}
            Err(e) if self.job_wrote => {
                // A job that fails after it started writing leaves memory and round out
                // of step: nothing of this round is written, and everything is refused
                // until reopen rather than guessed at.
                let why = format!("a write failed half-way: {e}");
                self.sh.poison(&why);
                self.failed = Some(Error::Poisoned(why));
            }
            Err(_) => {}
        }
        r
    }

    /// Runs one job; a panic in it poisons the engine (the round is not written).
    fn run_guarded(&mut self, job: Job) {
        let run = job.run;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(self)));
        if let Err(payload) = r {
            let why = format!("an engine job panicked: {}", panic_message(&*payload));
            self.sh.poison(&why);
            self.failed = Some(Error::Poisoned(why));
        }
    }

    /// A result that arrives once this round is durable, for a job answered before its
    /// sync (so its caller can prepare the answer meanwhile) that must not pass it on
    /// before.
    pub fn durable_ticket(&mut self) -> Pending<()> {
        let (tx, rx) = oneshot::channel();
        self.replies.push(Answer {
            durable: true,
            reply: Box::new(move |fail: Option<&Error>| {
                let _ = tx.send(fail.map_or(Ok(()), |e| Err(e.clone())));
            }),
        });
        Pending::waiting(rx)
    }

    pub fn put(&mut self, cf: Family, k: impl AsRef<[u8]>, v: impl AsRef<[u8]>) -> Result<()> {
        self.round.put(cf, k.as_ref(), v.as_ref())?;
        self.job_wrote = true;
        Ok(())
    }

    /// Writes under `k` the value `encode` appends to an empty buffer, which the round
    /// reuses (no allocation per record); returns the value's length.
    pub fn put_encoded(
        &mut self,
        cf: Family,
        k: impl AsRef<[u8]>,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<usize> {
        let mut v = std::mem::take(&mut self.scratch);
        v.clear();
        let r = encode(&mut v).and_then(|()| self.put(cf, k, &v));
        let len = v.len();
        self.scratch = v;
        r.map(|()| len)
    }

    /// The value the last [`Ctx::put_encoded`] wrote.
    pub fn last_encoded(&self) -> &[u8] {
        &self.scratch
    }

    pub fn delete(&mut self, cf: Family, k: impl AsRef<[u8]>) -> Result<()> {
        self.round.delete(cf, k.as_ref())?;
        self.job_wrote = true;
        Ok(())
    }

    /// Deletes a key that was put exactly once and never overwritten (timer keys): its
    /// tombstone vanishes together with the value instead of piling up.
    pub fn single_delete(&mut self, cf: Family, k: impl AsRef<[u8]>) -> Result<()> {
        self.round.single_delete(cf, k.as_ref())?;
        self.job_wrote = true;
        Ok(())
    }

    pub fn delete_range<A: AsRef<[u8]>>(&mut self, cf: Family, from: A, to: A) -> Result<()> {
        self.round.delete_range(cf, from.as_ref(), to.as_ref())?;
        self.job_wrote = true;
        Ok(())
    }

    /// Calls `f` for every row of `cf` in `[lower, upper)` in key order until it
    /// returns false; `f` may write (rows are read in chunks, so a write to `cf` above
    /// the current row may be seen later in the walk). The first chunk is `chunk` rows
    /// (a walk expected to stop early reads no more than it needs); later ones double,
    /// up to [`WALK_MAX_CHUNK`] rows or `chunk` if that is larger.
    pub fn walk(
        &mut self,
        cf: Family,
        lower: &[u8],
        upper: &[u8],
        chunk: usize,
        mut f: impl FnMut(&mut Self, &[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let most = chunk.max(WALK_MAX_CHUNK);
        let mut chunk = chunk.max(1);
        let mut from = lower.to_vec();
        let mut rows = RowBuf::default();
        loop {
            self.round.scan_into(cf, &from, upper, chunk, &mut rows)?;
            let n = rows.len();
            if n == 0 {
                return Ok(());
            }
            from.clear();
            from.extend_from_slice(rows.row(n - 1).0);
            from.push(0);
            for i in 0..n {
                let (k, v) = rows.row(i);
                if !f(self, k, v)? {
                    return Ok(());
                }
            }
            if n < chunk {
                return Ok(());
            }
            chunk = chunk.saturating_mul(2).min(most);
        }
    }

    /// Ends the round: writes it in one batch, unsynced (the syncer makes it durable).
    /// On failure nothing of it is stored: a full file system refuses the round's
    /// callers with `StorageFull` and sends until there is room again; any other
    /// failure poisons the engine.
    fn commit(&mut self) -> Option<Error> {
        if let Some(e) = &self.failed {
            return Some(e.clone());
        }
        let meta = families::META;
        let dirty = match self.st.take_dirty() {
            Ok(d) => d,
            Err(e) => return Some(e),
        };
        for (k, v) in dirty {
            let r = match v {
                Some(v) => self.round.put_unread(meta, &k, &v),
                None => self.round.delete_unread(meta, &k),
            };
            if let Err(e) = r {
                return Some(e);
            }
        }
        if self.round.is_empty() {
            return None;
        }
        let sh = self.sh;
        // After a write the file system refused, the memtables cannot shrink until
        // RocksDB finds room to flush again: refuse at once instead of waiting first.
        if !sh.out_of_space.load(Ordering::SeqCst) {
            sh.memtable_waits.wait(
                || sh.memtables.get_usage(),
                crate::MEMORY_MEMTABLES,
                crate::memtables::MOST,
            );
        }
        let batch = self.round.take_batch();
        let mut wo = WriteOptions::default();
        wo.set_sync(false);
        let r = if failpoints::fires(failpoints::WRITE_NO_SPACE) {
            Err(failpoints::no_space(failpoints::WRITE_NO_SPACE))
        } else {
            self.sh.store.db.write_opt(batch, &wo).map_err(Error::from)
        };
        match r {
            Ok(()) => {
                self.wrote = true;
                self.sh.out_of_space.store(false, Ordering::SeqCst);
                None
            }
            Err(e) if e.is_no_space() => {
                self.sh.out_of_space.store(true, Ordering::SeqCst);
                let why =
                    format!("the file system is full; nothing of this write was stored ({e})");
                // The next maintenance pass lifts the refusal once it finds room.
                self.sh.set_storage_full(why.clone());
                Some(Error::StorageFull(why))
            }
            Err(e) => {
                let why = format!("write failed: {e}");
                self.sh.poison(&why);
                Some(Error::Poisoned(why))
            }
        }
    }
}

impl Read for Ctx<'_> {
    fn get(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        self.round.get(f, k)
    }

    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>> {
        self.round.value_len(f, k)
    }

    fn scan(&self, f: Family, lower: &[u8], upper: &[u8], limit: usize) -> Result<Rows> {
        self.round.scan(f, lower, upper, limit)
    }

    fn last_in(&self, f: Family, lower: &[u8], upper: &[u8]) -> Result<Option<Row>> {
        self.round.last_in(f, lower, upper)
    }
}

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// A written round whose durable answers wait for a WAL sync.
struct Written {
    /// The count of writes this round must see synced (0: it waits for nothing).
    sync_to: u64,
    fail: Option<Error>,
    replies: Vec<Reply>,
    /// Memory to free once answered (see [`Ctx::spent`]).
    spent: Vec<MessageBody>,
}

/// The syncer thread's loop: sync once for every round queued so far, then answer
/// them in order. After a failed sync nothing written later is reported durable.
fn sync_loop(sh: Arc<Shared>, rx: Receiver<Written>) {
    let _dart = PoisonOnPanic::new(&sh, "WAL syncer");
    let mut synced = 0u64;
    let mut sync_failed: Option<Error> = None;
    while let Ok(first) = rx.recv() {
        let mut rounds = vec![first];
        rounds.extend(rx.try_iter());
        let need = rounds.iter().map(|r| r.sync_to).max().unwrap_or(0);
        let mut took = None;
        if need > synced && sync_failed.is_none() {
            let started = std::time::Instant::now();
            match sync_wal(&sh) {
                Ok(()) => {
                    synced = need;
                    took = Some(started.elapsed());
                }
                Err(e) => sync_failed = Some(e),
            }
        }
        for r in rounds {
            let fail = match (&r.fail, &sync_failed) {
                (Some(e), _) => Some(e),
                (None, Some(e)) if r.sync_to > synced => Some(e),
                _ => None,
            };
            for reply in r.replies {
                reply(fail);
            }
            drop(r.spent);
        }
        // Told after the answers, so recording it delays none of them.
        if let (Some(took), Some(o)) = (took, sh.config_observer()) {
            o.wal_synced(took);
        }
    }
}

/// Syncs the WAL (every write made before the call). A sync that fails because the
/// file system ran out of space (RocksDB then fails every WAL operation until it has
/// resumed) is tried again until RocksDB has resumed and it succeeds: the rounds it
/// covers are in RocksDB's memtables, which its resume flushes, so they do become
/// durable and their callers are answered then. Any other failure poisons the engine.
fn sync_wal(sh: &Shared) -> Result<()> {
    let sync = || {
        if sh.fail_next_sync.swap(false, Ordering::SeqCst)
            || failpoints::fires(failpoints::WAL_SYNC)
        {
            Err(failpoints::injected(failpoints::WAL_SYNC))
        } else {
            sh.store.db.flush_wal(true).map_err(Error::from)
        }
    };
    let Err(mut e) = sync() else {
        return Ok(());
    };
    if !e.is_no_space() {
        // The write that ran out of space may have failed a moment before its round
        // marks the engine out of space.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    if e.is_no_space() || sh.out_of_space.load(Ordering::SeqCst) {
        tracing::warn!(error = %e, "WAL sync waits for free space");
        while !sh.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(200));
            match sync() {
                Ok(()) => {
                    tracing::info!("WAL sync done after the file system had room again");
                    return Ok(());
                }
                Err(again) => e = again,
            }
        }
    }
    let why = format!("WAL sync failed: {e}");
    sh.poison(&why);
    Err(Error::Poisoned(why))
}

/// The writer thread's loop: gather, apply, write, hand the answers to the syncer
/// (answering at once those that need no sync).
pub(crate) fn run(sh: Arc<Shared>, rx: Receiver<Job>) {
    let _dart = PoisonOnPanic::new(&sh, "writer");
    let handles = match sh.store.handles() {
        Ok(h) => h,
        Err(e) => {
            sh.poison(&e.to_string());
            return;
        }
    };
    let mut spare = match Spare::new(&handles) {
        Ok(s) => s,
        Err(e) => {
            sh.poison(&e.to_string());
            return;
        }
    };
    let (sync_tx, sync_rx) = std::sync::mpsc::channel();
    let syncer = {
        let sh = sh.clone();
        std::thread::Builder::new()
            .name("sundial-sync".into())
            .spawn(move || sync_loop(sh, sync_rx))
    };
    let syncer = match syncer {
        Ok(t) => t,
        Err(e) => {
            sh.poison(&format!("cannot start the WAL syncer: {e}"));
            return;
        }
    };
    let mut queue = RoundQueue::default();
    // Rounds that wrote something, so far: what a durable answer must see synced.
    let mut written = 0u64;
    while let Some(jobs) = queue.next_round(&rx) {
        let mut guard = sh.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut ctx = Ctx::new(&sh, handles, &mut guard, spare);
        for job in jobs {
            ctx.run_guarded(job);
        }
        let fail = ctx.commit();
        if ctx.wrote {
            written += 1;
        }
        let replies = std::mem::take(&mut ctx.replies);
        let (ready_changed, kick) = (ctx.ready_changed, ctx.kick_pump);
        let readied = std::mem::take(&mut ctx.readied);
        let spent = std::mem::take(&mut ctx.spent);
        spare = ctx.round.into_spare();
        if let (None, Some(o)) = (&fail, sh.config_observer()) {
            // Runs of equal figures (a burst's) are reported in one call each.
            let mut i = 0;
            while let Some(&(topic, lateness)) = readied.get(i) {
                let n = readied[i..]
                    .iter()
                    .take_while(|&&r| r == (topic, lateness))
                    .count();
                i += n;
                if let Some(t) = guard.topics.get(&topic) {
                    o.ready_many(&t.rec.name, lateness, n as u64);
                }
            }
        }
        if matches!(fail, Some(Error::StorageFull(_))) {
            // The round wrote nothing (a full disk): memory goes back to what the store
            // holds, read again rather than copied before every round, so a round's
            // cost does not grow with the number of topics and groups.
            match crate::reload_state(&sh.store, guard.engine.last_now) {
                Ok(st) => *guard = st,
                Err(e) => sh.poison(&format!(
                    "cannot read the state back after a refused round: {e}"
                )),
            }
        }
        drop(guard);
        // Announce before answering, so a caller that got its answer also sees the
        // signal. Receives it wakes run in a later round, whose answers wait for a
        // sync that covers this round too, so nothing reaches a consumer before it
        // is durable.
        if ready_changed && fail.is_none() {
            sh.ready_tx.send_modify(|g| *g = g.wrapping_add(1));
        }
        // A refused round wrote nothing: its callers need not wait behind a sync.
        let (durable, now): (Vec<_>, Vec<_>) = replies
            .into_iter()
            .partition(|a| a.durable && fail.is_none());
        for a in now {
            (a.reply)(fail.as_ref());
        }
        if !durable.is_empty() {
            let round = Written {
                sync_to: written,
                fail,
                replies: durable.into_iter().map(|a| a.reply).collect(),
                spent,
            };
            if let Err(std::sync::mpsc::SendError(round)) = sync_tx.send(round) {
                let gone = Error::Poisoned("the WAL syncer stopped".into());
                for reply in round.replies {
                    reply(Some(&gone));
                }
            }
        }
        if kick {
            sh.pump_wake.kick();
        }
    }
    drop(sync_tx);
    let _ = syncer.join();
}

/// Forms rounds so light jobs are not stuck behind heavy ones: a light job (a single
/// send, an ack, a small receive, a pump pass) that arrives while a round of large
/// batches is being written goes into the next round on its own, which is then only a
/// sync; the held-back batches follow in the round after. Heavy jobs keep their order
/// and run at least every other round, so light traffic cannot starve them.
#[derive(Default)]
struct RoundQueue {
    deferred: std::collections::VecDeque<Job>,
    last_was_light_only: bool,
}

impl RoundQueue {
    /// The jobs of the next round; `None` once every sender is gone and nothing is
    /// left.
    fn next_round(&mut self, rx: &Receiver<Job>) -> Option<Vec<Job>> {
        let mut light = Vec::new();
        if self.deferred.is_empty() {
            // Nothing held back: wait for work.
            let first = rx.recv().ok()?;
            self.sort(first, &mut light);
        }
        while light.len() < MAX_JOBS_PER_ROUND && self.deferred.len() < MAX_DEFERRED {
            match rx.try_recv() {
                Ok(j) => self.sort(j, &mut light),
                Err(_) => break,
            }
        }
        let take_heavy = light.is_empty() || self.last_was_light_only;
        let mut jobs = light;
        let mut weight = 0;
        if take_heavy {
            while let Some(j) = self.deferred.front() {
                let full = jobs.len() >= MAX_JOBS_PER_ROUND
                    || (weight > 0 && weight + j.weight > MAX_WEIGHT_PER_ROUND);
                if full {
                    break;
                }
                weight += j.weight;
                if let Some(j) = self.deferred.pop_front() {
                    jobs.push(j);
                }
            }
        }
        self.last_was_light_only = weight == 0;
        Some(jobs)
    }

    fn sort(&mut self, j: Job, light: &mut Vec<Job>) {
        if j.weight <= LIGHT {
            light.push(j);
        } else {
            self.deferred.push_back(j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn job(weight: usize) -> Job {
        Job {
            run: Box::new(|_| {}),
            weight,
        }
    }

    fn weights(round: Option<Vec<Job>>) -> Vec<usize> {
        round.expect("a round").iter().map(|j| j.weight).collect()
    }

    #[test]
    fn light_jobs_pass_waiting_batches_which_keep_their_order_and_are_not_starved() {
        let (tx, rx) = sync_channel(64);
        let mut q = RoundQueue::default();
        for w in [256, 1, 300, 2] {
            tx.send(job(w)).unwrap();
        }
        // Light jobs first, alone; the batches wait one round, in order.
        assert_eq!(weights(q.next_round(&rx)), vec![1, 2]);
        tx.send(job(3)).unwrap();
        // A light-only round was just done: the batches go now, with the new light job.
        assert_eq!(weights(q.next_round(&rx)), vec![3, 256, 300]);
        // Nothing deferred: a round is whatever is queued.
        tx.send(job(500)).unwrap();
        assert_eq!(weights(q.next_round(&rx)), vec![500]);
        // The last round took batches: a light job gets a round of its own again;
        // then batches beyond the weight budget wait for the next round.
        for w in [10_000, 10_001, 4] {
            tx.send(job(w)).unwrap();
        }
        assert_eq!(weights(q.next_round(&rx)), vec![4]);
        assert_eq!(weights(q.next_round(&rx)), vec![10_000]);
        assert_eq!(weights(q.next_round(&rx)), vec![10_001]);
        drop(tx);
        assert!(q.next_round(&rx).is_none(), "senders gone, nothing left");
    }

    #[test]
    fn a_long_backlog_of_batches_does_not_keep_light_jobs_waiting() {
        let (tx, rx) = sync_channel(8 * 1024);
        let mut q = RoundQueue::default();
        // More batches than one round holds stay held back after it.
        for _ in 0..4 * MAX_JOBS_PER_ROUND {
            tx.send(job(20)).unwrap();
        }
        let first = weights(q.next_round(&rx));
        assert_eq!(first.len(), MAX_JOBS_PER_ROUND);
        assert!(q.deferred.len() > MAX_JOBS_PER_ROUND);
        tx.send(job(1)).unwrap();
        assert_eq!(weights(q.next_round(&rx)), vec![1]);
    }
}
