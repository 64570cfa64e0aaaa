//! Topics: create, delete, list, show.

use super::Broker;
use sundial_engine::{Error, TopicInfo, TopicKind, TopicStats};

impl Broker {
    /// Creates a topic with a message type.
    pub async fn create_topic(
        &self,
        op: &'static str,
        topic: String,
        kind: TopicKind,
    ) -> Result<TopicInfo, Error> {
        self.measured(op, self.blocking(move |e| e.create_topic(&topic, kind)))
            .await
    }

    /// Deletes a topic, its groups and its messages.
    pub async fn delete_topic(&self, op: &'static str, topic: String) -> Result<(), Error> {
        self.measured(op, self.blocking(move |e| e.delete_topic(&topic)))
            .await
    }

    /// Every topic.
    pub async fn list_topics(&self, op: &'static str) -> Result<Vec<TopicInfo>, Error> {
        self.measured(op, self.blocking(|e| Ok(e.list_topics())))
            .await
    }

    /// One topic's counters and its groups'.
    pub async fn show_topic(&self, op: &'static str, topic: String) -> Result<TopicStats, Error> {
        self.measured(op, async {
            let t = topic.clone();
            let c = self
                .blocking(move |e| e.topic(&t).map(|_| e.counters()))
                .await?;
            c.topics
                .into_iter()
                .find(|t| t.name == topic)
                .ok_or(Error::TopicNotFound(topic))
        })
        .await
    }

    /// One topic's name, message type and creation time (cheaper than its counters).
    pub async fn topic_info(&self, op: &'static str, topic: String) -> Result<TopicInfo, Error> {
        self.measured(op, self.blocking(move |e| e.topic(&topic)))
            .await
    }
}
