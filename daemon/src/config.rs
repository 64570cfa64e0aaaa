//! `sundial serve` settings, defined once in [`ServeArgs`]: each is a flag, a
//! `SUNDIAL_*` environment variable (both read by clap) and a key of the TOML file given
//! with `--config` (read by serde). Flags win over the environment, the environment over
//! the file, the file over SPEC §7's defaults.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use sundial_engine::{Config, OverMaxDelay, StoragePolicy};

/// Every setting of `sundial serve`: a flag `--x-y`, a variable `SUNDIAL_X_Y` and a TOML
/// key `x_y`, durations written as `24h`.
#[derive(Args, Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "SUNDIAL_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Data directory [default: ./sundial-data].
    #[arg(long, env = "SUNDIAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Protocol address [default: 127.0.0.1:7700].
    #[arg(long, env = "SUNDIAL_LISTEN")]
    pub listen: Option<String>,
    /// RocketMQ 5 gRPC address, or `off` [default: 127.0.0.1:8081].
    #[arg(long, env = "SUNDIAL_GRPC_LISTEN")]
    pub grpc_listen: Option<String>,
    /// Access key the RocketMQ clients must sign with (with --rmq-secret-key; needed on
    /// the gRPC port when a token is set) [default: none].
    #[arg(long, env = "SUNDIAL_RMQ_ACCESS_KEY")]
    pub rmq_access_key: Option<String>,
    /// Secret key of --rmq-access-key.
    #[arg(long, env = "SUNDIAL_RMQ_SECRET_KEY", hide_env_values = true)]
    pub rmq_secret_key: Option<String>,
    /// How long a RocketMQ message id is remembered, so a retried send is stored once
    /// [default: 2m].
    #[arg(long, env = "SUNDIAL_DEDUPE_WINDOW")]
    pub dedupe_window: Option<String>,
    /// How long a RocketMQ push consumer's delivery stays invisible between renewals
    /// (renewed while its client is connected) [default: 60s].
    #[arg(long, env = "SUNDIAL_GRPC_RENEW_LEASE")]
    pub grpc_renew_lease: Option<String>,
    /// Prometheus metrics address, served at /metrics [default: 127.0.0.1:7701].
    #[arg(long, env = "SUNDIAL_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Most client connections at once; more are refused with `Throttled` [default: 4096].
    #[arg(long, env = "SUNDIAL_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest frame in bytes, length prefix excluded [default: 4 MiB + 64 KiB].
    #[arg(long, env = "SUNDIAL_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// Shared token every client must present in its handshake [default: none].
    #[arg(long, env = "SUNDIAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificate chain: the protocol port speaks TLS (needs --tls-key) [default: none].
    #[arg(long, env = "SUNDIAL_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "SUNDIAL_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Time a new connection has to send its handshake [default: 10s].
    #[arg(long, env = "SUNDIAL_HANDSHAKE_TIMEOUT")]
    pub handshake_timeout: Option<String>,
    /// Time a connection may leave its responses unread before it is closed [default: 30s].
    #[arg(long, env = "SUNDIAL_WRITE_TIMEOUT")]
    pub write_timeout: Option<String>,
    /// Longest accepted delay [default: 24h].
    #[arg(long, env = "SUNDIAL_MAX_DELAY")]
    pub max_delay: Option<String>,
    /// Times beyond max_delay: deliver-now or reject [default: deliver-now].
    #[arg(long, env = "SUNDIAL_OVER_MAX_DELAY")]
    pub over_max_delay: Option<String>,
    /// Delivery-time granularity in ms; times round up [default: 1].
    #[arg(long, env = "SUNDIAL_PRECISION_MS")]
    pub precision_ms: Option<u64>,
    /// Largest message body in bytes [default: 4194304].
    #[arg(long, env = "SUNDIAL_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Deliveries before a message goes to %DLQ%<group> [default: 17].
    #[arg(long, env = "SUNDIAL_MAX_DELIVERY_ATTEMPTS")]
    pub max_delivery_attempts: Option<u32>,
    /// Retry backoff after nacks, comma-separated (a list in TOML); the last repeats
    /// [default: 10s,30s,1m,2m,...,30m,1h,2h].
    #[arg(long, env = "SUNDIAL_RETRY_BACKOFF", value_delimiter = ',')]
    pub retry_backoff: Option<Vec<String>>,
    /// How long data is kept after it became Ready [default: 72h].
    #[arg(long, env = "SUNDIAL_RETENTION")]
    pub retention: Option<String>,
    /// Disk budget in bytes for the data directory [default: none, use disk_high_ratio].
    #[arg(long, env = "SUNDIAL_DISK_HIGH_WATERMARK_BYTES")]
    pub disk_high_watermark_bytes: Option<u64>,
    /// Filesystem fill ratio where disk pressure starts [default: 0.90].
    #[arg(long, env = "SUNDIAL_DISK_HIGH_RATIO")]
    pub disk_high_ratio: Option<f64>,
    /// Over the watermark: reject (StorageFull) or drop-oldest [default: reject].
    #[arg(long, env = "SUNDIAL_STORAGE_POLICY")]
    pub storage_policy: Option<String>,
    /// Log level; the flag is the global `--log-level` (`SUNDIAL_LOG_LEVEL`), which
    /// every subcommand takes [default: info].
    #[arg(skip)]
    pub log_level: Option<String>,
}

