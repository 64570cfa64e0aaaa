//! The `sundial` binary: `sundial serve` runs the daemon; every other subcommand is a
//! client of a running daemon (`--addr`, default 127.0.0.1:7700).

mod broker;
mod cli;
mod config;
mod errors;
mod memory;
mod metrics;
mod native;
mod partial;
mod rmq;

use clap::{Parser, Subcommand};
use cli::{ClientArgs, GroupCmd, MessageCmd, TopicCmd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sundial_engine::{
    Clock, Config, Engine, GroupStart, NewMessage, ReceiveRequest, SystemClock, TopicKind,
};

#[derive(Parser)]
#[command(name = "sundial", version, about = "A durable delay-message broker")]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, env = "SUNDIAL_LOG_LEVEL", global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the daemon.
    Serve(Box<config::ServeArgs>),
    /// Topics: create, list, show, delete.
    Topic {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: TopicCmd,
    },
    /// Consumer groups: create, list, reset-offset.
    Group {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: GroupCmd,
    },
    /// Sends one message; prints its receipt once it is durable.
    Send {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::SendArgs,
    },
    /// Receives messages for a consumer group.
    Receive {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::ReceiveArgs,
    },
    /// Acknowledges deliveries.
    Ack {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::SettleArgs,
    },
    /// Gives deliveries back for redelivery after the retry backoff.
    Nack {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::SettleArgs,
    },
    /// Cancels a message that is still waiting for its delivery time.
    Recall {
        #[command(flatten)]
        client: ClientArgs,
        /// Recall handle from the send receipt.
        handle: String,
    },
    /// Moves a waiting message to a new delivery time.
    Reschedule {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        args: cli::RescheduleArgs,
    },
    /// Messages: show one, find by key.
    Message {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        cmd: MessageCmd,
    },
    /// Counters and storage figures.
    Stats {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Runs the storage engine end to end without a daemon: schedules messages a few
    /// seconds ahead, receives each when it becomes Ready, acks it, and prints how late
    /// it was.
    Demo {
        /// Data directory (a temporary one by default).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Messages to schedule.
        #[arg(long, default_value_t = 5)]
        messages: u64,
        /// Spacing between delivery times, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        spacing_ms: u64,
    },
}

fn init_logs(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn main() {
    let cli = Cli::parse();
    let level = cli.log_level;
    let code = match cli.cmd {
        Cmd::Serve(mut args) => {
            args.log_level = level;
            serve(*args)
        }
        Cmd::Demo {
            data_dir,
            messages,
            spacing_ms,
        } => {
            init_logs(level.as_deref().unwrap_or("warn"));
            match demo(data_dir, messages, spacing_ms) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("error: {} ({})", e, errors::code(&e));
                    1
                }
            }
        }
        Cmd::Topic { client, cmd } => match cmd {
            TopicCmd::Create {
                topic,
                message_type,
            } => cli::run(level, client, |c| cli::create_topic(c, topic, message_type)),
            TopicCmd::List => cli::run(level, client, cli::list_topics),
            TopicCmd::Show { topic } => cli::run(level, client, |c| cli::show_topic(c, topic)),
            TopicCmd::Delete { topic } => cli::run(level, client, |c| cli::delete_topic(c, topic)),
        },
        Cmd::Group { client, cmd } => match cmd {
            GroupCmd::Create {
                group,
                topic,
                from,
                filter,
            } => cli::run(level, client, |c| {
                cli::create_group(c, group, topic, from, filter)
            }),
            GroupCmd::List { topic } => cli::run(level, client, |c| cli::list_groups(c, topic)),
            GroupCmd::ResetOffset { group, topic, to } => {
                cli::run(level, client, |c| cli::reset_offset(c, group, topic, to))
            }
        },
        Cmd::Send { client, args } => cli::run(level, client, |c| cli::send(c, args)),
        Cmd::Receive { client, args } => cli::run(level, client, |c| cli::receive(c, args)),
        Cmd::Ack { client, args } => cli::run(level, client, |c| cli::settle(c, args, true)),
        Cmd::Nack { client, args } => cli::run(level, client, |c| cli::settle(c, args, false)),
        Cmd::Recall { client, handle } => cli::run(level, client, |c| cli::recall(c, handle)),
        Cmd::Reschedule { client, args } => cli::run(level, client, |c| cli::reschedule(c, args)),
        Cmd::Message { client, cmd } => match cmd {
            MessageCmd::Show { id } => cli::run(level, client, |c| cli::show_message(c, id)),
            MessageCmd::Find { topic, key } => {
                cli::run(level, client, |c| cli::find_messages(c, topic, key))
            }
        },
        Cmd::Stats { client } => cli::run(level, client, cli::stats),
    };
    std::process::exit(code);
}

