//! Sends: one message, or a batch in one commit.

use super::{check_batch, finished, Broker};
use crate::metrics;
use std::time::{Duration, Instant};
use sundial_engine::{Error, NewMessage, SendReceipt};

impl Broker {
    /// Sends one message; answers once it is durable.
    pub async fn send(&self, op: &'static str, m: NewMessage) -> Result<SendReceipt, Error> {
        self.send_each(op, vec![m])
            .await
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("no result for the message".into())))
    }

    /// Sends messages that were sent one per request, in one commit: each is its own
    /// request (counted under `op`) and succeeds or fails on its own, in order. The
    /// hottest path of all, so it is written flat (no wrapping futures): the future a
    /// front end keeps per request stays a few hundred bytes.
    pub async fn send_each(
        &self,
        op: &'static str,
        ms: Vec<NewMessage>,
    ) -> Vec<Result<SendReceipt, Error>> {
        let started = Instant::now();
        let n = ms.len();
        let r = match self.job_slots.acquire().await {
            Err(_) => Err(Error::ShuttingDown),
            Ok(_slot) => self.engine.submit_send_batch(ms).await,
        };
        let each = match r {
            Ok(v) if v.len() == n => v,
            Ok(v) => {
                let e = Error::Internal(format!("{} results for {n} messages", v.len()));
                vec![Err(e); n]
            }
            Err(e) => vec![Err(e); n],
        };
        each.into_iter().map(|r| finished(op, started, r)).collect()
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
    /// Sends messages, each named by its client with a client id, at most once per id
    /// within `window`, in one commit: a send retried with the same id (the RocketMQ clients retry at
    /// once, with the id they generated) is answered with the first one's receipt and
    /// not stored again, also after a restart. The id is recorded in
    /// [`CLIENT_ID_PROPERTY`] and indexed as a lookup key, so `message find --key` finds
    /// the message by it. One outcome per message, in order; a client id given twice in
    /// one batch is stored once and both get its receipt.
    pub async fn send_once_batch(
        &self,
        op: &'static str,
        ms: Vec<(NewMessage, String)>,
        window: Duration,
    ) -> Result<Vec<Result<SendReceipt, Error>>, Error> {
        self.measured(op, async {
            check_batch(ms.len())?;
            let topics: Vec<String> = ms.iter().map(|(m, _)| m.topic.clone()).collect();
            let msgs = ms
                .into_iter()
                .map(|(mut m, id)| {
                    m.properties
                        .insert(CLIENT_ID_PROPERTY.to_string(), id.clone());
                    if !m.keys.contains(&id) {
                        m.keys.push(id);
                    }
                    m
                })
                .collect();
            let sent = self
                .job(|e| e.submit_send_once(msgs, CLIENT_ID_PROPERTY, window))
                .await?;
            Ok(sent
                .into_iter()
                .zip(topics)
                .map(|(r, topic)| {
                    r.map(|(receipt, duplicate)| {
                        if duplicate {
                            metrics::deduplicated(&topic);
                        }
                        receipt
                    })
                })
                .collect())
        })
        .await
    }
}
