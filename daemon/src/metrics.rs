//! Every metric the daemon exports, emitted from the named functions below (so the
//! dashboard and its test can find them all in one file), and the `/metrics` endpoint.
//!
//! Counts of messages by state and the cumulative per-topic and per-group counters come
//! from the engine's exact counters at scrape time; request durations, receives, nacks,
//! lateness and WAL syncs are recorded as they happen. Labels are topic, group, op, code
//! and column family: never a message id.

use bytes::Bytes;
use http_body_util::Full;
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;
use sundial_engine::{Engine, Observer};
use tokio::net::TcpListener;

/// Names of every metric family, for documentation and tests.
#[cfg_attr(not(test), allow(dead_code))]
pub const FAMILIES: &[&str] = &[
    "sundial_sends_total",
    "sundial_receives_total",
    "sundial_acks_total",
    "sundial_nacks_total",
    "sundial_redeliveries_total",
    "sundial_dead_letters_total",
    "sundial_recalls_total",
    "sundial_deduplicated_sends_total",
    "sundial_timing_messages",
    "sundial_ready_messages",
    "sundial_inflight_messages",
    "sundial_retry_messages",
    "sundial_delivery_lateness_seconds",
    "sundial_receive_lateness_seconds",
    "sundial_request_duration_seconds",
    "sundial_request_errors_total",
    "sundial_early_deliveries_total",
    "sundial_rocksdb_sst_bytes",
    "sundial_rocksdb_memtable_bytes",
    "sundial_rocksdb_pending_compaction_bytes",
    "sundial_rocksdb_running_compactions",
    "sundial_rocksdb_block_cache_bytes",
    "sundial_rocksdb_block_cache_pinned_bytes",
    "sundial_rocksdb_table_readers_bytes",
    "sundial_rocksdb_write_stopped",
    "sundial_rocksdb_delayed_write_rate_bytes",
    "sundial_rocksdb_body_compression",
    "sundial_rocksdb_body_compression_ratio",
    "sundial_rocksdb_memtable_waits_total",
    "sundial_rocksdb_memtable_wait_seconds",
    "sundial_wal_sync_duration_seconds",
    "sundial_connections",
    "sundial_connections_total",
    "sundial_connections_refused_total",
    "sundial_unauthorized_total",
    "sundial_grpc_clients",
    "sundial_grpc_renewing_deliveries",
    "sundial_disk_bytes",
    "sundial_disk_high_watermark_bytes",
    "sundial_filesystem_used_bytes",
    "sundial_filesystem_size_bytes",
    "sundial_storage_full",
    "sundial_storage_poisoned",
    "sundial_uptime_seconds",
];

/// Lateness buckets (seconds): sub-millisecond resolution where sundial aims to be.
const LATENESS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// Request-duration buckets (seconds); a receive's long-poll wait is included.
const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// WAL sync buckets (seconds): from a fast SSD's tens of microseconds to a stalled disk.
const SYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5,
];

/// The exporter with every histogram's buckets set.
fn builder() -> Result<PrometheusBuilder, metrics_exporter_prometheus::BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("lateness_seconds".into()), LATENESS_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full("sundial_request_duration_seconds".into()),
            DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("sundial_wal_sync_duration_seconds".into()),
            SYNC_BUCKETS,
        )
}

/// Installs the global Prometheus recorder with explicit histogram buckets.
pub fn install() -> Result<PrometheusHandle, String> {
    builder()
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
        .inspect(|_| {
            INSTALLED.store(true, Ordering::Relaxed);
            // Unlabelled counters exist from the start, at 0, so a rate() or an alert on
            // them has a series before the first event.
            counter!("sundial_connections_total").increment(0);
            counter!("sundial_connections_refused_total").increment(0);
            counter!("sundial_unauthorized_total").increment(0);
            grpc_sessions(0, 0);
            let _ = histogram!("sundial_wal_sync_duration_seconds");
        })
}

/// Live figures the engine does not know.
#[derive(Default)]
pub struct Live {
    /// Open client connections.
    pub connections: AtomicU64,
}

/// Records what the engine reports as it happens: delivery lateness (Ready time −
/// delivery time) as the pump promotes, and the duration of each WAL sync.
#[derive(Default)]
pub struct EngineObserver {
    by_topic: RwLock<HashMap<String, metrics::Histogram>>,
    wal_sync: std::sync::OnceLock<Histogram>,
}

impl Observer for EngineObserver {
    fn wal_synced(&self, took: std::time::Duration) {
        let secs = took.as_secs_f64();
        if INSTALLED.load(Ordering::Relaxed) {
            self.wal_sync
                .get_or_init(|| histogram!("sundial_wal_sync_duration_seconds"))
                .record(secs);
        } else {
            histogram!("sundial_wal_sync_duration_seconds").record(secs);
        }
    }

