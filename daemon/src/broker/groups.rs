//! Consumer groups: create, list, reset an offset.

use super::Broker;
use sundial_engine::{Error, GroupInfo, GroupStart};

impl Broker {
    /// Creates a consumer group of a topic (or updates its filter).
    pub async fn create_group(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        start: GroupStart,
        filter: Option<String>,
    ) -> Result<GroupInfo, Error> {
        let create =
            self.blocking(move |e| e.create_group(&topic, &group, start, filter.as_deref()));
        self.measured(op, create).await
    }

    /// Every group, or one topic's.
    pub async fn list_groups(
        &self,
        op: &'static str,
        topic: Option<String>,
    ) -> Result<Vec<GroupInfo>, Error> {
        self.measured(op, self.blocking(move |e| e.list_groups(topic.as_deref())))
            .await
    }

    /// Delivers again every retained message that became Ready at or after `to_ms`;
    /// returns the group's new ready-log offset.
    pub async fn reset_offset(
        &self,
        op: &'static str,
        topic: String,
        group: String,
        to_ms: u64,
    ) -> Result<u64, Error> {
        let reset = self.blocking(move |e| e.reset_offset(&topic, &group, to_ms));
        self.measured(op, reset).await
    }
}
