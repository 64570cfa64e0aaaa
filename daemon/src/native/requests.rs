//! One function per request: decode its fields into engine types, call the broker,
//! encode the result as a [`Response`].

use super::convert;
use crate::broker::Broker;
use crate::errors;
use std::time::Duration;
use sundial_engine::{Error, ReceiveRequest};
use sundial_wire::{
    ErrorCode, OutgoingMessage, ReceiptHandle as WireHandle, Request, Response, StartFrom,
    TopicType, WireFailure,
};

type Answer = Result<Response, Error>;

/// What every request function needs: the broker, the request's `op` label and the
/// connection's frame limit.
#[derive(Clone, Copy)]
struct Call<'a> {
    broker: &'a Broker,
    op: &'static str,
    max_frame: usize,
}

/// An engine error as the wire says it.
fn failure(e: &Error) -> WireFailure {
    WireFailure::new(errors::code(e), e.to_string())
}

/// The `op` label of every request [`answer`] serves ([`Request::op`]).
pub const OPS: [&str; 18] = [
    "create_topic",
    "delete_topic",
    "list_topics",
    "show_topic",
    "create_group",
    "list_groups",
    "reset_offset",
    "send",
    "send_batch",
    "receive",
    "ack",
    "nack",
    "change_invisible",
    "recall",
    "reschedule",
    "show_message",
    "find_messages",
    "stats",
];

/// Answers one request read after the handshake. The front end keeps this future per
/// request in flight and moves it a few times, so its size is the largest arm's: all but
/// the hot single-message operations (send, batch send, ack) are boxed, which keeps it
/// under a kilobyte instead of 2.8 KiB.
pub async fn answer(broker: &Broker, max_frame: usize, req: Request) -> Response {
    let c = Call {
        broker,
        op: req.op(),
        max_frame,
    };
    let answer = match req {
        Request::Hello(_) => {
            return Response::Failed(WireFailure::new(
                ErrorCode::BadRequest,
                "the handshake was already made on this connection",
            ))
        }
        Request::CreateTopic {
            topic,
            message_type,
        } => Box::pin(create_topic(c, topic, message_type)).await,
        Request::DeleteTopic { topic } => Box::pin(delete_topic(c, topic)).await,
        Request::ListTopics => Box::pin(list_topics(c)).await,
        Request::ShowTopic { topic } => Box::pin(show_topic(c, topic)).await,
        Request::CreateGroup {
            topic,
            group,
            from,
            filter,
        } => Box::pin(create_group(c, topic, group, from, filter)).await,
        Request::ListGroups { topic } => Box::pin(list_groups(c, topic)).await,
        Request::ResetOffset {
            topic,
            group,
            to_ms,
        } => Box::pin(reset_offset(c, topic, group, to_ms)).await,
        Request::Send(m) => send(c, m).await,
        Request::SendBatch(ms) => send_batch(c, ms).await,
        Request::Receive {
            topic,
            group,
            filter,
            max_messages,
            invisible_ms,
            wait_ms,
        } => {
            Box::pin(receive(
                c,
                topic,
                group,
                filter,
                max_messages,
                invisible_ms,
                wait_ms,
            ))
            .await
        }
        Request::Ack {
            topic,
            group,
            receipts,
        } => ack(c, topic, group, receipts).await,
        Request::Nack {
            topic,
            group,
            receipts,
        } => Box::pin(nack(c, topic, group, receipts)).await,
        Request::ChangeInvisible {
            topic,
            group,
            receipt,
            invisible_ms,
        } => Box::pin(change_invisible(c, topic, group, receipt, invisible_ms)).await,
        Request::Recall { handle } => Box::pin(recall(c, handle)).await,
        Request::Reschedule {
            handle,
            deliver_at_ms,
        } => Box::pin(reschedule(c, handle, deliver_at_ms)).await,
        Request::ShowMessage { message_id } => Box::pin(show_message(c, message_id)).await,
        Request::FindMessages { topic, key } => Box::pin(find_messages(c, topic, key)).await,
        Request::Stats => Box::pin(stats(c)).await,
    };
    answer.unwrap_or_else(|e| Response::Failed(failure(&e)))
}

