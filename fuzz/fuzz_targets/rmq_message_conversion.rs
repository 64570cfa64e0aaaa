//! Converts arbitrary bytes, decoded as the messages of a `SendMessage`, into what the
//! broker would store, as the gRPC front end does: no panic; every accepted message has
//! a usable id, a topic, no client-set reserved property and a delivery time only when
//! it is a delay message; and handing it back to a consumer shows the client its own id,
//! keys and user properties.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use sundial_rmq_proto::convert::{
    delivered, outgoing, Delivery, CLIENT_ID_PROPERTY, MAX_ID_LEN, RESERVED,
};
use sundial_rmq_proto::digest::ChecksumForm;
use sundial_rmq_proto::{decode_request, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(Request::SendMessage(req)) = decode_request("SendMessage", data) else {
        return;
    };
    for m in req.messages {
        let user: Vec<String> = m.user_properties.keys().cloned().collect();
        let Ok(o) = outgoing(m) else { continue };
        assert!(!o.message_id.is_empty() && o.message_id.len() <= MAX_ID_LEN);
        assert!(!o.topic.is_empty());
        assert!(user.iter().all(|k| !RESERVED.contains(&k.as_str())));
        let mut properties = o.properties.clone();
        properties.insert(CLIENT_ID_PROPERTY.into(), o.message_id.clone());
        let mut keys = o.keys.clone();
        keys.push(o.message_id.clone());
        let d = Delivery {
            broker_id: "0".repeat(32),
            topic: o.topic.clone(),
            tag: o.tag.clone(),
            keys,
            properties,
            body: o.body.clone(),
            deliver_at_ms: o.deliver_at_ms.map_or(0, |t| t.max(0) as u64),
            born_ms: 0,
            delivery_attempt: 1,
            receipt_handle: "r".into(),
        };
        let out = delivered(d, "", Duration::from_secs(30), ChecksumForm::PaddedHex);
        let sp = out.system_properties.expect("system properties");
        assert_eq!(sp.message_id, o.message_id);
        assert!(sp.keys.iter().all(|k| *k != o.message_id));
        for k in &user {
            assert!(out.user_properties.contains_key(k), "{k} lost");
        }
        assert!(out.user_properties.keys().all(|k| !RESERVED.contains(&k.as_str())));
        assert_eq!(out.body, o.body);
    }
});
