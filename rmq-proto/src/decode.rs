//! Decoding a request by the name of its RPC: what the front end does with each gRPC
//! message (or Telemetry frame) before it calls the broker, and what the fuzz target
//! drives. It never panics: every input is a request or a [`DecodeError`].

use prost::Message;

use crate::v2;

/// Every RPC of `MessagingService`, in the order the service declares them.
pub const RPCS: [&str; 17] = [
    "QueryRoute",
    "Heartbeat",
    "SendMessage",
    "QueryAssignment",
    "ReceiveMessage",
    "AckMessage",
    "ForwardMessageToDeadLetterQueue",
    "PullMessage",
    "UpdateOffset",
    "GetOffset",
    "QueryOffset",
    "EndTransaction",
    "Telemetry",
    "NotifyClientTermination",
    "ChangeInvisibleDuration",
    "RecallMessage",
    "SyncLiteSubscription",
];

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No RPC of that name exists.
    #[error("no RPC named {0:?}")]
    UnknownRpc(String),
    /// The bytes are not a valid message of the RPC's request type.
    #[error("malformed {rpc} request: {reason}")]
    Malformed {
        /// The RPC whose request was expected.
        rpc: &'static str,
        /// prost's description of what was wrong.
        reason: String,
    },
}

/// One decoded request message, of any RPC (for Telemetry: one client frame).
#[derive(Debug, Clone, PartialEq)]
// Each variant is its RPC's request type. A request lives for one call and is
// matched on at once, so the size spread between variants costs nothing worth a box.
#[allow(missing_docs, clippy::large_enum_variant)]
pub enum Request {
    QueryRoute(v2::QueryRouteRequest),
    Heartbeat(v2::HeartbeatRequest),
    SendMessage(v2::SendMessageRequest),
    QueryAssignment(v2::QueryAssignmentRequest),
    ReceiveMessage(v2::ReceiveMessageRequest),
    AckMessage(v2::AckMessageRequest),
    ForwardMessageToDeadLetterQueue(v2::ForwardMessageToDeadLetterQueueRequest),
    PullMessage(v2::PullMessageRequest),
    UpdateOffset(v2::UpdateOffsetRequest),
    GetOffset(v2::GetOffsetRequest),
    QueryOffset(v2::QueryOffsetRequest),
    EndTransaction(v2::EndTransactionRequest),
    Telemetry(v2::TelemetryCommand),
    NotifyClientTermination(v2::NotifyClientTerminationRequest),
    ChangeInvisibleDuration(v2::ChangeInvisibleDurationRequest),
    RecallMessage(v2::RecallMessageRequest),
    SyncLiteSubscription(v2::SyncLiteSubscriptionRequest),
}

/// Applies `$body` to the message inside any [`Request`] variant.
macro_rules! each {
    ($req:expr, $m:ident => $body:expr) => {
        match $req {
            Request::QueryRoute($m) => $body,
            Request::Heartbeat($m) => $body,
            Request::SendMessage($m) => $body,
            Request::QueryAssignment($m) => $body,
            Request::ReceiveMessage($m) => $body,
            Request::AckMessage($m) => $body,
            Request::ForwardMessageToDeadLetterQueue($m) => $body,
            Request::PullMessage($m) => $body,
            Request::UpdateOffset($m) => $body,
            Request::GetOffset($m) => $body,
            Request::QueryOffset($m) => $body,
            Request::EndTransaction($m) => $body,
            Request::Telemetry($m) => $body,
            Request::NotifyClientTermination($m) => $body,
            Request::ChangeInvisibleDuration($m) => $body,
            Request::RecallMessage($m) => $body,
            Request::SyncLiteSubscription($m) => $body,
        }
    };
}

impl Request {
    /// The RPC this request belongs to.
    pub fn rpc(&self) -> &'static str {
        match self {
            Request::QueryRoute(_) => RPCS[0],
            Request::Heartbeat(_) => RPCS[1],
            Request::SendMessage(_) => RPCS[2],
            Request::QueryAssignment(_) => RPCS[3],
            Request::ReceiveMessage(_) => RPCS[4],
            Request::AckMessage(_) => RPCS[5],
            Request::ForwardMessageToDeadLetterQueue(_) => RPCS[6],
            Request::PullMessage(_) => RPCS[7],
            Request::UpdateOffset(_) => RPCS[8],
            Request::GetOffset(_) => RPCS[9],
            Request::QueryOffset(_) => RPCS[10],
            Request::EndTransaction(_) => RPCS[11],
            Request::Telemetry(_) => RPCS[12],
            Request::NotifyClientTermination(_) => RPCS[13],
            Request::ChangeInvisibleDuration(_) => RPCS[14],
            Request::RecallMessage(_) => RPCS[15],
            Request::SyncLiteSubscription(_) => RPCS[16],
        }
    }

    /// The request's protobuf encoding.
    pub fn encode_to_vec(&self) -> Vec<u8> {
        each!(self, m => m.encode_to_vec())
    }
}