async fn create_topic(c: Call<'_>, topic: String, message_type: TopicType) -> Answer {
    let kind = convert::topic_kind(message_type);
    let t = c.broker.create_topic(c.op, topic, kind).await?;
    Ok(Response::Topic(convert::topic_info(t)))
}

async fn delete_topic(c: Call<'_>, topic: String) -> Answer {
    c.broker.delete_topic(c.op, topic).await?;
    Ok(Response::Done)
}

async fn list_topics(c: Call<'_>) -> Answer {
    let v = c.broker.list_topics(c.op).await?;
    Ok(Response::Topics(
        v.into_iter().map(convert::topic_info).collect(),
    ))
}

async fn show_topic(c: Call<'_>, topic: String) -> Answer {
    let t = c.broker.show_topic(c.op, topic).await?;
    Ok(Response::TopicCounts(convert::topic_counts(t)))
}

async fn create_group(
    c: Call<'_>,
    topic: String,
    group: String,
    from: StartFrom,
    filter: Option<String>,
) -> Answer {
    let start = convert::group_start(from);
    let g = c
        .broker
        .create_group(c.op, topic, group, start, filter)
        .await?;
    Ok(Response::Group(convert::group_info(g)))
}

async fn list_groups(c: Call<'_>, topic: Option<String>) -> Answer {
    let v = c.broker.list_groups(c.op, topic).await?;
    Ok(Response::Groups(
        v.into_iter().map(convert::group_info).collect(),
    ))
}

async fn reset_offset(c: Call<'_>, topic: String, group: String, to_ms: u64) -> Answer {
    let o = c.broker.reset_offset(c.op, topic, group, to_ms).await?;
    Ok(Response::Offset(o))
}

/// Answers single sends that arrived together on one connection, keyed by request id:
/// one engine batch, and each message succeeds or fails on its own as if sent alone
/// (each is counted as a `send` request).
pub async fn answer_sends(
    broker: &Broker,
    sends: Vec<(u64, OutgoingMessage)>,
) -> Vec<(u64, Response)> {
    let (ids, msgs): (Vec<u64>, Vec<_>) = sends
        .into_iter()
        .map(|(id, m)| (id, convert::new_message(m)))
        .unzip();
    let results = broker.send_each("send", msgs).await;
    ids.into_iter()
        .zip(results)
        .map(|(id, r)| {
            let resp = match r {
                Ok(r) => Response::Sent(convert::receipt(r)),
                Err(e) => Response::Failed(failure(&e)),
            };
            (id, resp)
        })
        .collect()
}

async fn send(c: Call<'_>, m: OutgoingMessage) -> Answer {
    let r = c.broker.send(c.op, convert::new_message(m)).await?;
    Ok(Response::Sent(convert::receipt(r)))
}

async fn send_batch(c: Call<'_>, ms: Vec<OutgoingMessage>) -> Answer {
    let ms = ms.into_iter().map(convert::new_message).collect();
    let v = c.broker.send_batch(c.op, ms).await?;
    Ok(Response::SentBatch(
        v.into_iter()
            .map(|r| r.map(convert::receipt).map_err(|e| failure(&e)))
            .collect(),
    ))
}

/// Stored bytes one receive may hand out so its answer fits a frame. Each delivered
/// message adds its id, topic, times and receipt (at most about 250 bytes) to its stored
/// record; keep room for 1024 of them. A single message always fits: it came in a
/// frame, and answers may exceed the frame limit by `RESPONSE_HEADROOM`.
fn receive_budget(max_frame: usize) -> usize {
    max_frame.saturating_sub(256 * 1024).max(1)
}

async fn receive(
    c: Call<'_>,
    topic: String,
    group: String,
    filter: Option<String>,
    max_messages: u32,
    invisible_ms: u64,
    wait_ms: u64,
) -> Answer {
    let req = ReceiveRequest {
        topic,
        group,
        filter,
        max_messages: max_messages as usize,
        invisible_duration: Duration::from_millis(invisible_ms),
        max_bytes: Some(receive_budget(c.max_frame)),
    };
    let got = c
        .broker
        .receive(c.op, req, Duration::from_millis(wait_ms))
        .await?;
    Ok(Response::Messages(
        got.into_iter().map(convert::delivered).collect(),
    ))
}

