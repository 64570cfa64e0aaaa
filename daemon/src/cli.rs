//! The client subcommands: each makes one or a few calls and prints a readable table,
//! or with `--json` one JSON object (or array) with SPEC §7's field names.

use crate::config::parse_duration;
use crate::partial;
use base64::Engine as _;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};
use sundial_wire::{
    deliver_at_after, Client, ClientError, ClientOptions, Delivered, ErrorCode, OutgoingMessage,
    ReceiptHandle, ReceiveOptions, StartFrom, TopicType, WireFailure,
};

/// Options every client subcommand takes.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The daemon's protocol address.
    #[arg(long, env = "SUNDIAL_ADDR", default_value = sundial_wire::DEFAULT_ADDR, global = true)]
    pub addr: String,
    /// Print one JSON object (or array) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Shared token, when the daemon requires one.
    #[arg(long, env = "SUNDIAL_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Speak TLS, trusting the certificates in this PEM file (a CA or the daemon's own).
    #[arg(long, env = "SUNDIAL_TLS_CA", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Name the daemon's certificate must carry [default: the host of --addr].
    #[arg(long, env = "SUNDIAL_TLS_SERVER_NAME", global = true)]
    pub tls_server_name: Option<String>,
}

/// `sundial topic ...`
#[derive(Subcommand, Debug)]
pub enum TopicCmd {
    /// Creates a topic with a message type.
    Create {
        /// Topic name.
        topic: String,
        /// delay, normal or mixed.
        #[arg(long = "type", value_parser = parse_type)]
        message_type: TopicType,
    },
    /// Lists topics.
    List,
    /// Shows a topic's counters and groups.
    Show {
        /// Topic name.
        topic: String,
    },
    /// Deletes a topic, its groups and its messages.
    Delete {
        /// Topic name.
        topic: String,
    },
}

/// `sundial group ...`
#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Creates a consumer group (or updates its filter).
    Create {
        /// Group name.
        group: String,
        /// Its topic.
        #[arg(long)]
        topic: String,
        /// latest (default) or earliest.
        #[arg(long, default_value = "latest", value_parser = parse_from)]
        from: StartFrom,
        /// Tag filter: `*` or `a || b`.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Lists groups.
    List {
        /// Only this topic's groups.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Delivers again every retained message that became Ready at or after a time.
    ResetOffset {
        /// Group name.
        group: String,
        /// Its topic.
        #[arg(long)]
        topic: String,
        /// Unix milliseconds.
        #[arg(long)]
        to: u64,
    },
}

/// `sundial message ...`
#[derive(Subcommand, Debug)]
pub enum MessageCmd {
    /// Shows one message's state, per group.
    Show {
        /// Message id (32 hex characters).
        id: String,
    },
    /// Finds retained messages by lookup key.
    Find {
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Key.
        #[arg(long)]
        key: String,
    },
}

/// `sundial send ...`
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("body_src").required(true).args(["body", "body_file"])))]
#[command(group(ArgGroup::new("when").args(["delay", "deliver_at"])))]
pub struct SendArgs {
    /// Topic.
    pub topic: String,
    /// Deliver this long from now (500ms, 10s, 5m, 2h).
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Deliver at this Unix time in milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    pub deliver_at: Option<i64>,
    /// Tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Lookup keys, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub keys: Vec<String>,
    /// A user property `k=v` (repeatable).
    #[arg(long = "property", value_parser = parse_property)]
    pub properties: Vec<(String, String)>,
    /// The body as text.
    #[arg(long)]
    pub body: Option<String>,
    /// The body from a file (`-` reads standard input).
    #[arg(long)]
    pub body_file: Option<PathBuf>,
}

/// `sundial receive ...`
#[derive(Args, Debug)]
pub struct ReceiveArgs {
    /// Topic.
    pub topic: String,
    /// Consumer group (created from latest when unknown).
    #[arg(long)]
    pub group: String,
    /// Tag filter for this call.
    #[arg(long)]
    pub filter: Option<String>,
    /// At most this many messages.
    #[arg(long, default_value_t = 16)]
    pub max: u32,
    /// How long received messages stay invisible to the group.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub invisible: Duration,
    /// How long to wait when nothing is Ready.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub wait: Duration,
}