    fn ready(&self, topic: &str, lateness_ms: u64) {
        self.ready_many(topic, lateness_ms, 1);
    }

    fn ready_many(&self, topic: &str, lateness_ms: u64, count: u64) {
        let secs = lateness_ms as f64 / 1000.0;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if let Some(h) = self
            .by_topic
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            h.record_many(secs, count);
            return;
        }
        let h = histogram!("sundial_delivery_lateness_seconds", "topic" => topic.to_string());
        h.record_many(secs, count);
        self.by_topic
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_string(), h);
    }
}

/// A front end serves these ops: each has a request-duration series and an `Internal`
/// error series from the start, at 0, so the request panels have data before the first
/// request or failure. `Internal` is the code that means the daemon's own fault, the one
/// worth a line at 0; refusals get their series as they happen.
pub fn serving(ops: &[&'static str]) {
    for &op in ops {
        let _ = histogram!("sundial_request_duration_seconds", "op" => op);
        counter!("sundial_request_errors_total", "op" => op, "code" => "Internal").increment(0);
    }
}

/// Whether [`install`] made the exporter the global recorder. Only then are series
/// handles kept: a handle records into the recorder it came from, and unit tests record
/// into recorders of their own.
static INSTALLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread's handles of the request-duration series, by operation (a bounded
    /// set of names). Looking a series up in the registry hashes its labels and takes a
    /// lock: on every request it cost more than recording the figure.
    static REQUEST_SERIES: RefCell<Vec<(&'static str, Histogram)>> =
        const { RefCell::new(Vec::new()) };
}

/// A request finished (`code` is its error code, if refused).
pub fn request_done(op: &'static str, started: Instant, code: Option<&'static str>) {
    let secs = started.elapsed().as_secs_f64();
    let series = || histogram!("sundial_request_duration_seconds", "op" => op);
    if INSTALLED.load(Ordering::Relaxed) {
        REQUEST_SERIES.with_borrow_mut(|kept| match kept.iter().find(|(o, _)| *o == op) {
            Some((_, h)) => h.record(secs),
            None => {
                let h = series();
                h.record(secs);
                kept.push((op, h));
            }
        });
    } else {
        series().record(secs);
    }
    if let Some(code) = code {
        counter!("sundial_request_errors_total", "op" => op, "code" => code).increment(1);
    }
}

/// One topic and group's receive series.
struct ReceiveSeries {
    topic: String,
    group: String,
    lateness: Histogram,
    receives: Counter,
}

impl ReceiveSeries {
    fn of(topic: &str, group: &str) -> ReceiveSeries {
        ReceiveSeries {
            topic: topic.to_string(),
            group: group.to_string(),
            lateness: histogram!("sundial_receive_lateness_seconds", "topic" => topic.to_string()),
            receives: counter!(
                "sundial_receives_total",
                "topic" => topic.to_string(),
                "group" => group.to_string()
            ),
        }
    }

    fn record(&self, n: u64, first_lateness_ms: impl Iterator<Item = u64>) {
        for l in first_lateness_ms {
            self.lateness.record(l as f64 / 1000.0);
        }
        self.receives.increment(n);
    }
}

/// Most receive series a thread keeps handles of; past that it starts over.
const KEPT_RECEIVE_SERIES: usize = 64;

thread_local! {
    /// This thread's handles of the receive series, by topic and group. The registry's
    /// lookup copied the label strings and hashed them, twice per receive.
    static RECEIVE_SERIES: RefCell<Vec<ReceiveSeries>> = const { RefCell::new(Vec::new()) };
}

/// `n` messages handed to a group; `first_lateness_ms`: receive time − delivery time of
/// each first delivery (redeliveries are late by their backoff, not by sundial).
pub fn delivered(topic: &str, group: &str, n: u64, first_lateness_ms: impl Iterator<Item = u64>) {
    if !INSTALLED.load(Ordering::Relaxed) {
        ReceiveSeries::of(topic, group).record(n, first_lateness_ms);
        return;
    }
    RECEIVE_SERIES.with_borrow_mut(|kept| {
        let at = match kept
            .iter()
            .position(|s| s.topic == topic && s.group == group)
        {
            Some(at) => at,
            None => {
                if kept.len() >= KEPT_RECEIVE_SERIES {
                    kept.clear();
                }
                kept.push(ReceiveSeries::of(topic, group));
                kept.len() - 1
            }
        };
        kept[at].record(n, first_lateness_ms);
    });
}

/// A send retried with a client id already stored was answered with the first receipt.
pub fn deduplicated(topic: &str) {
    counter!("sundial_deduplicated_sends_total", "topic" => topic.to_string()).increment(1);
}

/// RocketMQ clients with a Telemetry stream open, and the auto-renew deliveries kept
/// invisible for them.
pub fn grpc_sessions(clients: usize, renewing: usize) {
    gauge!("sundial_grpc_clients").set(clients as f64);
    gauge!("sundial_grpc_renewing_deliveries").set(renewing as f64);
}

/// Deliveries given back by a group.
pub fn nacked(topic: &str, group: &str, n: u64) {
    counter!("sundial_nacks_total", "topic" => topic.to_string(), "group" => group.to_string())
        .increment(n);
}

/// A connection was accepted (`true`) or refused over the limit (`false`).
pub fn connection(accepted: bool) {
    if accepted {
        counter!("sundial_connections_total").increment(1);
    } else {
        counter!("sundial_connections_refused_total").increment(1);
    }
}

/// A handshake was refused for a missing or wrong token.
pub fn unauthorized() {
    counter!("sundial_unauthorized_total").increment(1);
}

/// Reads the engine's exact counters and storage figures into the gauges and the
/// cumulative counters. Blocking: call it off the async threads.
pub fn refresh(engine: &Engine, live: &Live, started: Instant) {
    let s = engine.stats();
    for t in &s.topics {
        let topic = t.name.clone();
        counter!("sundial_sends_total", "topic" => topic.clone()).absolute(t.sent);
        counter!("sundial_recalls_total", "topic" => topic.clone()).absolute(t.recalled);
        counter!("sundial_deduplicated_sends_total", "topic" => topic.clone()).increment(0);
        gauge!("sundial_timing_messages", "topic" => topic.clone()).set(t.timing as f64);
        // Families fed by events get their series with the topic or group, at 0, so a
        // panel on them has data before the first event.
        let _ = histogram!("sundial_delivery_lateness_seconds", "topic" => topic.clone());
        let _ = histogram!("sundial_receive_lateness_seconds", "topic" => topic.clone());
        for g in &t.groups {
            let l = [("topic", topic.clone()), ("group", g.name.clone())];
            counter!("sundial_receives_total", &l).increment(0);
            counter!("sundial_nacks_total", &l).increment(0);
            counter!("sundial_acks_total", &l).absolute(g.acked);
            counter!("sundial_redeliveries_total", &l).absolute(g.redelivered);
            counter!("sundial_dead_letters_total", &l).absolute(g.dead_lettered);
            gauge!("sundial_ready_messages", &l).set(g.backlog as f64);
            gauge!("sundial_inflight_messages", &l).set(g.inflight as f64);
            gauge!("sundial_retry_messages", &l).set(g.retry as f64);
        }
    }
    counter!("sundial_early_deliveries_total").absolute(s.early_deliveries);
    for f in &s.families {
        let l = [("family", f.name.clone())];
        gauge!("sundial_rocksdb_sst_bytes", &l).set(f.sst_bytes as f64);
        gauge!("sundial_rocksdb_memtable_bytes", &l).set(f.memtable_bytes as f64);
        gauge!("sundial_rocksdb_pending_compaction_bytes", &l)
            .set(f.pending_compaction_bytes as f64);
    }
    gauge!("sundial_rocksdb_running_compactions").set(s.running_compactions as f64);
    gauge!("sundial_rocksdb_block_cache_bytes").set(s.block_cache_bytes as f64);
    gauge!("sundial_rocksdb_block_cache_pinned_bytes").set(s.block_cache_pinned_bytes as f64);
    gauge!("sundial_rocksdb_table_readers_bytes").set(s.table_readers_bytes as f64);
    gauge!("sundial_rocksdb_write_stopped").set(u8::from(s.write_stopped) as f64);
    gauge!("sundial_rocksdb_delayed_write_rate_bytes").set(s.delayed_write_rate as f64);
    gauge!("sundial_rocksdb_body_compression").set(u8::from(s.body_compression) as f64);
    // NaN until the writer has sampled 16 KiB of bodies.
    gauge!("sundial_rocksdb_body_compression_ratio")
        .set(s.body_compression_ratio.unwrap_or(f64::NAN));
    counter!("sundial_rocksdb_memtable_waits_total").absolute(s.memtable_waits);
    gauge!("sundial_rocksdb_memtable_wait_seconds").set(s.memtable_wait_seconds);
    gauge!("sundial_disk_bytes").set(s.disk_bytes as f64);
    // The watermark in bytes: the configured budget, else the ratio of the filesystem.
    let watermark = s.disk_high_watermark_bytes.or(s
        .filesystem
        .map(|(_, total)| (total as f64 * s.disk_high_ratio) as u64));
    if let Some(w) = watermark {
        gauge!("sundial_disk_high_watermark_bytes").set(w as f64);
    }
    if let Some((used, total)) = s.filesystem {
        gauge!("sundial_filesystem_used_bytes").set(used as f64);
        gauge!("sundial_filesystem_size_bytes").set(total as f64);
    }
    gauge!("sundial_storage_full").set(u8::from(s.storage_full) as f64);
    gauge!("sundial_storage_poisoned").set(u8::from(s.poisoned) as f64);
    gauge!("sundial_connections").set(live.connections.load(Ordering::Relaxed) as f64);
    gauge!("sundial_uptime_seconds").set(started.elapsed().as_secs_f64());
}

/// Serves `GET /metrics` (Prometheus text) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    engine: Engine,
    live: Arc<Live>,
    started: Instant,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper::service::service_fn;
    tokio::pin!(shutdown);
    // Scrapes are few; more than 16 at once wait for a slot (each reads the engine's
    // figures on the blocking pool).
    let slots = Arc::new(tokio::sync::Semaphore::new(16));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => {
                // Connections hold engine handles: end them so the engine closes now.
                conns.shutdown().await;
                return;
            }
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (handle, engine, live) = (handle.clone(), engine.clone(), live.clone());
        conns.spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (handle, engine, live) = (handle.clone(), engine.clone(), live.clone());
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let text = tokio::task::spawn_blocking(move || {
                            refresh(&engine, &live, started);
                            handle.run_upkeep();
                            handle.render()
                        })
                        .await
                        .unwrap_or_default();
                        hyper::Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(text)))
                    } else if cfg!(feature = "failpoints") && req.uri().path().starts_with("/fail/")
                    {
                        set_failpoint(req).await
                    } else {
                        hyper::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"metrics are at /metrics\n")))
                    };
                    resp.map_err(|e| e.to_string())
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// `PUT /fail/NAME` with the actions as the body sets an engine failpoint; `DELETE`
/// turns it off. Only in builds with the `failpoints` feature (the reliability tests).
#[cfg(feature = "failpoints")]
async fn set_failpoint(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::http::Error> {
    use http_body_util::BodyExt;
    let name = req.uri().path().trim_start_matches("/fail/").to_string();
    let method = req.method().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return answer(400, e.to_string()),
    };
    let actions = match method {
        hyper::Method::PUT => String::from_utf8_lossy(&body).trim().to_string(),
        hyper::Method::DELETE => "off".to_string(),
        _ => return answer(405, "use PUT or DELETE".into()),
    };
    match sundial_engine::failpoints::configure(&name, &actions) {
        Ok(()) => {
            tracing::warn!(failpoint = %name, %actions, "failpoint set");
            answer(200, format!("{name}={actions}\n"))
        }
        Err(e) => answer(400, e),
    }
}