/// Everything `serve` runs with, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Protocol address.
    pub listen: String,
    /// Metrics address.
    pub metrics_listen: String,
    /// RocketMQ gRPC address; `None`: off.
    pub grpc_listen: Option<String>,
    /// The access key and secret RocketMQ clients sign with; `None`: no check.
    pub rmq_credentials: Option<(String, String)>,
    /// How long a RocketMQ message id is remembered for deduplication.
    pub dedupe_window: Duration,
    /// Invisible time of a push consumer's delivery between renewals.
    pub grpc_renew_lease: Duration,
    /// Connection limit.
    pub max_connections: usize,
    /// Frame limit.
    pub max_frame_bytes: usize,
    /// Required token.
    pub token: Option<String>,
    /// TLS certificate chain and key files for the protocol port.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Handshake deadline.
    pub handshake_timeout: Duration,
    /// Unread-response deadline.
    pub write_timeout: Duration,
    /// Log level, when one was given.
    pub log_level: Option<String>,
    /// The engine's settings.
    pub engine: Config,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Parses `500ms`, `10s`, `5m`, `2h`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration like 500ms, 10s, 5m or 2h: {e}"))
}

fn duration(what: &str, v: Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(&s).map_err(|e| ConfigError(format!("{what}: {e}"))),
    }
}

fn check_addr(what: &str, a: &str) -> Result<(), ConfigError> {
    a.parse::<SocketAddr>()
        .map(|_| ())
        .map_err(|e| ConfigError(format!("{what} {a:?} is not an ip:port address: {e}")))
}

