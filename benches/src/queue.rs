//! One interface over the two queues a workload drives: sundial through its client, and
//! the peer, a Redis sorted-set delay queue (see `redis_peer`). The `send`, `burst` and
//! `steady` workloads are written once against it, so both sides run the same code.

use crate::redis_peer::{Mover, RedisServer};
use redis::aio::MultiplexedConnection;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use sundial_rmq_proto::convert::{proto_duration, resource};
use sundial_rmq_proto::time;
use sundial_rmq_proto::v2::{self, messaging_service_client::MessagingServiceClient};
use sundial_wire::{
    Client, ClientOptions, OutgoingMessage, ReceiptHandle, ReceiveOptions, StartFrom, TopicType,
};
use tonic::transport::Channel;

/// Which queue a workload runs against.
#[derive(Clone)]
pub enum Queue {
    /// A sundial daemon: one delay topic with the given consumer groups.
    Sundial { addr: String, topic: String },
    /// The same daemon over its RocketMQ 5 gRPC port (a tonic client speaking what the
    /// official clients speak); `admin` is a native connection for counters.
    Grpc {
        grpc: String,
        topic: String,
        admin: Client,
        next_id: Arc<AtomicU64>,
    },
    /// A Redis delay queue: sorted set `key`, ready list `key:ready`, moved by a task.
    Redis {
        url: String,
        key: String,
        next_id: Arc<AtomicU64>,
        mover: Arc<Mover>,
    },
}

/// One delivered message, as a workload sees it.
pub struct Got {
    /// Unique per message (sundial's id, or the id the producer gave the Redis member).
    pub id: u128,
    /// The time it was due (Unix ms).
    pub deliver_at_ms: u64,
    /// When it became Ready, where the queue says (sundial does; Redis does not).
    pub ready_at_ms: Option<u64>,
    /// What `settle` needs: sundial's receipt handle, native or over gRPC.
    receipt: Option<Settle>,
}

/// How a delivery is settled.
#[derive(Debug, Clone)]
enum Settle {
    Native(ReceiptHandle),
    Grpc(String),
}

/// A producer's connection.
#[derive(Clone)]
pub enum Producer {
    Sundial(Client, String),
    Grpc(MessagingServiceClient<Channel>, String, Arc<AtomicU64>),
    Redis(MultiplexedConnection, String, Arc<AtomicU64>),
}

/// A consumer's connection, for one group. A clone shares the connection.
#[derive(Clone)]
pub enum Consumer {
    Sundial {
        client: Client,
        topic: String,
        group: String,
        invisible: Duration,
    },
    Grpc {
        client: MessagingServiceClient<Channel>,
        topic: String,
        group: String,
        invisible: Duration,
    },
    Redis(MultiplexedConnection, String),
}

/// A gRPC connection to the daemon's RocketMQ port.
async fn grpc_connect(addr: &str) -> Result<MessagingServiceClient<Channel>, String> {
    let c = MessagingServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| format!("cannot connect to gRPC {addr}: {e}"))?;
    Ok(c.max_decoding_message_size(64 << 20))
}

fn check(s: Option<v2::Status>, what: &str) -> Result<(), String> {
    match s {
        Some(s) if s.code == v2::Code::Ok as i32 => Ok(()),
        Some(s) => Err(format!("{what}: status {} {}", s.code, s.message)),
        None => Err(format!("{what}: no status")),
    }
}

impl Queue {
    /// A fresh delay topic named after `name`, created on the native port at `addr`, with
    /// `groups` created from the start, used over the gRPC port at `grpc`.
    pub async fn grpc(
        addr: &str,
        grpc: &str,
        name: &str,
        groups: &[String],
    ) -> Result<Queue, String> {
        let Queue::Sundial { topic, .. } = Queue::sundial(addr, name, groups).await? else {
            return Err("not a sundial queue".into());
        };
        let admin = Client::connect(addr, ClientOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Queue::Grpc {
            grpc: grpc.to_string(),
            topic,
            admin,
            next_id: Arc::new(AtomicU64::new(1)),
        })
    }