/// `sundial ack|nack ...`
#[derive(Args, Debug)]
pub struct SettleArgs {
    /// Topic.
    pub topic: String,
    /// Consumer group.
    #[arg(long)]
    pub group: String,
    /// Receipt handles (40 hex digits each).
    #[arg(required = true)]
    pub receipts: Vec<String>,
}

/// `sundial reschedule ...`
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("when").required(true).args(["delay", "deliver_at"])))]
pub struct RescheduleArgs {
    /// Recall handle from the send receipt.
    pub handle: String,
    /// Deliver this long from now.
    #[arg(long, value_parser = parse_duration)]
    pub delay: Option<Duration>,
    /// Deliver at this Unix time in milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    pub deliver_at: Option<i64>,
}

fn parse_type(s: &str) -> Result<TopicType, String> {
    s.parse()
}

fn parse_from(s: &str) -> Result<StartFrom, String> {
    match s {
        "latest" => Ok(StartFrom::Latest),
        "earliest" => Ok(StartFrom::Earliest),
        _ => Err(format!("{s:?} is not latest or earliest")),
    }
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("property {s:?} is not k=v"))
}

/// Why a command failed: an error code and a message.
pub struct Failure {
    code: String,
    message: String,
}

impl Failure {
    /// A failure on this side, before any request.
    fn bad_request(message: String) -> Self {
        Failure {
            code: "BadRequest".into(),
            message,
        }
    }
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
fn host_of(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_string()
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        let message = match &e {
            ClientError::Refused(f) => f.message.clone(),
            other => other.to_string(),
        };
        Failure {
            code: e.code().to_string(),
            message,
        }
    }
}

/// What a command prints: the JSON value, and the human form.
pub struct Output {
    json: Value,
    human: String,
    /// Some item failed (an ack of several receipts, say): exit non-zero.
    partial_failure: bool,
}

impl Output {
    fn new(json: Value, human: String) -> Self {
        Output {
            json,
            human,
            partial_failure: false,
        }
    }
}

/// What a client subcommand's function returns.
pub type Outcome = Result<Output, Failure>;

/// Connects as `args` say, runs one subcommand's function with the client and prints
/// its output; returns the process exit status. Logs go to stderr at `log_level`
/// (warnings by default).
pub fn run<Fut>(
    log_level: Option<String>,
    args: ClientArgs,
    command: impl FnOnce(Client) -> Fut,
) -> i32
where
    Fut: std::future::Future<Output = Outcome>,
{
    crate::init_logs(log_level.as_deref().unwrap_or("warn"));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let json = args.json;
    let outcome = rt.block_on(async move { command(connect(&args).await?).await });
    match outcome {
        Ok(out) => {
            if json {
                println!("{}", out.json);
            } else if !out.human.is_empty() {
                print!("{}", out.human);
            }
            i32::from(out.partial_failure)
        }
        Err(f) => {
            if json {
                println!("{}", json!({"error": f.code, "message": f.message}));
            } else {
                eprintln!("error: {}: {}", f.code, f.message);
            }
            1
        }
    }
}

async fn connect(args: &ClientArgs) -> Result<Client, Failure> {
    let tls = match &args.tls_ca {
        None => None,
        Some(ca) => {
            let pem = std::fs::read(ca)
                .map_err(|e| Failure::bad_request(format!("cannot read {}: {e}", ca.display())))?;
            let name = args
                .tls_server_name
                .clone()
                .unwrap_or_else(|| host_of(&args.addr));
            Some(sundial_wire::tls::ClientTls::new(&pem, &name).map_err(Failure::bad_request)?)
        }
    };
    let opts = ClientOptions {
        token: args.token.clone(),
        client_name: format!("sundial-cli/{}", env!("CARGO_PKG_VERSION")),
        tls,
        ..ClientOptions::default()
    };
    Ok(Client::connect(&args.addr, opts).await?)
}

/// `sundial topic create`
pub async fn create_topic(c: Client, topic: String, message_type: TopicType) -> Outcome {
    let t = c.create_topic(&topic, message_type).await?;
    let human = format!("created topic {} ({})\n", t.name, t.message_type);
    Ok(Output::new(to_json(&t), human))
}