/// Runs the daemon until SIGTERM or SIGINT; returns the exit status.
fn serve(args: config::ServeArgs) -> i32 {
    let cfg = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: BadRequest: {e}");
            return 2;
        }
    };
    init_logs(cfg.log_level.as_deref().unwrap_or("info"));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sundial")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return 1;
        }
    };
    match rt.block_on(serve_async(cfg)) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            1
        }
    }
}

async fn serve_async(cfg: config::ServeConfig) -> Result<(), String> {
    let started = Instant::now();
    raise_fd_limit();
    let tls = match &cfg.tls {
        None => None,
        Some((cert, key)) => {
            let read = |p: &std::path::Path| {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            Some(sundial_wire::tls::server_config(&read(cert)?, &read(key)?)?)
        }
    };
    let prometheus = metrics::install()?;
    let observer = Arc::new(metrics::EngineObserver::default());
    let dir = cfg.data_dir.clone();
    let engine_cfg = cfg.engine.clone();
    let engine = tokio::task::spawn_blocking(move || {
        Engine::open_with_observer(&dir, engine_cfg, Some(observer))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("cannot open {}: {e}", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let metrics_listener = tokio::net::TcpListener::bind(&cfg.metrics_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.metrics_listen))?;
    let grpc_listener = match &cfg.grpc_listen {
        None => None,
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(|e| format!("cannot listen for gRPC on {a}: {e}"))?,
        ),
    };
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let maddr = metrics_listener.local_addr().map_err(|e| e.to_string())?;
    if cfg!(feature = "failpoints") {
        tracing::warn!(metrics = %maddr, "built with failpoints: PUT /fail/NAME on the metrics port makes the store fail on purpose; for tests only");
    }
    if !addr.ip().is_loopback() && cfg.token.is_none() {
        tracing::warn!(%addr, "listening beyond loopback without a token: anyone who can reach this port can send, receive and delete");
    }
    let live = Arc::new(metrics::Live::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Histograms keep raw samples until upkeep folds them into buckets; without a
    // scraper they would grow with every request and every promoted message. Free heap
    // memory goes back to the system as soon as a flushed memtable is freed, and every
    // second in any case (`memory.rs`).
    let upkeep = {
        let handle = prometheus.clone();
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(memory::TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut trim = memory::TrimPolicy::default();
            let upkeep_every = Duration::from_secs(5);
            let mut last_upkeep = Instant::now();
            loop {
                every.tick().await;
                if last_upkeep.elapsed() >= upkeep_every {
                    handle.run_upkeep();
                    last_upkeep = Instant::now();
                }
                if trim.tick(engine.memtable_bytes()) {
                    let _ = tokio::task::spawn_blocking(memory::release_free_memory).await;
                }
            }
        })
    };
    let metrics_task = {
        let (engine, live) = (engine.clone(), live.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(metrics::serve(
            metrics_listener,
            prometheus,
            engine,
            live,
            started,
            async move {
                let _ = stop.changed().await;
            },
        ))
    };
    let broker = Arc::new(broker::Broker::new(engine.clone(), live.clone()));
    let grpc = match grpc_listener {
        None => None,
        Some(l) => {
            let gaddr = l.local_addr().map_err(|e| e.to_string())?;
            let opts = rmq::Options {
                settings: rmq::Settings {
                    credentials: cfg.rmq_credentials.clone(),
                    dedupe_window: cfg.dedupe_window,
                    max_body_bytes: cfg.engine.max_body_bytes,
                    max_delivery_attempts: cfg.engine.max_delivery_attempts,
                    retry_backoff: cfg.engine.retry_backoff.clone(),
                },
                tls: tls.clone(),
                max_connections: cfg.max_connections,
                handshake_timeout: cfg.handshake_timeout,
                renew_lease: cfg.grpc_renew_lease,
            };
            Some((l, gaddr, opts))
        }
    };
    let opts = native::ServerOptions {
        max_connections: cfg.max_connections,
        max_frame: cfg.max_frame_bytes,
        token: cfg.token.clone(),
        tls,
        handshake_timeout: cfg.handshake_timeout,
        write_timeout: cfg.write_timeout,
        max_in_flight: 256,
    };
    // Before the line below, so the first scrape already sees every op's series.
    metrics::serving(&native::OPS);
    metrics::serving(&rmq::OPS);
    let gaddr = grpc.as_ref().map(|(_, a, _)| a.to_string());
    tracing::info!(%addr, metrics = %maddr, grpc = gaddr.as_deref().unwrap_or("off"), data_dir = %cfg.data_dir.display(), tls = cfg.tls.is_some(), "sundial serving");
    // One line on stdout for scripts and tests that bind port 0.
    match &gaddr {
        Some(g) => {
            println!("sundial listening on {addr}, metrics on http://{maddr}/metrics, grpc on {g}")
        }
        None => println!("sundial listening on {addr}, metrics on http://{maddr}/metrics"),
    }
    let grpc_task = async {
        if let Some((l, _, opts)) = grpc {
            rmq::run(l, broker.clone(), opts).await;
        }
    };
    tokio::join!(
        native::run(listener, broker.clone(), opts, live),
        grpc_task,
        async {
            shutdown_signal().await;
            broker.shut_down();
        }
    );
    // The broker holds an engine handle; the last one must close off the async threads.
    drop(broker);
    let _ = stop_tx.send(true);
    let _ = metrics_task.await;
    upkeep.abort();
    // The upkeep task holds an engine handle too: wait until it is gone.
    let _ = upkeep.await;
    // Closing the engine finishes queued writes; it waits on threads, so not here.
    tokio::task::spawn_blocking(move || drop(engine))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft limit on open files towards the hard one, so the connection limit
/// (4,096 by default) is not cut short by a common default of 1,024 descriptors.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit with a valid resource and a struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 || l.rlim_cur >= l.rlim_max {
            return;
        }
        l.rlim_cur = l.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &l) == 0 {
            tracing::debug!(limit = l.rlim_cur, "raised the open-file limit");
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only SIGINT stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
    }
}

fn demo(data_dir: Option<PathBuf>, messages: u64, spacing_ms: u64) -> sundial_engine::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| sundial_engine::Error::Internal(e.to_string()))?;
    let dir = data_dir.unwrap_or_else(|| tmp.path().join("sundial-data"));
    let engine = Engine::open(&dir, Config::default())?;
    match engine.create_topic("demo", TopicKind::Delay) {
        Ok(_) | Err(sundial_engine::Error::TopicExists(_)) => {}
        Err(e) => return Err(e),
    }
    engine.create_group("demo", "demo-group", GroupStart::Latest, None)?;
    println!("data directory: {}", dir.display());
    let now = SystemClock.now_ms();
    let mut want = Vec::new();
    for i in 1..=messages {
        let at = now + i * spacing_ms;
        let r = engine.send(NewMessage {
            topic: "demo".into(),
            tag: Some("demo".into()),
            body: format!("message {i}").into_bytes(),
            deliver_at_ms: Some(at as i64),
            ..NewMessage::default()
        })?;
        println!(
            "scheduled {} for {} (+{} ms), recall handle {}",
            r.message_id,
            r.deliver_at_ms,
            i * spacing_ms,
            r.recall_handle()
        );
        want.push(r.message_id);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| sundial_engine::Error::Internal(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_millis(messages * spacing_ms + 30_000);
    let mut got = 0;
    let mut early = 0;
    rt.block_on(async {
        let mut signal = engine.ready_signal();
        while got < messages && Instant::now() < deadline {
            let batch = engine
                .receive_async(ReceiveRequest::new("demo", "demo-group", 32))
                .await?;
            if batch.is_empty() {
                let _ = tokio::time::timeout(Duration::from_millis(500), signal.changed()).await;
                continue;
            }
            for m in batch {
                let at = SystemClock.now_ms();
                if at < m.deliver_at_ms {
                    early += 1;
                }
                println!(
                    "received {} {:?}: due {}, Ready {} (+{} ms), received +{} ms, attempt {}",
                    m.message_id,
                    String::from_utf8_lossy(&m.body),
                    m.deliver_at_ms,
                    m.ready_at_ms,
                    m.ready_at_ms.saturating_sub(m.deliver_at_ms),
                    at.saturating_sub(m.deliver_at_ms),
                    m.delivery_attempt
                );
                let acked = engine
                    .submit_ack_batch("demo", "demo-group", vec![m.receipt_handle])
                    .await?;
                for r in acked {
                    r?;
                }
                got += 1;
            }
        }
        Ok::<(), sundial_engine::Error>(())
    })?;
    let s = engine.stats();
    println!(
        "received and acked {got} of {messages}; early deliveries: {early} (engine counter: {})",
        s.early_deliveries
    );
    if got != messages || early > 0 {
        return Err(sundial_engine::Error::Internal(
            "demo did not deliver every message on time".into(),
        ));
    }
    Ok(())
}
