//! The official RocketMQ 5 Rust client (crate `rocketmq` 5.0.0) as a JSON-line program,
//! like the Python and Node programs: `producer` sends one delay message, `simple_consumer`
//! receives and acks --expect messages.

use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::MessageBuilder;
use rocketmq::{Producer, SimpleConsumer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn emit(event: &str, mut fields: Value) {
    fields["event"] = event.into();
    println!("{fields}");
}

fn arg(args: &HashMap<String, String>, k: &str, d: &str) -> String {
    args.get(k).cloned().unwrap_or_else(|| d.to_string())
}

#[tokio::main]
async fn main() {
    let mut it = std::env::args().skip(1);
    let what = it.next().unwrap_or_default();
    let mut args = HashMap::new();
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_default();
        args.insert(k.trim_start_matches("--").to_string(), v);
    }
    let timeout: u64 = arg(&args, "timeout", "60").parse().unwrap_or(60);
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(timeout));
        emit("timeout", json!({"after_s": timeout}));
        std::process::exit(3);
    });
    let mut client = ClientOption::default();
    client.set_access_url(arg(&args, "endpoint", "127.0.0.1:8081"));
    client.set_enable_tls(false);
    client.set_long_polling_timeout(Duration::from_secs(5));
    if let Some(ak) = args.get("access-key") {
        client.set_access_key(ak.clone());
        client.set_secret_key(arg(&args, "secret-key", ""));
    }
    let topic = arg(&args, "topic", "");
    let mut errors = 0;
    let mut error = |stage: &str, e: String| {
        errors += 1;
        emit(
            "error",
            json!({"stage": stage, "class": "ClientError", "message": e}),
        );
    };
    match what.as_str() {
        "producer" => {
            let mut opt = ProducerOption::default();
            opt.set_topics(vec![topic.clone()]);
            let mut p = match Producer::new(opt, client) {
                Ok(p) => p,
                Err(e) => {
                    error("startup", format!("{e:?}"));
                    emit("done", json!({"errors": errors}));
                    std::process::exit(1);
                }
            };
            match p.start().await {
                Ok(()) => emit("started", json!({"client": "producer", "mode": "delay"})),
                Err(e) => error("startup", format!("{e:?}")),
            }
            let delay: i64 = arg(&args, "delay-ms", "5000").parse().unwrap_or(5000);
            // The API takes whole seconds; round up so the message is never early.
            let secs = (now_ms() + delay + 999).div_euclid(1000);
            let mut props = HashMap::new();
            if let Some((k, v)) = arg(&args, "property", "").split_once('=') {
                props.insert(k.to_string(), v.to_string());
            }
            let keys: Vec<String> = arg(&args, "keys", "")
                .split(',')
                .filter(|k| !k.is_empty())
                .map(String::from)
                .collect();
            let m = MessageBuilder::delay_message_builder(
                topic.clone(),
                arg(&args, "body", "hello from rust").into_bytes(),
                secs,
            )
            .set_tag(arg(&args, "tag", "TagA"))
            .set_keys(keys)
            .set_properties(props)
            .build();
            match m {
                Ok(m) => match p.send(m).await {
                    Ok(r) => emit(
                        "sent",
                        json!({"index": 0, "message_id": r.message_id(), "deliver_at_ms": secs * 1000, "send_time_ms": now_ms()}),
                    ),
                    Err(e) => error("send", format!("{e:?}")),
                },
                Err(e) => error("send", format!("{e:?}")),
            }
            if let Err(e) = p.shutdown().await {
                error("shutdown", format!("{e:?}"));
            } else {
                emit("shutdown", json!({"client": "producer"}));
            }
        }
        "simple_consumer" => {
            let mut opt = SimpleConsumerOption::default();
            opt.set_topics(vec![topic.clone()]);
            opt.set_consumer_group(arg(&args, "group", ""));
            let mut c = match SimpleConsumer::new(opt, client) {
                Ok(c) => c,
                Err(e) => {
                    error("startup", format!("{e:?}"));
                    emit("done", json!({"errors": errors}));
                    std::process::exit(1);
                }
            };
            match c.start().await {
                Ok(()) => emit(
                    "started",
                    json!({"client": "simple_consumer", "mode": "ack"}),
                ),
                Err(e) => error("startup", format!("{e:?}")),
            }
            let expect: usize = arg(&args, "expect", "1").parse().unwrap_or(1);
            let stop = Instant::now() + Duration::from_secs(timeout.saturating_sub(12));
            let mut got = 0;
            let mut failures = 0;
            let filter = FilterExpression::new(FilterType::Tag, arg(&args, "filter", "*"));
            while got < expect && Instant::now() < stop && failures < 3 {
                match c
                    .receive_with(topic.clone(), &filter, 16, Duration::from_secs(30))
                    .await
                {
                    Ok(ms) => {
                        for m in ms {
                            got += 1;
                            let mut keys = m.keys().to_vec();
                            keys.sort();
                            emit(
                                "received",
                                json!({
                                    "message_id": m.message_id(), "topic": m.topic(),
                                    "body": String::from_utf8_lossy(m.body()), "tag": m.tag(),
                                    "keys": keys, "properties": m.properties(),
                                    "delivery_attempt": m.delivery_attempt(),
                                    // The client exposes whole seconds.
                                    "delivery_timestamp_s": m.delivery_timestamp(),
                                    "receive_time_ms": now_ms(),
                                }),
                            );
                            match c.ack(&m).await {
                                Ok(()) => emit("acked", json!({"message_id": m.message_id()})),
                                Err(e) => error("ack", format!("{e:?}")),
                            }
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        error("receive", format!("{e:?}"));
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            if let Err(e) = c.shutdown().await {
                error("shutdown", format!("{e:?}"));
            } else {
                emit("shutdown", json!({"client": "simple_consumer"}));
            }
        }
        other => {
            eprintln!("unknown program {other:?}: producer or simple_consumer");
            std::process::exit(2);
        }
    }
    emit("done", json!({"errors": errors}));
    std::process::exit(if errors == 0 { 0 } else { 1 });
}