#[cfg(feature = "failpoints")]
fn answer(status: u16, text: String) -> Result<hyper::Response<Full<Bytes>>, hyper::http::Error> {
    hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
}

/// Without the `failpoints` feature there is nothing to set.
#[cfg(not(feature = "failpoints"))]
async fn set_failpoint(
    _req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, hyper::http::Error> {
    hyper::Response::builder()
        .status(404)
        .body(Full::new(Bytes::from_static(b"built without failpoints\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family is emitted by a function above (histograms with buckets), and the
    /// list names them all: a family added without listing it, or listed and never
    /// emitted, fails here.
    #[test]
    fn every_family_is_listed_and_histograms_have_buckets() {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(
            dir.path(),
            sundial_engine::Config {
                disk_high_watermark_bytes: Some(1 << 30),
                ..sundial_engine::Config::default()
            },
        )
        .unwrap();
        engine
            .create_topic("t", sundial_engine::TopicKind::Mixed)
            .unwrap();
        engine
            .create_group("t", "g", sundial_engine::GroupStart::Earliest, None)
            .unwrap();
        metrics::with_local_recorder(&recorder, || {
            let observer = EngineObserver::default();
            observer.ready("t", 1);
            observer.wal_synced(std::time::Duration::from_micros(300));
            request_done("send", Instant::now(), Some("BadRequest"));
            delivered("t", "g", 2, [0u64, 2].into_iter());
            nacked("t", "g", 1);
            connection(true);
            connection(false);
            unauthorized();
            deduplicated("t");
            grpc_sessions(1, 2);
            refresh(&engine, &Live::default(), Instant::now());
        });
        let text = handle.render();
        for f in FAMILIES {
            assert!(
                text.lines().any(|l| l.starts_with(f)),
                "{f} is not exported:\n{text}"
            );
        }
        for l in text.lines().filter(|l| l.starts_with("sundial_")) {
            let name = l.split(['{', ' ']).next().unwrap();
            let base = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                FAMILIES.contains(&base),
                "{base} is exported but not listed"
            );
        }
        for h in [
            "sundial_delivery_lateness_seconds_bucket",
            "sundial_receive_lateness_seconds_bucket",
            "sundial_request_duration_seconds_bucket",
            "sundial_wal_sync_duration_seconds_bucket",
        ] {
            assert!(
                text.contains(h),
                "{h} missing: histograms must have buckets"
            );
        }
    }
}