/// `sundial topic list`
pub async fn list_topics(c: Client) -> Outcome {
    let ts = c.list_topics().await?;
    let rows = ts
        .iter()
        .map(|t| vec![t.name.clone(), t.message_type.clone(), time(t.created_ms)])
        .collect();
    Ok(Output::new(
        to_json(&ts),
        table(&["TOPIC", "TYPE", "CREATED"], rows),
    ))
}

/// `sundial topic show`
pub async fn show_topic(c: Client, topic: String) -> Outcome {
    let t = c.show_topic(&topic).await?;
    let mut human = format!(
        "topic {} ({}): timing {}, ready total {}, sent {}, recalled {}, purged {}, dropped {}\n",
        t.topic, t.message_type, t.timing, t.ready_total, t.sent, t.recalled, t.purged, t.dropped
    );
    let rows = t
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.ready.to_string(),
                g.inflight.to_string(),
                g.retry.to_string(),
                g.acked.to_string(),
                g.dead_lettered.to_string(),
            ]
        })
        .collect();
    human.push_str(&table(
        &[
            "GROUP",
            "READY",
            "INFLIGHT",
            "RETRY",
            "ACKED",
            "DEAD-LETTERED",
        ],
        rows,
    ));
    Ok(Output::new(to_json(&t), human))
}

/// `sundial topic delete`
pub async fn delete_topic(c: Client, topic: String) -> Outcome {
    c.delete_topic(&topic).await?;
    Ok(Output::new(
        json!({"deleted": topic}),
        format!("deleted topic {topic}\n"),
    ))
}

/// `sundial group create`
pub async fn create_group(
    c: Client,
    group: String,
    topic: String,
    from: StartFrom,
    filter: Option<String>,
) -> Outcome {
    let g = c
        .create_group(&topic, &group, from, filter.as_deref())
        .await?;
    let human = format!(
        "group {} on topic {} (filter {})\n",
        g.group, g.topic, g.filter
    );
    Ok(Output::new(to_json(&g), human))
}

/// `sundial group list`
pub async fn list_groups(c: Client, topic: Option<String>) -> Outcome {
    let gs = c.list_groups(topic.as_deref()).await?;
    let rows = gs
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.topic.clone(),
                g.filter.clone(),
                time(g.created_ms),
            ]
        })
        .collect();
    Ok(Output::new(
        to_json(&gs),
        table(&["GROUP", "TOPIC", "FILTER", "CREATED"], rows),
    ))
}

/// `sundial group reset-offset`
pub async fn reset_offset(c: Client, group: String, topic: String, to: u64) -> Outcome {
    let o = c.reset_offset(&topic, &group, to).await?;
    Ok(Output::new(
        json!({"topic": topic, "group": group, "to_ms": to, "next_offset": o}),
        format!("group {group} of {topic} now reads from offset {o}\n"),
    ))
}

/// `sundial receive`
pub async fn receive(c: Client, a: ReceiveArgs) -> Outcome {
    let o = ReceiveOptions {
        filter: a.filter,
        max_messages: a.max,
        invisible: a.invisible,
        wait: a.wait,
    };
    let ms = c.receive(&a.topic, &a.group, &o).await?;
    let human = if ms.is_empty() {
        "no messages\n".to_string()
    } else {
        ms.iter().map(human_message).collect()
    };
    Ok(Output::new(
        Value::Array(ms.iter().map(message_json).collect()),
        human,
    ))
}

/// `sundial recall`
pub async fn recall(c: Client, handle: String) -> Outcome {
    c.recall(&handle).await?;
    Ok(Output::new(
        json!({"recalled": handle}),
        format!("recalled {handle}\n"),
    ))
}

/// `sundial reschedule`
pub async fn reschedule(c: Client, a: RescheduleArgs) -> Outcome {
    let at = when(a.delay, a.deliver_at).unwrap_or_else(sundial_wire::now_ms);
    let r = c.reschedule(&a.handle, at).await?;
    let human = format!(
        "rescheduled {} to {} ({}), new recall handle {}\n",
        r.message_id,
        r.deliver_at_ms,
        time(r.deliver_at_ms),
        r.recall_handle
    );
    Ok(Output::new(to_json(&r), human))
}

