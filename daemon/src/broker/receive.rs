//! Receives, with the long poll: where a consumer waits for messages to become Ready.

use super::{Broker, MAX_WAIT};
use crate::metrics;
use std::time::Duration;
use sundial_engine::{Error, ReceiveRequest, ReceivedMessage};

impl Broker {
    /// Receives up to `req.max_messages` Ready messages; when there are none, waits up
    /// to `wait` for some, returning early (with what it has) when the daemon stops.
    pub async fn receive(
        &self,
        op: &'static str,
        req: ReceiveRequest,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        self.measured(op, async {
            if wait > MAX_WAIT {
                return Err(Error::BadRequest(format!(
                    "wait {} ms is over the {} ms limit",
                    wait.as_millis(),
                    MAX_WAIT.as_millis()
                )));
            }
            self.long_poll(req, wait).await
        })
        .await
    }

    /// Receives; when nothing is there, waits for the engine's Ready signal (a message
    /// became Ready or an invisible time ran out) until the wait is over or the daemon
    /// stops. No polling: each wake-up is a real change.
    async fn long_poll(
        &self,
        req: ReceiveRequest,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut stop = self.stopping();
        let mut rescans = 0;
        loop {
            // Subscribe before looking, so a change in between is not missed.
            let mut signal = self.engine.ready_signal();
            let got = self
                .job(|e| {
                    let (e, req) = (e.clone(), req.clone());
                    async move { e.receive_async(req).await }
                })
                .await?;
            if !got.is_empty() {
                let now = self.engine.clock().now_ms();
                metrics::delivered(
                    &req.topic,
                    &req.group,
                    got.len() as u64,
                    got.iter()
                        .filter(|m| m.delivery_attempt == 1)
                        .map(|m| now.saturating_sub(m.deliver_at_ms)),
                );
                return Ok(got);
            }
            if *stop.borrow() {
                return Ok(Vec::new());
            }
            if rescans < 64 && self.engine.unscanned(&req.topic, &req.group) > 0 {
                rescans += 1;
                // The receive stopped at its skip budget in a run of entries this call's
                // filter does not want; go on scanning rather than wait for a signal.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                r = signal.changed() => if r.is_err() {
                    return Err(Error::ShuttingDown);
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(Vec::new()),
                _ = stop.changed() => return Ok(Vec::new()),
            }
        }
    }
}
