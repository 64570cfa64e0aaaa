//! `sundial-bench`: benchmarks that put sundial's figures next to the raw RocksDB
//! ceiling measured by the same program on the same machine.

mod bodies;
mod burst;
mod consume;
mod daemon;
mod echo;
mod engine;
mod flood;
mod load;
mod plot;
mod queue;
mod raw;
mod redis_peer;
mod restart;
mod rss;
mod send;
mod soak;
mod steady;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sundial-bench", about = "sundial benchmarks")]
struct Cli {
    /// What every message carries: fresh random bytes (incompressible, the default) or
    /// one repeated byte (compresses almost to nothing, as runs before 2026-12-01 sent).
    #[arg(long, global = true, value_enum, default_value_t = bodies::Kind::Random)]
    bodies: bodies::Kind,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Engine-level: durable send throughput and a same-millisecond burst, each next to
    /// the raw RocksDB ceiling for the same bytes.
    Engine(engine::Args),
    /// Durable sends through the daemon over loopback with pipelined producers, next to
    /// the raw RocksDB ceiling (and a peer with `--peer redis`).
    #[command(alias = "daemon")]
    Send(send::Args),
    /// A same-millisecond burst through the daemon: due -> Ready, due -> all received
    /// and acked, lateness of what is due right after it.
    Burst(burst::Args),
    /// Consumers that receive one message and ack it per request, as RocketMQ's
    /// SimpleConsumer does.
    Consume(consume::Args),
    /// Open-loop scheduling at a fixed rate; delivery lateness percentiles.
    Steady(steady::Args),
    /// SIGKILL with N pending, restart: time to serve and to the first overdue message.
    Restart(restart::Args),
    /// Grows the pending count and samples the daemon's RSS and disk bytes.
    Soak(soak::Args),
    /// A well-behaved client's round trips before and during floods (idle connections,
    /// a client that never reads, producers at full rate).
    Flood(flood::Args),
    /// Renders lateness and backlog over time to a PNG with the dashboard's queries.
    Plot(plot::Args),
    /// The echo front end the workloads start as the path's ceiling (decodes each
    /// request and answers it without an engine); not for direct use.
    #[command(hide = true)]
    EchoServe {
        /// Bytes of body in every message a receive hands out.
        #[arg(long, default_value_t = 256)]
        body: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    bodies::set(cli.bodies);
    let ok = match cli.cmd {
        Cmd::Engine(a) => engine::run(a),
        Cmd::Send(a) => send::run(a),
        Cmd::Burst(a) => burst::run(a),
        Cmd::Consume(a) => consume::run(a),
        Cmd::Steady(a) => steady::run(a),
        Cmd::Restart(a) => restart::run(a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::Flood(a) => flood::run(a),
        Cmd::Plot(a) => plot::run(a),
        Cmd::EchoServe { body } => echo::serve(body),
    };
    if let Err(e) = ok {
        eprintln!("sundial-bench: {e}");
        std::process::exit(1);
    }
}
