//! Sends: one message, or a batch in one commit.

use super::{check_batch, Broker};
use crate::metrics;
use std::time::Duration;
use sundial_engine::{Engine, Error, NewMessage, SendReceipt};

impl Broker {
    /// Sends one message; answers once it is durable.
    pub async fn send(&self, op: &'static str, m: NewMessage) -> Result<SendReceipt, Error> {
        self.measured(op, async {
            self.job(|e| e.submit_send_batch(vec![m]))
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Internal("no result for the message".into()))?
        })
        .await
    }

    /// Sends many messages in one commit; each succeeds or fails on its own, in order.
    pub async fn send_batch(
        &self,
        op: &'static str,
        ms: Vec<NewMessage>,
    ) -> Result<Vec<Result<SendReceipt, Error>>, Error> {
        self.measured(op, async {
            check_batch(ms.len())?;
            self.job(|e| e.submit_send_batch(ms)).await
        })
        .await
    }
}

/// The property that records the id a client gave a message (RocketMQ's name for it).
pub const CLIENT_ID_PROPERTY: &str = "UNIQ_KEY";

impl Broker {
    /// Sends a message that its client names with `client_id`, at most once per id
    /// within `window`: a send retried with the same id (the RocketMQ clients retry at
    /// once, with the id they generated) is answered with the first one's receipt and
    /// not stored again, also after a restart. The id is recorded in
    /// [`CLIENT_ID_PROPERTY`] and indexed as a lookup key, so `message find --key` finds
    /// the message by it.
    pub async fn send_once(
        &self,
        op: &'static str,
        mut m: NewMessage,
        client_id: String,
        window: Duration,
    ) -> Result<SendReceipt, Error> {
        self.measured(op, async {
            // Concurrent sends of one id are serialised, so the second sees the first.
            let _turn = self.sending.hold(&client_id).await;
            let (topic, id) = (m.topic.clone(), client_id.clone());
            let first = self
                .blocking(move |e| sent_within(e, &topic, &id, window))
                .await?;
            if let Some(first) = first {
                metrics::deduplicated(&m.topic);
                return Ok(first);
            }
            m.properties
                .insert(CLIENT_ID_PROPERTY.to_string(), client_id.clone());
            if !m.keys.contains(&client_id) {
                m.keys.push(client_id);
            }
            self.job(|e| e.submit_send_batch(vec![m]))
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Internal("no result for the message".into()))?
        })
        .await
    }
}

/// The receipt of a retained message of `topic` that was sent with `client_id` less
/// than `window` ago.
fn sent_within(
    engine: &Engine,
    topic: &str,
    client_id: &str,
    window: Duration,
) -> Result<Option<SendReceipt>, Error> {
    let ids = match engine.find_by_key(topic, client_id) {
        Ok(ids) => ids,
        // The send itself reports the missing topic.
        Err(Error::TopicNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let now = engine.clock().now_ms();
    let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    // The newest first: a key reused by hand after the window names the latest.
    for id in ids.into_iter().rev() {
        let v = match engine.show(id) {
            Ok(v) => v,
            Err(Error::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let same = v.properties.get(CLIENT_ID_PROPERTY).map(String::as_str) == Some(client_id);
        if same && now.saturating_sub(v.born_ms) < window {
            return Ok(Some(SendReceipt {
                message_id: v.message_id,
                recall_handle: sundial_engine::send::recall_handle(v.deliver_at_ms, v.message_id),
                deliver_at_ms: v.deliver_at_ms,
                adjusted: v.adjusted,
            }));
        }
    }
    Ok(None)
}