impl ServeArgs {
    /// Each setting given here, else the one in `file`.
    fn or(self, file: ServeArgs) -> ServeArgs {
        // A struct literal without `..`: a new setting that is not merged does not compile.
        ServeArgs {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            listen: self.listen.or(file.listen),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            grpc_listen: self.grpc_listen.or(file.grpc_listen),
            rmq_access_key: self.rmq_access_key.or(file.rmq_access_key),
            rmq_secret_key: self.rmq_secret_key.or(file.rmq_secret_key),
            dedupe_window: self.dedupe_window.or(file.dedupe_window),
            grpc_renew_lease: self.grpc_renew_lease.or(file.grpc_renew_lease),
            max_connections: self.max_connections.or(file.max_connections),
            max_frame_bytes: self.max_frame_bytes.or(file.max_frame_bytes),
            token: self.token.or(file.token),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            handshake_timeout: self.handshake_timeout.or(file.handshake_timeout),
            write_timeout: self.write_timeout.or(file.write_timeout),
            max_delay: self.max_delay.or(file.max_delay),
            over_max_delay: self.over_max_delay.or(file.over_max_delay),
            precision_ms: self.precision_ms.or(file.precision_ms),
            max_body_bytes: self.max_body_bytes.or(file.max_body_bytes),
            max_delivery_attempts: self.max_delivery_attempts.or(file.max_delivery_attempts),
            retry_backoff: self.retry_backoff.or(file.retry_backoff),
            retention: self.retention.or(file.retention),
            disk_high_watermark_bytes: self
                .disk_high_watermark_bytes
                .or(file.disk_high_watermark_bytes),
            disk_high_ratio: self.disk_high_ratio.or(file.disk_high_ratio),
            storage_policy: self.storage_policy.or(file.storage_policy),
            log_level: self.log_level.or(file.log_level),
        }
    }

    /// Merges flags and environment over the file over the defaults.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        let s = match &self.config {
            Some(p) => {
                let file = read_file(p)?;
                self.or(file)
            }
            None => self,
        };
        let d = Config::default();
        let listen = s.listen.unwrap_or_else(|| "127.0.0.1:7700".into());
        let metrics_listen = s.metrics_listen.unwrap_or_else(|| "127.0.0.1:7701".into());
        check_addr("listen", &listen)?;
        check_addr("metrics_listen", &metrics_listen)?;
        let grpc_listen = match s.grpc_listen.as_deref() {
            Some("off") => None,
            Some(a) => Some(a.to_string()),
            None => Some("127.0.0.1:8081".to_string()),
        };
        if let Some(a) = &grpc_listen {
            check_addr("grpc_listen", a)?;
        }
        let rmq_credentials = match (s.rmq_access_key, s.rmq_secret_key) {
            (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => Some((ak, sk)),
            (None, None) => None,
            _ => {
                return Err(ConfigError(
                    "rmq_access_key and rmq_secret_key go together, and neither may be empty"
                        .into(),
                ))
            }
        };
        if s.token.as_deref().is_some_and(|t| !t.is_empty())
            && rmq_credentials.is_none()
            && grpc_listen.is_some()
        {
            return Err(ConfigError(
                "a token protects the native port, so the gRPC port needs credentials too: \
                 set rmq_access_key and rmq_secret_key, or grpc_listen = \"off\""
                    .into(),
            ));
        }
        let dedupe_window = duration("dedupe_window", s.dedupe_window, Duration::from_secs(120))?;
        let grpc_renew_lease = duration(
            "grpc_renew_lease",
            s.grpc_renew_lease,
            Duration::from_secs(60),
        )?;
        if !(Duration::from_secs(1)..=Duration::from_secs(12 * 3600)).contains(&grpc_renew_lease) {
            return Err(ConfigError(format!(
                "grpc_renew_lease {grpc_renew_lease:?} is outside 1s..=12h"
            )));
        }
        let over_max_delay = match s.over_max_delay.as_deref() {
            None | Some("deliver-now") => OverMaxDelay::DeliverNow,
            Some("reject") => OverMaxDelay::Reject,
            Some(o) => {
                return Err(ConfigError(format!(
                    "over_max_delay {o:?} is not deliver-now or reject"
                )))
            }
        };
        let storage_policy = match s.storage_policy.as_deref() {
            None | Some("reject") => StoragePolicy::Reject,
            Some("drop-oldest") => StoragePolicy::DropOldest,
            Some(o) => {
                return Err(ConfigError(format!(
                    "storage_policy {o:?} is not reject or drop-oldest"
                )))
            }
        };
        let retry_backoff = match s.retry_backoff {
            None => d.retry_backoff.clone(),
            Some(v) => v
                .iter()
                .map(|s| parse_duration(s).map_err(|e| ConfigError(format!("retry_backoff: {e}"))))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let max_frame_bytes = s.max_frame_bytes.unwrap_or(sundial_wire::DEFAULT_MAX_FRAME);
        let max_body_bytes = s.max_body_bytes.unwrap_or(d.max_body_bytes);
        let most = sundial_wire::MAX_DECODE - sundial_wire::RESPONSE_HEADROOM;
        if !(1024..=most).contains(&max_frame_bytes) {
            return Err(ConfigError(format!(
                "max_frame_bytes {max_frame_bytes} is outside 1024..={most}"
            )));
        }
        // A message of the largest body must fit a frame with its keys and properties.
        if max_body_bytes.saturating_add(64 * 1024) > max_frame_bytes {
            return Err(ConfigError(format!(
                "max_body_bytes {max_body_bytes} needs max_frame_bytes of at least {} \
                 (64 KiB for the rest of the message)",
                max_body_bytes + 64 * 1024
            )));
        }
        let engine = Config {
            max_delay: duration("max_delay", s.max_delay, d.max_delay)?,
            over_max_delay,
            precision_ms: s.precision_ms.unwrap_or(d.precision_ms),
            max_body_bytes,
            max_delivery_attempts: s.max_delivery_attempts.unwrap_or(d.max_delivery_attempts),
            retry_backoff,
            retention: duration("retention", s.retention, d.retention)?,
            disk_high_watermark_bytes: s.disk_high_watermark_bytes,
            disk_high_ratio: s.disk_high_ratio.unwrap_or(d.disk_high_ratio),
            storage_policy,
            ..d
        };
        Ok(ServeConfig {
            data_dir: s
                .data_dir
                .unwrap_or_else(|| PathBuf::from("./sundial-data")),
            listen,
            metrics_listen,
            grpc_listen,
            rmq_credentials,
            dedupe_window,
            grpc_renew_lease,
            max_connections: s.max_connections.unwrap_or(4096).max(1),
            max_frame_bytes,
            token: s.token.filter(|t| !t.is_empty()),
            tls: match (s.tls_cert, s.tls_key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError(
                        "tls_cert and tls_key go together: give both or neither".into(),
                    ))
                }
            },
            handshake_timeout: duration(
                "handshake_timeout",
                s.handshake_timeout,
                Duration::from_secs(10),
            )?,
            write_timeout: duration("write_timeout", s.write_timeout, Duration::from_secs(30))?,
            log_level: s.log_level,
            engine,
        })
    }
}