/// `sundial message show`
pub async fn show_message(c: Client, id: String) -> Outcome {
    let m = c.show_message(&id).await?;
    let mut human = format!(
        "message {} on {}: {}, due {} ({}){}\n",
        m.message_id,
        m.topic,
        m.state,
        m.deliver_at_ms,
        time(m.deliver_at_ms),
        m.ready_at_ms
            .map(|r| format!(", Ready at {r}"))
            .unwrap_or_default()
    );
    let rows = m
        .groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                g.state.clone(),
                g.attempt.map(|a| a.to_string()).unwrap_or_default(),
                g.visible_at_ms.map(time).unwrap_or_default(),
            ]
        })
        .collect();
    if !m.groups.is_empty() {
        human.push_str(&table(&["GROUP", "STATE", "ATTEMPT", "VISIBLE AT"], rows));
    }
    Ok(Output::new(to_json(&m), human))
}

/// `sundial message find`
pub async fn find_messages(c: Client, topic: String, key: String) -> Outcome {
    let ids = c.find_messages(&topic, &key).await?;
    let human = if ids.is_empty() {
        "no messages\n".into()
    } else {
        ids.iter().map(|i| format!("{i}\n")).collect()
    };
    Ok(Output::new(json!(ids), human))
}

/// `sundial stats`
pub async fn stats(c: Client) -> Outcome {
    let s = c.stats().await?;
    let mut human = format!(
        "timing {}, early deliveries {}, disk {} bytes{}, connections {}, up {} s{}{}\n",
        s.timing_total,
        s.early_deliveries,
        s.disk_bytes,
        s.disk_high_watermark_bytes
            .map(|w| format!(" of {w}"))
            .unwrap_or_default(),
        s.connections,
        s.uptime_s,
        if s.storage_full { ", STORAGE FULL" } else { "" },
        if s.poisoned {
            ", WRITES REFUSED after a storage failure"
        } else {
            ""
        },
    );
    let mut rows = Vec::new();
    for t in &s.topics {
        rows.push(vec![
            t.topic.clone(),
            String::new(),
            t.timing.to_string(),
            String::new(),
            String::new(),
            String::new(),
            t.sent.to_string(),
        ]);
        for g in &t.groups {
            rows.push(vec![
                t.topic.clone(),
                g.group.clone(),
                String::new(),
                g.ready.to_string(),
                g.inflight.to_string(),
                g.acked.to_string(),
                String::new(),
            ]);
        }
    }
    human.push_str(&table(
        &[
            "TOPIC", "GROUP", "TIMING", "READY", "INFLIGHT", "ACKED", "SENT",
        ],
        rows,
    ));
    Ok(Output::new(to_json(&s), human))
}

fn when(delay: Option<Duration>, deliver_at: Option<i64>) -> Option<i64> {
    deliver_at.or(delay.map(deliver_at_after))
}

/// `sundial send`
pub async fn send(c: Client, a: SendArgs) -> Outcome {
    let body = match (&a.body, &a.body_file) {
        (Some(b), _) => b.clone().into_bytes(),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)
                .map_err(|e| Failure::bad_request(format!("cannot read standard input: {e}")))?;
            v
        }
        (None, Some(p)) => std::fs::read(p)
            .map_err(|e| Failure::bad_request(format!("cannot read {}: {e}", p.display())))?,
        (None, None) => Vec::new(),
    };
    let m = OutgoingMessage {
        topic: a.topic,
        tag: a.tag,
        keys: a.keys.into_iter().filter(|k| !k.is_empty()).collect(),
        properties: a.properties.into_iter().collect(),
        body,
        deliver_at_ms: when(a.delay, a.deliver_at),
    };
    let r = c.send(m).await?;
    let human = format!(
        "sent {}: deliver at {} ({}){}\nrecall handle {}\n",
        r.message_id,
        r.deliver_at_ms,
        time(r.deliver_at_ms),
        if r.adjusted {
            " - adjusted from the requested time"
        } else {
            ""
        },
        r.recall_handle
    );
    Ok(Output::new(to_json(&r), human))
}

