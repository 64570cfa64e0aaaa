//! Sends: one message, or a batch in one commit.

use super::{check_batch, Broker};
use sundial_engine::{Error, NewMessage, SendReceipt};

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
