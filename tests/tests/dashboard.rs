//! `grafana/`: the dashboard names only metrics the daemon exports, and every panel's
//! query returns data from a real Prometheus scraping a real daemon after a workload.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use sundial_tests::{eventually, try_http_get, Daemon};
use sundial_wire::{now_ms, Client, OutgoingMessage, ReceiveOptions, StartFrom, TopicType};

fn grafana_dir() -> PathBuf {
    // Cargo sets the variable when it runs the test too: read it then, so a test binary
    // reused from a checkout at another path still finds this checkout's dashboard.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../grafana")
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(grafana_dir().join("dashboards/sundial.json"))
        .expect("read the dashboard");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// Every panel, including those inside collapsed rows.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

/// `(panel title, expression)` for every target of every panel.
fn queries(d: &Value) -> Vec<(String, String)> {
    panels(d)
        .into_iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or("").to_string();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap_or("").to_string()))
        })
        .collect()
}

/// The `sundial_*` names an expression (or any text) mentions.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("sundial_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Family names and their types from a `/metrics` scrape (`# TYPE name type`).
fn exported(scrape: &str) -> Vec<(String, String)> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Whether `name` is an exported series name: a family, or a histogram's
/// `_bucket`/`_sum`/`_count`.
fn is_exported(name: &str, families: &[(String, String)]) -> bool {
    families.iter().any(|(f, t)| {
        name == f
            || (t == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(f.as_str())))
    })
}

/// Traffic that makes every kind of series exist: sends with delays, receives, acks,
/// nacks, a redelivery, dead letters (the daemon runs with 2 attempts), a recall.
async fn workload(c: &Client) {
    c.create_topic("orders", TopicType::Delay).await.unwrap();
    c.create_group("orders", "billing", StartFrom::Earliest, None)
        .await
        .unwrap();
    for i in 0..20 {
        c.send(OutgoingMessage::new("orders", format!("m{i}")).deliver_at(now_ms() + i * 20))
            .await
            .unwrap();
    }
    let far = c
        .send(OutgoingMessage::new("orders", "cancel me").deliver_at(now_ms() + 3_600_000))
        .await
        .unwrap();
    c.send(OutgoingMessage::new("orders", "waits").deliver_at(now_ms() + 3_600_000))
        .await
        .unwrap();
    c.recall(&far.recall_handle).await.unwrap();
    // A refused request (errors by op and code).
    let refused = c.send(OutgoingMessage::new("no-such-topic", "x")).await;
    assert!(refused.is_err());
    let o = ReceiveOptions {
        max_messages: 32,
        wait: Duration::from_millis(500),
        ..ReceiveOptions::default()
    };
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.len() < 20 && Instant::now() < deadline {
        got.extend(c.receive("orders", "billing", &o).await.unwrap());
    }
    assert_eq!(got.len(), 20, "all 20 due messages arrive");
    let (nacked, rest) = got.split_at(2);
    let receipts =
        |v: &[sundial_wire::Delivered]| v.iter().map(|m| m.receipt_handle).collect::<Vec<_>>();
    c.ack("orders", "billing", receipts(&rest[..10]))
        .await
        .unwrap();
    c.nack("orders", "billing", receipts(nacked)).await.unwrap();
    // The two come back (attempt 2, the last) after the 100 ms backoff; nacked again,
    // they are dead-lettered.
    let mut again = Vec::new();
    while again.len() < 2 && Instant::now() < deadline {
        again.extend(c.receive("orders", "billing", &o).await.unwrap());
    }
    assert_eq!(again.len(), 2, "the nacked messages are redelivered");
    c.nack("orders", "billing", receipts(&again)).await.unwrap();
}