fn parse<M: Message + Default>(
    rpc: &'static str,
    bytes: &[u8],
    wrap: fn(M) -> Request,
) -> Result<Request, DecodeError> {
    M::decode(bytes)
        .map(wrap)
        .map_err(|e| DecodeError::Malformed {
            rpc,
            reason: e.to_string(),
        })
}

/// Decodes `bytes` as the request message of the RPC named `rpc` (its bare name, e.g.
/// `"SendMessage"`, or its full path `/apache.rocketmq.v2.MessagingService/SendMessage`).
pub fn decode_request(rpc: &str, bytes: &[u8]) -> Result<Request, DecodeError> {
    let name = rpc
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(crate::SERVICE))
        .and_then(|p| p.strip_prefix('/'))
        .unwrap_or(rpc);
    let Some(&name) = RPCS.iter().find(|&&r| r == name) else {
        return Err(DecodeError::UnknownRpc(rpc.to_owned()));
    };
    match name {
        "QueryRoute" => parse(name, bytes, Request::QueryRoute),
        "Heartbeat" => parse(name, bytes, Request::Heartbeat),
        "SendMessage" => parse(name, bytes, Request::SendMessage),
        "QueryAssignment" => parse(name, bytes, Request::QueryAssignment),
        "ReceiveMessage" => parse(name, bytes, Request::ReceiveMessage),
        "AckMessage" => parse(name, bytes, Request::AckMessage),
        "ForwardMessageToDeadLetterQueue" => {
            parse(name, bytes, Request::ForwardMessageToDeadLetterQueue)
        }
        "PullMessage" => parse(name, bytes, Request::PullMessage),
        "UpdateOffset" => parse(name, bytes, Request::UpdateOffset),
        "GetOffset" => parse(name, bytes, Request::GetOffset),
        "QueryOffset" => parse(name, bytes, Request::QueryOffset),
        "EndTransaction" => parse(name, bytes, Request::EndTransaction),
        "Telemetry" => parse(name, bytes, Request::Telemetry),
        "NotifyClientTermination" => parse(name, bytes, Request::NotifyClientTermination),
        "ChangeInvisibleDuration" => parse(name, bytes, Request::ChangeInvisibleDuration),
        "RecallMessage" => parse(name, bytes, Request::RecallMessage),
        "SyncLiteSubscription" => parse(name, bytes, Request::SyncLiteSubscription),
        _ => Err(DecodeError::UnknownRpc(rpc.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_decodes_an_empty_request() {
        for rpc in RPCS {
            let req = decode_request(rpc, &[]).expect(rpc);
            assert_eq!(req.rpc(), rpc);
            assert!(req.encode_to_vec().is_empty(), "{rpc}");
        }
    }

    #[test]
    fn full_paths_are_accepted() {
        let req = decode_request("/apache.rocketmq.v2.MessagingService/Heartbeat", &[]);
        assert_eq!(req.map(|r| r.rpc()), Ok("Heartbeat"));
    }

    #[test]
    fn unknown_rpcs_and_bad_bytes_are_errors() {
        assert!(matches!(
            decode_request("Nope", &[]),
            Err(DecodeError::UnknownRpc(_))
        ));
        assert!(matches!(
            decode_request("/other.Service/Heartbeat", &[]),
            Err(DecodeError::UnknownRpc(_))
        ));
        // Field 1, length-delimited, claiming 5 bytes that are not there.
        assert!(matches!(
            decode_request("SendMessage", &[0x0a, 0x05, 0x01]),
            Err(DecodeError::Malformed {
                rpc: "SendMessage",
                ..
            })
        ));
        // A varint that never ends.
        assert!(decode_request("Telemetry", &[0x08, 0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn a_decoded_request_re_encodes_stably() {
        let msg = v2::HeartbeatRequest {
            group: Some(v2::Resource {
                resource_namespace: String::new(),
                name: "g".into(),
            }),
            client_type: v2::ClientType::SimpleConsumer as i32,
        };
        let bytes = msg.encode_to_vec();
        let req = decode_request("Heartbeat", &bytes).expect("decodes");
        assert_eq!(req, Request::Heartbeat(msg));
        assert_eq!(req.encode_to_vec(), bytes);
    }
}
