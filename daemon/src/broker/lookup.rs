//! Looking messages up: one by id, ids by key.

use super::Broker;
use sundial_engine::{Error, MessageId, MessageView};

impl Broker {
    /// One message's state, per group; `id` is its 32 hex characters.
    pub async fn show_message(&self, op: &'static str, id: String) -> Result<MessageView, Error> {
        self.measured(op, async {
            let id: MessageId = id.parse()?;
            self.blocking(move |e| e.show(id)).await
        })
        .await
    }

    /// Ids of retained messages of a topic with a lookup key.
    pub async fn find_messages(
        &self,
        op: &'static str,
        topic: String,
        key: String,
    ) -> Result<Vec<MessageId>, Error> {
        self.measured(op, self.blocking(move |e| e.find_by_key(&topic, &key)))
            .await
    }
}