fn start_daemon(dir: &Path) -> Daemon {
    Daemon::start(
        &dir.join("data"),
        &["--max-delivery-attempts", "2", "--retry-backoff", "100ms"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_is_provisionable_and_names_only_exported_metrics() {
    let d = dashboard();
    assert_eq!(d["uid"], "sundial-overview", "a stable uid");
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        d.get("__inputs").is_none(),
        "no __inputs: file provisioning"
    );
    assert!(!text.contains("${DS_"), "no ${{DS_...}} placeholders");
    let vars = d["templating"]["list"].as_array().expect("variables");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a prometheus datasource variable"
    );
    assert!(
        vars.iter().any(|v| v["name"] == "instance"),
        "an instance variable"
    );

    let mut ids = BTreeSet::new();
    for p in panels(&d) {
        let id = p["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} is used twice");
        if p["type"] == "row" {
            continue;
        }
        let title = p["title"].as_str().unwrap_or("?");
        assert!(
            p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            "panel {title:?} has no unit"
        );
        assert!(
            p["description"].as_str().is_some_and(|s| !s.is_empty()),
            "panel {title:?} has no description"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {title:?} uses the datasource variable"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
    }
    let qs = queries(&d);
    assert!(qs.len() >= 20, "only {} queries", qs.len());
    for (title, expr) in &qs {
        assert!(!expr.trim().is_empty(), "an empty expression in {title:?}");
    }

    // Every name the dashboard and the alert rules use is one the daemon exports.
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path());
    workload(&daemon.client().await).await;
    let families = exported(&daemon.scrape());
    assert!(families.len() >= 30, "only {} families", families.len());
    let alerts = std::fs::read_to_string(grafana_dir().join("alerts.yml")).unwrap();
    let mut used = metric_names(&alerts);
    for (_, e) in &qs {
        used.extend(metric_names(e));
    }
    let unknown: Vec<_> = used.iter().filter(|n| !is_exported(n, &families)).collect();
    assert!(
        unknown.is_empty(),
        "not exported by the daemon: {unknown:?}"
    );
    // And the check itself can fail.
    assert!(!is_exported("sundial_made_up_total", &families));
}

/// The sample lines of a scrape for the series name `name` (`_bucket` and the like
/// are names of their own).
fn samples<'a>(scrape: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    scrape.lines().filter(move |l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

fn has_series(scrape: &str, name: &str) -> bool {
    samples(scrape, name).next().is_some()
}

/// No panel of a new deployment shows "No data": a fresh daemon has a series of every
/// name the dashboard uses before the first event. Before anything is created, all but
/// the per-topic families have one; once a topic and a group exist (no message sent,
/// received or nacked, no request refused), every family has one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_daemon_has_a_series_of_every_name_the_dashboard_uses() {
    let mut used = BTreeSet::new();
    for (_, e) in queries(&dashboard()) {
        used.extend(metric_names(&e));
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&dir.path().join("data"), &[]);
    let missing = |scrape: &str| -> Vec<String> {
        used.iter()
            .filter(|n| !has_series(scrape, n))
            .cloned()
            .collect()
    };
    let before = missing(&daemon.scrape());

    let c = daemon.client().await;
    c.create_topic("orders", TopicType::Delay).await.unwrap();
    c.create_group("orders", "billing", StartFrom::Latest, None)
        .await
        .unwrap();
    let scrape = daemon.scrape();
    assert_eq!(
        missing(&scrape),
        Vec::<String>::new(),
        "no series with a topic and a group:\n{scrape}"
    );
    for name in &before {
        let per_topic = samples(&scrape, name).all(|l| l.contains("topic=\""));
        assert!(
            per_topic,
            "{name} has no series on a fresh daemon and is not per topic"
        );
    }
    // And the check itself can fail.
    assert!(!has_series(&scrape, "sundial_made_up_total"));
}

/// A Prometheus server on 127.0.0.1, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port) every second, or `None` when it is
    /// not installed.
    fn start(target: &str) -> Option<Prometheus> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sundial\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        })
    }

    /// An instant query's result vector (`None` if Prometheus did not answer).
    fn query(&self, expr: &str) -> Option<Vec<Value>> {
        let url = format!("{}/api/v1/query?query={}", self.url, percent_encode(expr));
        let body = try_http_get(&url).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{expr}: {body}");
        v["data"]["result"].as_array().cloned()
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Grafana's variables as a query would see them: all instances, and a rate window of
/// 4 scrape intervals and more.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "10s")
        .replace("${instance:regex}", ".*")
        .replace("$instance", ".*")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_panel_query_returns_series_from_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start_daemon(dir.path());
    workload(&daemon.client().await).await;
    let target = daemon
        .metrics_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let Some(prom) = Prometheus::start(&target) else {
        eprintln!(
            "SKIPPED: `prometheus` is not installed (`make setup` installs Debian's package)"
        );
        return;
    };
    // At least 5 scrapes of the daemon, so every rate() has samples in its window.
    let scraped = eventually(Duration::from_secs(60), || {
        let r = prom.query("count_over_time(sundial_uptime_seconds[1m])");
        async move {
            r.and_then(|v| {
                v.first()
                    .and_then(|s| s["value"][1].as_str())
                    .and_then(|x| x.parse::<f64>().ok())
            })
            .filter(|n| *n >= 5.0)
        }
    })
    .await;
    assert!(
        scraped.is_some(),
        "Prometheus did not scrape the daemon within 60 s"
    );

    let d = dashboard();
    let mut empty = Vec::new();
    let qs = queries(&d);
    for (title, expr) in &qs {
        let q = substitute(expr);
        let result = prom.query(&q).expect("Prometheus answers");
        if result.is_empty() {
            empty.push(format!("{title}: {q}"));
        }
    }
    assert!(
        empty.is_empty(),
        "{} of {} panel queries returned no series:\n{}",
        empty.len(),
        qs.len(),
        empty.join("\n")
    );
    // The early-deliveries stat reads 0.
    let early = prom
        .query("sum(sundial_early_deliveries_total)")
        .expect("answer");
    assert_eq!(early[0]["value"][1], "0");
}

#[test]
fn alert_rules_and_scrape_config_pass_promtool() {
    let g = grafana_dir();
    let run = |args: &[&str]| Command::new("promtool").args(args).current_dir(&g).output();
    let Ok(rules) = run(&["check", "rules", "alerts.yml"]) else {
        eprintln!("SKIPPED: `promtool` is not installed (`make setup` installs prometheus)");
        return;
    };
    assert!(
        rules.status.success(),
        "promtool check rules: {}",
        String::from_utf8_lossy(&rules.stdout)
    );
    let config = run(&["check", "config", "prometheus.yml"]).expect("promtool runs");
    assert!(
        config.status.success(),
        "promtool check config: {}",
        String::from_utf8_lossy(&config.stdout)
    );
    let alerts = std::fs::read_to_string(g.join("alerts.yml")).unwrap();
    for name in [
        "sundial_early_deliveries_total",
        "sundial_delivery_lateness_seconds_bucket",
        "sundial_dead_letters_total",
        "sundial_wal_sync_duration_seconds_bucket",
    ] {
        assert!(alerts.contains(name), "no alert on {name}");
    }
}