/// Per-receipt outcomes of an ack or nack.
fn settled(v: Vec<Result<(), Error>>) -> Response {
    Response::Settled(v.into_iter().map(|r| r.map_err(|e| failure(&e))).collect())
}

async fn ack(c: Call<'_>, topic: String, group: String, receipts: Vec<WireHandle>) -> Answer {
    let receipts = receipts.into_iter().map(convert::handle).collect();
    Ok(settled(c.broker.ack(c.op, topic, group, receipts).await?))
}

async fn nack(c: Call<'_>, topic: String, group: String, receipts: Vec<WireHandle>) -> Answer {
    let receipts = receipts.into_iter().map(convert::handle).collect();
    Ok(settled(c.broker.nack(c.op, topic, group, receipts).await?))
}

async fn change_invisible(
    c: Call<'_>,
    topic: String,
    group: String,
    receipt: WireHandle,
    invisible_ms: u64,
) -> Answer {
    let d = Duration::from_millis(invisible_ms);
    let receipt = convert::handle(receipt);
    let h = c
        .broker
        .change_invisible(c.op, topic, group, receipt, d)
        .await?;
    Ok(Response::NewReceipt(convert::wire_handle(h)))
}

async fn recall(c: Call<'_>, handle: String) -> Answer {
    c.broker.recall(c.op, handle).await?;
    Ok(Response::Done)
}

async fn reschedule(c: Call<'_>, handle: String, deliver_at_ms: i64) -> Answer {
    let r = c.broker.reschedule(c.op, handle, deliver_at_ms).await?;
    Ok(Response::Sent(convert::receipt(r)))
}

async fn show_message(c: Call<'_>, message_id: String) -> Answer {
    let v = c.broker.show_message(c.op, message_id).await?;
    Ok(Response::Message(convert::message_info(v)))
}

async fn find_messages(c: Call<'_>, topic: String, key: String) -> Answer {
    let ids = c.broker.find_messages(c.op, topic, key).await?;
    Ok(Response::MessageIds(
        ids.into_iter().map(|i| i.to_string()).collect(),
    ))
}

async fn stats(c: Call<'_>) -> Answer {
    let r = c.broker.stats(c.op).await?;
    Ok(Response::Stats(convert::stats_report(r)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_name_every_request_after_the_handshake() {
        let s = String::new;
        let requests = [
            Request::CreateTopic {
                topic: s(),
                message_type: TopicType::Delay,
            },
            Request::DeleteTopic { topic: s() },
            Request::ListTopics,
            Request::ShowTopic { topic: s() },
            Request::CreateGroup {
                topic: s(),
                group: s(),
                from: StartFrom::Latest,
                filter: None,
            },
            Request::ListGroups { topic: None },
            Request::ResetOffset {
                topic: s(),
                group: s(),
                to_ms: 0,
            },
            Request::Send(OutgoingMessage::default()),
            Request::SendBatch(Vec::new()),
            Request::Receive {
                topic: s(),
                group: s(),
                filter: None,
                max_messages: 1,
                invisible_ms: 0,
                wait_ms: 0,
            },
            Request::Ack {
                topic: s(),
                group: s(),
                receipts: Vec::new(),
            },
            Request::Nack {
                topic: s(),
                group: s(),
                receipts: Vec::new(),
            },
            Request::ChangeInvisible {
                topic: s(),
                group: s(),
                receipt: sundial_wire::ReceiptHandle {
                    group: 0,
                    offset: 0,
                    nonce: 0,
                },
                invisible_ms: 0,
            },
            Request::Recall { handle: s() },
            Request::Reschedule {
                handle: s(),
                deliver_at_ms: 0,
            },
            Request::ShowMessage { message_id: s() },
            Request::FindMessages {
                topic: s(),
                key: s(),
            },
            Request::Stats,
        ];
        let ops: Vec<_> = requests.iter().map(Request::op).collect();
        assert_eq!(ops, OPS);
    }
}