    /// A fresh topic named after `name` on the daemon at `addr`, with `groups` created
    /// from the start of its ready log.
    pub async fn sundial(addr: &str, name: &str, groups: &[String]) -> Result<Queue, String> {
        let c = Client::connect(addr, ClientOptions::default())
            .await
            .map_err(|e| e.to_string())?;
        let topic = format!("{name}-{}", sundial_wire::now_ms());
        c.create_topic(&topic, TopicType::Delay)
            .await
            .map_err(|e| e.to_string())?;
        for g in groups {
            c.create_group(&topic, g, StartFrom::Earliest, None)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(Queue::Sundial {
            addr: addr.to_string(),
            topic,
        })
    }

    /// A queue named `name` on `server`, with its mover task running.
    pub async fn redis(server: &RedisServer, name: &str) -> Result<Queue, String> {
        let url = server.url();
        let key = format!("{name}-{}", sundial_wire::now_ms());
        let mover = Mover::start(&url, &key).await?;
        Ok(Queue::Redis {
            url,
            key,
            next_id: Arc::new(AtomicU64::new(1)),
            mover: Arc::new(mover),
        })
    }

    /// A new connection for a producer.
    pub async fn producer(&self) -> Result<Producer, String> {
        Ok(match self {
            Queue::Sundial { addr, topic } => Producer::Sundial(
                Client::connect(addr, ClientOptions::default())
                    .await
                    .map_err(|e| e.to_string())?,
                topic.clone(),
            ),
            Queue::Grpc {
                grpc,
                topic,
                next_id,
                ..
            } => Producer::Grpc(grpc_connect(grpc).await?, topic.clone(), next_id.clone()),
            Queue::Redis {
                url, key, next_id, ..
            } => Producer::Redis(redis_connect(url).await?, key.clone(), next_id.clone()),
        })
    }

    /// A new connection for a consumer in `group` (Redis has one list: no groups).
    pub async fn consumer(&self, group: &str, invisible: Duration) -> Result<Consumer, String> {
        Ok(match self {
            Queue::Sundial { addr, topic } => Consumer::Sundial {
                client: Client::connect(addr, ClientOptions::default())
                    .await
                    .map_err(|e| e.to_string())?,
                topic: topic.clone(),
                group: group.to_string(),
                invisible,
            },
            Queue::Grpc { grpc, topic, .. } => Consumer::Grpc {
                client: grpc_connect(grpc).await?,
                topic: topic.clone(),
                group: group.to_string(),
                invisible,
            },
            Queue::Redis { url, key, .. } => {
                Consumer::Redis(redis_connect(url).await?, ready_list(key))
            }
        })
    }

    /// How many messages have become Ready so far (exact counters on sundial; what the
    /// mover moved on Redis).
    pub async fn ready_total(&self, probe: &Producer) -> Result<u64, String> {
        match (self, probe) {
            (Queue::Sundial { topic, .. }, Producer::Sundial(c, _)) => c
                .show_topic(topic)
                .await
                .map(|t| t.ready_total)
                .map_err(|e| e.to_string()),
            (Queue::Grpc { topic, admin, .. }, _) => admin
                .show_topic(topic)
                .await
                .map(|t| t.ready_total)
                .map_err(|e| e.to_string()),
            (Queue::Redis { mover, .. }, _) => Ok(mover.moved()),
            _ => Err("probe of the wrong kind".into()),
        }
    }
}

impl Producer {
    /// Schedules one message per entry of `at` (Unix ms) with `body`; when this returns
    /// Ok, the queue has acknowledged them all.
    pub async fn schedule(&self, at: &[i64], body: &[u8]) -> Result<u64, String> {
        match self {
            Producer::Sundial(c, topic) => {
                if let [one] = at {
                    let m = OutgoingMessage::new(topic.clone(), crate::bodies::body(body))
                        .deliver_at(*one);
                    c.send(m).await.map_err(|e| e.to_string())?;
                    return Ok(1);
                }
                let msgs = at
                    .iter()
                    .map(|t| {
                        OutgoingMessage::new(topic.clone(), crate::bodies::body(body))
                            .deliver_at(*t)
                    })
                    .collect();
                let v = c.send_batch(msgs).await.map_err(|e| e.to_string())?;
                for r in &v {
                    r.as_ref().map_err(|e| e.to_string())?;
                }
                Ok(v.len() as u64)
            }
            Producer::Grpc(client, topic, next_id) => {
                let first = next_id.fetch_add(at.len() as u64, Ordering::Relaxed);
                let messages = at
                    .iter()
                    .enumerate()
                    .map(|(i, t)| grpc_message(topic, first + i as u64, *t, body))
                    .collect();
                let r = client
                    .clone()
                    .send_message(v2::SendMessageRequest { messages })
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                check(r.status, "send")?;
                Ok(r.entries.len() as u64)
            }
            Producer::Redis(con, key, next_id) => {
                // One variadic ZADD per batch, scored by due time; the member carries the
                // id and due time in front of the body.
                let first = next_id.fetch_add(at.len() as u64, Ordering::Relaxed);
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(key);
                for (i, t) in at.iter().enumerate() {
                    cmd.arg(*t)
                        .arg(member(first + i as u64, *t, &crate::bodies::body(body)));
                }
                let added: u64 = cmd
                    .query_async(&mut con.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(added)
            }
        }
    }
}

impl Consumer {
    /// Up to `max` Ready messages, waiting up to `wait` when there are none.
    pub async fn take(&mut self, max: u32, wait: Duration) -> Result<Vec<Got>, String> {
        match self {
            Consumer::Sundial {
                client,
                topic,
                group,
                invisible,
            } => {
                let o = ReceiveOptions {
                    max_messages: max,
                    invisible: *invisible,
                    wait,
                    ..ReceiveOptions::default()
                };
                let got = client
                    .receive_deliveries(topic, group, &o)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(got
                    .into_iter()
                    .map(|m| Got {
                        id: m.id,
                        deliver_at_ms: m.deliver_at_ms,
                        ready_at_ms: Some(m.ready_at_ms),
                        receipt: Some(Settle::Native(m.receipt)),
                    })
                    .collect())
            }
            Consumer::Grpc {
                client,
                topic,
                group,
                invisible,
            } => {
                use v2::receive_message_response::Content;
                let mut req = tonic::Request::new(v2::ReceiveMessageRequest {
                    group: resource(group),
                    message_queue: Some(v2::MessageQueue {
                        topic: resource(topic),
                        ..Default::default()
                    }),
                    filter_expression: Some(v2::FilterExpression {
                        r#type: v2::FilterType::Tag as i32,
                        expression: "*".into(),
                    }),
                    batch_size: max.max(1) as i32,
                    invisible_duration: Some(proto_duration(*invisible)),
                    auto_renew: false,
                    long_polling_timeout: Some(proto_duration(wait)),
                    attempt_id: None,
                });
                req.set_timeout(wait + Duration::from_secs(3));
                let mut stream = client
                    .receive_message(req)
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                let mut out = Vec::new();
                while let Some(frame) = stream.message().await.map_err(|e| e.to_string())? {
                    match frame.content {
                        Some(Content::Status(s))
                            if s.code != v2::Code::Ok as i32
                                && s.code != v2::Code::MessageNotFound as i32 =>
                        {
                            return Err(format!("receive: status {} {}", s.code, s.message));
                        }
                        Some(Content::Message(m)) => {
                            let sp = m.system_properties.unwrap_or_default();
                            let id = sp.message_id;
                            let tail = id.get(id.len().saturating_sub(32)..).unwrap_or("");
                            let ms = |t: Option<prost_types::Timestamp>| {
                                t.and_then(time::delivery_ms).map(|ms| ms.max(0) as u64)
                            };
                            out.push(Got {
                                id: u128::from_str_radix(tail, 16).unwrap_or(0),
                                deliver_at_ms: ms(sp.delivery_timestamp)
                                    .or(ms(sp.born_timestamp))
                                    .unwrap_or(0),
                                ready_at_ms: None,
                                receipt: sp.receipt_handle.map(Settle::Grpc),
                            });
                        }
                        _ => {}
                    }
                }
                Ok(out)
            }
            Consumer::Redis(con, list) => {
                // BLMPOP: a blocking pop of up to `max` members in one call.
                let popped: Option<(String, Vec<Vec<u8>>)> = redis::cmd("BLMPOP")
                    .arg(wait.as_secs_f64().max(0.001))
                    .arg(1)
                    .arg(&*list)
                    .arg("LEFT")
                    .arg("COUNT")
                    .arg(max.max(1))
                    .query_async(con)
                    .await
                    .map_err(|e| e.to_string())?;
                let members = popped.map(|(_, v)| v).unwrap_or_default();
                members.iter().map(|m| parse_member(m)).collect()
            }
        }
    }

