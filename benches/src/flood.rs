//! `sundial-bench flood`: a well-behaved client's round trips (send due now, receive,
//! ack) before and during floods of idle connections, a client that never reads and
//! producers at full rate; the target is within 10× of unloaded. The workload is
//! `sundial_tests::flood`, the same code the `floods` test runs on a debug build.

use crate::load::{print_report, runtime, Target, TargetArgs};
use serde::Serialize;
use sundial_tests::flood::{self, quantile, FloodOptions};

/// Arguments of `sundial-bench flood`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Idle connections, each past its handshake.
    #[arg(long, default_value_t = 2_000)]
    idle: usize,
    /// Producers at full rate, one batch in flight each.
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Messages per producer batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Round trips timed before and during the floods.
    #[arg(long, default_value_t = 1_000)]
    round_trips: usize,
    #[command(flatten)]
    target: TargetArgs,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    machine: String,
    idle_connections: usize,
    flood_msgs_per_s: f64,
    never_reading_requests: u64,
    unloaded_ms_p50: f64,
    unloaded_ms_p99: f64,
    loaded_ms_p50: f64,
    loaded_ms_p99: f64,
    ratio_p50: f64,
    ratio_p99: f64,
}

pub fn run(a: Args) -> Result<(), String> {
    flood::raise_fd_limit();
    let rt = runtime()?;
    let target = Target::open(&a.target)?;
    let o = FloodOptions {
        idle: a.idle,
        producers: a.producers,
        batch: a.batch,
        round_trips: a.round_trips,
    };
    let r = rt.block_on(flood::run(&target.addr, &o))?;
    let ms = |v: &[std::time::Duration], p| quantile(v, p).as_secs_f64() * 1e3;
    let report = Report {
        machine: crate::engine::machine(),
        idle_connections: r.idle.len(),
        flood_msgs_per_s: r.flood_msgs_per_s,
        never_reading_requests: r.deaf_requests,
        unloaded_ms_p50: ms(&r.unloaded, 0.5),
        unloaded_ms_p99: ms(&r.unloaded, 0.99),
        loaded_ms_p50: ms(&r.loaded, 0.5),
        loaded_ms_p99: ms(&r.loaded, 0.99),
        ratio_p50: r.ratio(0.5),
        ratio_p99: r.ratio(0.99),
    };
    print_report(a.json, &report, |_| println!("{}", r.summary()))
}
