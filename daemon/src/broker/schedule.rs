//! Messages still waiting for their time: recall, reschedule.

use super::Broker;
use sundial_engine::{Error, SendReceipt};

impl Broker {
    /// Cancels a message that is still Timing.
    pub async fn recall(&self, op: &'static str, handle: String) -> Result<(), Error> {
        self.measured(op, self.blocking(move |e| e.recall(&handle)))
            .await
    }

    /// Moves a Timing message to a new delivery time; returns its new receipt.
    pub async fn reschedule(
        &self,
        op: &'static str,
        handle: String,
        deliver_at_ms: i64,
    ) -> Result<SendReceipt, Error> {
        let reschedule = self.blocking(move |e| e.reschedule(&handle, deliver_at_ms));
        self.measured(op, reschedule).await
    }
}