    /// [`Consumer::settle`] as a task of its own on the same connection, so that the
    /// consumer can take its next batch while the acks of this one are on their way.
    pub fn settle_owned(
        &self,
        got: Vec<Got>,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let mut c = self.clone();
        async move { c.settle(&got).await }
    }

    /// Acknowledges what `take` returned (sundial); a Redis pop is already final.
    pub async fn settle(&mut self, got: &[Got]) -> Result<(), String> {
        if let Consumer::Grpc {
            client,
            topic,
            group,
            ..
        } = self
        {
            let entries = got
                .iter()
                .filter_map(|g| match &g.receipt {
                    Some(Settle::Grpc(r)) => Some(v2::AckMessageEntry {
                        message_id: format!("{:032X}", g.id),
                        receipt_handle: r.clone(),
                        lite_topic: None,
                    }),
                    _ => None,
                })
                .collect();
            let r = client
                .ack_message(v2::AckMessageRequest {
                    group: resource(group),
                    topic: resource(topic),
                    entries,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            return check(r.status, "ack");
        }
        if let Consumer::Sundial {
            client,
            topic,
            group,
            ..
        } = self
        {
            let receipts: Vec<ReceiptHandle> = got
                .iter()
                .filter_map(|g| match g.receipt {
                    Some(Settle::Native(r)) => Some(r),
                    _ => None,
                })
                .collect();
            for r in client
                .ack(topic, group, receipts)
                .await
                .map_err(|e| e.to_string())?
            {
                r.map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

/// A DELAY message as the official clients send it: a client-generated id ("01" and 32
/// hex digits here, unique per queue), IDENTITY body, the delivery timestamp.
fn grpc_message(topic: &str, n: u64, at: i64, body: &[u8]) -> v2::Message {
    v2::Message {
        topic: resource(topic),
        user_properties: Default::default(),
        system_properties: Some(v2::SystemProperties {
            message_id: format!("01{n:032X}"),
            message_type: v2::MessageType::Delay as i32,
            body_encoding: v2::Encoding::Identity as i32,
            born_timestamp: Some(time::timestamp_of_ms(sundial_wire::now_ms() as i64)),
            born_host: "127.0.0.1".into(),
            delivery_timestamp: Some(time::timestamp_of_ms(at)),
            ..Default::default()
        }),
        body: crate::bodies::body(body),
    }
}

/// The Redis list that due members are moved to.
pub fn ready_list(key: &str) -> String {
    format!("{key}:ready")
}

/// A pipelined connection to Redis. The crate's default 500 ms response timeout would
/// fail long blocking pops and slow fsyncs, so replies get a minute.
pub async fn redis_connect(url: &str) -> Result<MultiplexedConnection, String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(60)));
    redis::Client::open(url)
        .map_err(|e| e.to_string())?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

/// `id:deliver_at:body`: unique, so equal bodies due at the same time stay distinct
/// members of the set.
fn member(id: u64, at: i64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{id:016x}:{at}:").into_bytes();
    m.extend_from_slice(body);
    m
}

fn parse_member(m: &[u8]) -> Result<Got, String> {
    let mut parts = m.splitn(3, |b| *b == b':');
    let field = |p: Option<&[u8]>| -> Option<String> {
        p.and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
    };
    let id = field(parts.next()).and_then(|s| u128::from_str_radix(&s, 16).ok());
    let at = field(parts.next()).and_then(|s| s.parse::<u64>().ok());
    match (id, at) {
        (Some(id), Some(deliver_at_ms)) => Ok(Got {
            id,
            deliver_at_ms,
            ready_at_ms: None,
            receipt: None,
        }),
        _ => Err("a Redis member not written by this tool".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip() {
        let m = member(42, 1_700_000_000_123, b"a:b");
        let g = parse_member(&m).expect("parses");
        assert_eq!((g.id, g.deliver_at_ms), (42, 1_700_000_000_123));
        assert!(parse_member(b"nonsense").is_err());
    }
}
