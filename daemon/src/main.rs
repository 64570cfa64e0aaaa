//! The `sundial` binary. At this stage it runs an engine demo; `sundial serve` and the
//! client subcommands come with the daemon.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use sundial_engine::{
    Clock, Config, Engine, GroupStart, NewMessage, ReceiveRequest, SystemClock, TopicKind,
};

#[derive(Parser)]
#[command(name = "sundial", version, about = "A durable delay-message broker")]
struct Cli {
    /// Log level (error, warn, info, debug, trace).
    #[arg(long, default_value = "warn", global = true)]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the storage engine end to end: schedules messages a few seconds ahead,
    /// receives each when it becomes Ready, acks it, and prints how late it was.
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

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .init();
    let r = match cli.cmd {
        Cmd::Demo {
            data_dir,
            messages,
            spacing_ms,
        } => demo(data_dir, messages, spacing_ms),
    };
    if let Err(e) = r {
        eprintln!("error: {} ({})", e, e.code());
        std::process::exit(1);
    }
}

fn demo(data_dir: Option<PathBuf>, messages: u64, spacing_ms: u64) -> sundial_engine::Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| sundial_engine::Error::Storage(e.to_string()))?;
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
            r.recall_handle
        );
        want.push(r.message_id);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| sundial_engine::Error::Storage(e.to_string()))?;
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
                    .submit_ack_batch("demo", "demo-group", vec![m.receipt_handle.clone()])
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
        return Err(sundial_engine::Error::Storage(
            "demo did not deliver every message on time".into(),
        ));
    }
    Ok(())
}