/// `sundial ack` (`ack` true) and `sundial nack`
pub async fn settle(c: Client, a: SettleArgs, ack: bool) -> Outcome {
    // Text that is no receipt handle is refused on its own; the rest go in one request.
    let parsed: Vec<Result<ReceiptHandle, WireFailure>> = a
        .receipts
        .iter()
        .map(|r| {
            r.parse::<ReceiptHandle>()
                .map_err(|e| WireFailure::new(ErrorCode::BadReceiptHandle, e.to_string()))
        })
        .collect();
    let handles = partial::sendable(&parsed);
    let answered = if handles.is_empty() {
        Vec::new()
    } else if ack {
        c.ack(&a.topic, &a.group, handles).await?
    } else {
        c.nack(&a.topic, &a.group, handles).await?
    };
    let results = partial::in_order(parsed, answered, || {
        WireFailure::new(
            ErrorCode::Internal,
            "the daemon gave no result for this receipt",
        )
    });
    let receipts = a.receipts;
    let verb = if ack { "acked" } else { "nacked" };
    let mut human = String::new();
    let mut items = Vec::new();
    let mut failed = false;
    for (r, res) in receipts.iter().zip(results) {
        match res {
            Ok(()) => {
                human.push_str(&format!("{verb} {r}\n"));
                items.push(json!({"receipt_handle": r, verb: true}));
            }
            Err(WireFailure { code, message }) => {
                failed = true;
                human.push_str(&format!("not {verb} {r}: {code}: {message}\n"));
                items.push(json!({"receipt_handle": r, verb: false, "error": code.as_str(), "message": message}));
            }
        }
    }
    Ok(Output {
        json: Value::Array(items),
        human,
        partial_failure: failed,
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v)
        .unwrap_or_else(|e| json!({"error": "Internal", "message": e.to_string()}))
}

/// A received message as SPEC §7 spells it: `body` when it is UTF-8, else `body_base64`.
pub fn message_json(m: &Delivered) -> Value {
    let mut v = json!({
        "message_id": m.message_id,
        "topic": m.topic,
        "tag": m.tag,
        "keys": m.keys,
        "properties": m.properties,
        "deliver_at_ms": m.deliver_at_ms,
        "ready_at_ms": m.ready_at_ms,
        "delivery_attempt": m.delivery_attempt,
        "receipt_handle": m.receipt_handle.to_string(),
    });
    match std::str::from_utf8(&m.body) {
        Ok(text) => v["body"] = json!(text),
        Err(_) => {
            v["body_base64"] = json!(base64::engine::general_purpose::STANDARD.encode(&m.body))
        }
    }
    v
}

fn human_message(m: &Delivered) -> String {
    let body = match std::str::from_utf8(&m.body) {
        Ok(t) => format!("{t:?}"),
        Err(_) => format!("<{} bytes>", m.body.len()),
    };
    format!(
        "{} attempt {} due {} ({}) tag {} body {}\n  receipt {}\n",
        m.message_id,
        m.delivery_attempt,
        m.deliver_at_ms,
        time(m.deliver_at_ms),
        m.tag.as_deref().unwrap_or("-"),
        body,
        m.receipt_handle
    )
}

fn time(ms: u64) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    // Years past 9999 do not format; the number of milliseconds says it all then.
    if write!(
        s,
        "{}",
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms))
    )
    .is_err()
    {
        s = format!("{ms} ms");
    }
    s
}

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(headers.to_vec());
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_text_or_base64() {
        let mut m = Delivered {
            message_id: "0".repeat(32),
            topic: "t".into(),
            tag: None,
            keys: vec![],
            properties: Default::default(),
            body: b"hello".to_vec(),
            deliver_at_ms: 1,
            ready_at_ms: 2,
            delivery_attempt: 1,
            receipt_handle: ReceiptHandle {
                group: 1,
                offset: 2,
                nonce: 3,
            },
        };
        assert_eq!(message_json(&m)["body"], "hello");
        assert_eq!(
            message_json(&m)["receipt_handle"],
            format!("{:08x}{:016x}{:016x}", 1, 2, 3)
        );
        m.body = vec![0xff, 0xfe];
        let v = message_json(&m);
        assert_eq!(v["body_base64"], "//4=");
        assert!(v.get("body").is_none());
    }

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], vec![vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }

    #[test]
    fn properties_need_a_key() {
        assert_eq!(parse_property("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_property("=x").is_err());
        assert!(parse_property("novalue").is_err());
    }
}
