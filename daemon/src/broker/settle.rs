//! Settling deliveries: ack, nack, change the invisible duration.

use super::{check_batch, Broker};
use crate::metrics;
use std::time::Duration;
use sundial_engine::{Error, ReceiptHandle};

impl Broker {
    /// Acknowledges deliveries of a group; one outcome per receipt, in order.
    pub async fn ack(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        receipts: Vec<ReceiptHandle>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.measured(op, async {
            check_batch(receipts.len())?;
            self.job(|e| e.submit_ack_batch(&topic, &group, receipts))
                .await
        })
        .await
    }

    /// Gives deliveries back for redelivery after the group's retry backoff; one outcome
    /// per receipt, in order.
    pub async fn nack(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        receipts: Vec<ReceiptHandle>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        self.measured(op, async {
            check_batch(receipts.len())?;
            let v = self
                .job(|e| e.submit_nack_batch(&topic, &group, receipts))
                .await?;
            // Only nacks that took effect: a refused one may name no real group,
            // and a label from it would be a series a client could multiply.
            let n = v.iter().filter(|r| r.is_ok()).count() as u64;
            if n > 0 {
                metrics::nacked(&topic, &group, n);
            }
            Ok(v)
        })
        .await
    }

    /// Keeps a delivery invisible for `invisible` from now; returns its new receipt.
    pub async fn change_invisible(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        receipt: ReceiptHandle,
        invisible: Duration,
    ) -> Result<ReceiptHandle, Error> {
        let change = self
            .blocking(move |e| e.change_invisible_duration(&topic, &group, &receipt, invisible));
        self.measured(op, change).await
    }

    /// Moves a delivery to the group's dead-letter topic now.
    pub async fn dead_letter(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        receipt: ReceiptHandle,
    ) -> Result<(), Error> {
        let dlq = self.blocking(move |e| e.dead_letter(&topic, &group, &receipt));
        self.measured(op, dlq).await
    }
}
