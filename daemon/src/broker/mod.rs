//! The broker layer: one function per operation, in domain words and engine types, for
//! every protocol front end (`native` for sundial's frames; RocketMQ's gRPC next to it).
//! Each operation does the engine call, records its metrics and returns the engine's
//! [`Error`]; a front end only decodes, calls it and encodes. Every operation takes
//! `op`, the front end's name for it, which labels the request metrics.

mod groups;
mod lookup;
mod receive;
mod schedule;
mod send;
mod settle;
mod stats;
mod topics;

pub use send::CLIENT_ID_PROPERTY;
pub use stats::Report;

use crate::errors;
use crate::metrics::{self, Live};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_engine::{Engine, Error};
use sundial_wire::ErrorCode;
use tokio::sync::{watch, Mutex, Semaphore};

/// Longest long-poll wait a receive may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// Most messages in one batch send, receipts in one ack or nack.
pub const MAX_BATCH: usize = 4096;

/// Engine jobs async requests may have queued at once (the engine queues 16,384).
const JOB_SLOTS: usize = 8 * 1024;

/// Serves every front end's requests against one engine.
pub struct Broker {
    engine: Engine,
    live: Arc<Live>,
    started: Instant,
    /// Engine jobs queued by async requests at once: below the engine's queue depth, so
    /// queueing a job never blocks an async worker thread; beyond it requests wait here.
    job_slots: Semaphore,
    /// The last stats report and when it was made (see `stats::FRESH`).
    stats: Mutex<Option<(Instant, Report)>>,
    /// Turns true when the daemon shuts down: long polls then return what they have.
    stop: watch::Sender<bool>,
}

impl Broker {
    /// A broker over `engine`; `live` holds the figures the front ends keep.
    pub fn new(engine: Engine, live: Arc<Live>) -> Self {
        Broker {
            engine,
            live,
            started: Instant::now(),
            job_slots: Semaphore::new(JOB_SLOTS),
            stats: Mutex::new(None),
            stop: watch::channel(false).0,
        }
    }

    /// Starts the shutdown: long polls return what they have, front ends stop reading.
    pub fn shut_down(&self) {
        self.stop.send_replace(true);
    }

    /// Turns true once [`Broker::shut_down`] is called.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Runs one operation: times it, counts its failure by code and logs it.
    async fn measured<T>(
        &self,
        op: &'static str,
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let started = Instant::now();
        finished(op, started, work.await)
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
}

/// Records an operation that began at `started` and ended with `r` (see
/// [`Broker::measured`]; hot paths call it directly, without a wrapping future).
fn finished<T>(op: &'static str, started: Instant, r: Result<T, Error>) -> Result<T, Error> {
    let code = r.as_ref().err().map(|e| {
        let code = errors::code(e);
        if code == ErrorCode::Internal {
            tracing::error!(op, error = %e, "request failed");
        } else {
            tracing::debug!(op, error = %e, "request refused");
        }
        code.as_str()
    });
    metrics::request_done(op, started, code);
    r
}

fn check_batch(n: usize) -> Result<(), Error> {
    if n > MAX_BATCH {
        return Err(Error::BadRequest(format!(
            "a batch holds at most {MAX_BATCH} items, not {n}"
        )));
    }
    Ok(())
}
