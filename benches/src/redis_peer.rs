//! The peer sundial is measured against: a Redis sorted-set delay queue, the most common
//! home-grown delay queue. Producers `ZADD` members scored by due time; a mover runs a
//! Lua script that moves due members, in chunks, from the set to a ready list; consumers
//! pop from the list (`BLMPOP`). Redis runs from Debian's `redis-server` on 127.0.0.1,
//! started here with an append-only file in `always` or `everysec` mode.

use crate::daemon::rss_of;
use crate::queue::{ready_list, redis_connect};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How Redis syncs its append-only file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// fsync before answering each write: durable like sundial.
    Always,
    /// fsync once a second: up to a second of acknowledged writes lost on a crash.
    Everysec,
}

impl Fsync {
    pub fn name(self) -> &'static str {
        match self {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        }
    }
}

/// Which peer to run next to sundial.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    Redis,
}

/// Peer options shared by the scenarios.
#[derive(clap::Args, Debug, Clone)]
pub struct PeerArgs {
    /// Also run the workload against this peer, in the same run, and print ratios.
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
    /// The peer's fsync modes to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "always,everysec"
    )]
    pub peer_fsync: Vec<Fsync>,
    /// The `redis-server` binary.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: PathBuf,
}

/// A `redis-server` started here; stopped and its directory removed when dropped.
pub struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// Starts Redis on 127.0.0.1 with an append-only file synced per `fsync` and no
    /// snapshots; returns once it answers.
    pub async fn start(bin: &PathBuf, fsync: Fsync) -> Result<RedisServer, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // Redis cannot bind port 0 and report it; take a free port from the kernel.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--appendonly", "yes", "--appendfsync", fsync.name()])
            .args(["--save", "", "--daemonize", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}); `make setup` installs Debian's redis-server",
                    bin.display()
                )
            })?;
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = redis_connect(&server.url()).await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut c).await;
                if pong.is_ok() {
                    return Ok(server);
                }
            }
            if Instant::now() > deadline {
                return Err("redis-server did not answer within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's resident memory in bytes.
    pub fn rss(&self) -> u64 {
        rss_of(self.child.id())
    }

    /// Redis's own count of bytes used by data (`INFO memory`'s `used_memory`).
    pub async fn used_memory(&self) -> Result<u64, String> {
        let mut c = redis_connect(&self.url()).await?;
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut c)
            .await
            .map_err(|e| e.to_string())?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "INFO memory has no used_memory".into())
    }
}

/// Members moved per script call: big enough to move a burst quickly, small enough
/// that one call does not stall Redis (it is single-threaded) for long.
const CHUNK: u64 = 1_000;

/// Moves due members from the set to the ready list: what a Redis delay queue's
/// scheduler does. One call moves at most ARGV[2] members due at or before ARGV[1].
const MOVE_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
  redis.call('RPUSH', KEYS[2], unpack(due))
  redis.call('ZREM', KEYS[1], unpack(due))
end
return #due
";

/// The mover task: calls the script back to back while it moves full chunks, then
/// polls every millisecond. Stops when dropped.
pub struct Mover {
    moved: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Mover {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mover {
    pub async fn start(url: &str, key: &str) -> Result<Mover, String> {
        let mut con = redis_connect(url).await?;
        let moved = Arc::new(AtomicU64::new(0));
        let (set, list, count) = (key.to_string(), ready_list(key), moved.clone());
        let task = tokio::spawn(async move {
            let script = redis::Script::new(MOVE_SCRIPT);
            loop {
                let n: Result<u64, _> = script
                    .key(&set)
                    .key(&list)
                    .arg(sundial_wire::now_ms())
                    .arg(CHUNK)
                    .invoke_async(&mut con)
                    .await;
                match n {
                    Ok(n) => {
                        count.fetch_add(n, Ordering::Relaxed);
                        if n < CHUNK {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    }
                    Err(e) => {
                        eprintln!("redis mover: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        Ok(Mover { moved, task })
    }

    /// Members moved so far.
    pub fn moved(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
    }
}