fn read_file(p: &Path) -> Result<ServeArgs, ConfigError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", p.display())))?;
    toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_documented() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn defaults_are_the_specs() {
        let c = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./sundial-data"));
        assert_eq!(c.listen, "127.0.0.1:7700");
        assert_eq!(c.metrics_listen, "127.0.0.1:7701");
        assert_eq!(c.engine.max_delay, Duration::from_secs(24 * 3600));
        assert_eq!(c.engine.retention, Duration::from_secs(72 * 3600));
        assert_eq!(c.engine.max_delivery_attempts, 17);
        assert_eq!(c.engine.retry_backoff.len(), 16);
        assert!(c.token.is_none());
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sundial.toml");
        std::fs::write(
            &p,
            "listen = \"127.0.0.1:9000\"\nmax_delay = \"400d\"\nretention = \"1h\"\n\
             retry_backoff = [\"1s\", \"2s\"]\nstorage_policy = \"drop-oldest\"\n",
        )
        .unwrap();
        let c = ServeArgs {
            config: Some(p.clone()),
            retention: Some("2h".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert_eq!(c.engine.max_delay, Duration::from_secs(400 * 86400));
        assert_eq!(c.engine.retention, Duration::from_secs(7200));
        assert_eq!(
            c.engine.retry_backoff,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(c.engine.storage_policy, StoragePolicy::DropOldest);
    }

    #[test]
    fn the_sample_config_in_deploy_is_valid_and_says_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sundial.toml");
        std::fs::write(&p, include_str!("../../deploy/sundial.toml")).unwrap();
        let c = ServeArgs {
            config: Some(p),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap();
        let d = ServeArgs::default().resolve().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/sundial"));
        assert_eq!(c.listen, d.listen);
        assert_eq!(c.max_frame_bytes, d.max_frame_bytes);
        assert_eq!(c.engine.retry_backoff, d.engine.retry_backoff);
        assert_eq!(c.engine.max_delay, d.engine.max_delay);
        assert_eq!(c.engine.retention, d.engine.retention);
        assert_eq!(c.handshake_timeout, d.handshake_timeout);
        assert_eq!(c.grpc_listen, d.grpc_listen);
        assert_eq!(c.dedupe_window, d.dedupe_window);
        assert_eq!(c.grpc_renew_lease, d.grpc_renew_lease);
        assert_eq!(c.log_level.as_deref(), Some("info"));
    }

    #[test]
    fn grpc_settings_resolve_and_refuse_half_credentials() {
        let d = ServeArgs::default().resolve().unwrap();
        assert_eq!(d.grpc_listen.as_deref(), Some("127.0.0.1:8081"));
        assert_eq!(d.rmq_credentials, None);
        let off = ServeArgs {
            grpc_listen: Some("off".into()),
            ..ServeArgs::default()
        };
        assert_eq!(off.resolve().unwrap().grpc_listen, None);
        let half = ServeArgs {
            rmq_access_key: Some("ak".into()),
            ..ServeArgs::default()
        };
        assert!(half.resolve().is_err());
        // A token protects the native port; the gRPC port must not stay open beside it.
        let token_only = ServeArgs {
            token: Some("t".into()),
            ..ServeArgs::default()
        };
        let e = token_only.resolve().unwrap_err().to_string();
        assert!(e.contains("rmq_access_key"), "{e}");
        let both = ServeArgs {
            token: Some("t".into()),
            rmq_access_key: Some("ak".into()),
            rmq_secret_key: Some("sk".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            both.resolve().unwrap().rmq_credentials,
            Some(("ak".into(), "sk".into()))
        );
        let bad = ServeArgs {
            grpc_listen: Some("nowhere".into()),
            ..ServeArgs::default()
        };
        assert!(bad.resolve().is_err());
    }

    /// The settings' three names agree: `--x-y`, `SUNDIAL_X_Y` and the TOML key `x_y`
    /// (the field's name).
    #[test]
    fn every_setting_is_a_flag_a_variable_and_a_toml_key() {
        use clap::{Args as _, Command};
        let cmd = ServeArgs::augment_args(Command::new("serve"));
        let mut n = 0;
        for a in cmd.get_arguments() {
            let id = a.get_id().as_str();
            assert_eq!(a.get_long(), Some(id.replace('_', "-").as_str()), "{id}");
            let env = a.get_env().and_then(|e| e.to_str());
            assert_eq!(env, Some(format!("SUNDIAL_{}", id.to_uppercase()).as_str()));
            n += 1;
        }
        assert!(n >= 21, "only {n} settings");
        let m = cmd
            .try_get_matches_from(["serve", "--retry-backoff", "1s,2s", "--precision-ms", "10"])
            .unwrap();
        let c = <ServeArgs as clap::FromArgMatches>::from_arg_matches(&m)
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(
            c.engine.retry_backoff,
            vec![Duration::from_secs(1), Duration::from_secs(2)]
        );
        assert_eq!(c.engine.precision_ms, 10);
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "lisen = \"x\"\n").unwrap();
        let e = ServeArgs {
            config: Some(p),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("lisen"), "{e}");
        let e = ServeArgs {
            max_delay: Some("forever".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("max_delay"), "{e}");
        let e = ServeArgs {
            listen: Some("localhost".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("listen"), "{e}");
        let e = ServeArgs {
            tls_cert: Some("cert.pem".into()),
            ..ServeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(e.0.contains("tls_key"), "{e}");
    }
}
