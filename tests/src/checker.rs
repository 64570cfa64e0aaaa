//! A history of what clients were told, and a checker in the manner of a total-queue
//! checker: every send the daemon acknowledged must be received by every group, nothing
//! may be received that was never sent, nothing before its delivery time, and nothing a
//! group acknowledged may be handed to that group again.
//!
//! The history is a text file, one event per line, appended and synced (`fdatasync`)
//! right after the daemon answered, so it survives whatever happens to the daemon:
//!
//! ```text
//! I token                                         a send is about to be tried
//! S token message_id deliver_at_ms                the daemon acknowledged it
//! R group token message_id deliver_at_ms attempt request_seq received_ms
//! A group message_id seq                          the daemon confirmed an ack
//! K                                               the daemon was killed
//! ```
//!
//! `seq` numbers come from one counter: a receive whose `request_seq` is above an ack's
//! `seq` was asked for after that ack was confirmed.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One line of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A send is about to be tried with this body.
    Attempt {
        /// The message body: unique per attempt.
        token: String,
    },
    /// The daemon acknowledged a send.
    Sent {
        /// Body.
        token: String,
        /// Assigned id.
        id: String,
        /// Effective delivery time from the receipt.
        deliver_at_ms: u64,
    },
    /// A consumer received a message.
    Received {
        /// Consumer group.
        group: String,
        /// Body.
        token: String,
        /// Id.
        id: String,
        /// Delivery time the daemon reported.
        deliver_at_ms: u64,
        /// Delivery attempt.
        attempt: u32,
        /// Counter value taken before the receive request was sent.
        request_seq: u64,
        /// Wall clock when the answer arrived (Unix ms).
        received_ms: u64,
    },
    /// The daemon confirmed an ack.
    Acked {
        /// Consumer group.
        group: String,
        /// Id.
        id: String,
        /// Counter value taken after the confirmation arrived.
        seq: u64,
    },
    /// The daemon was killed.
    Kill,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Attempt { token } => write!(f, "I {token}"),
            Event::Sent {
                token,
                id,
                deliver_at_ms,
            } => write!(f, "S {token} {id} {deliver_at_ms}"),
            Event::Received {
                group,
                token,
                id,
                deliver_at_ms,
                attempt,
                request_seq,
                received_ms,
            } => write!(
                f,
                "R {group} {token} {id} {deliver_at_ms} {attempt} {request_seq} {received_ms}"
            ),
            Event::Acked { group, id, seq } => write!(f, "A {group} {id} {seq}"),
            Event::Kill => write!(f, "K"),
        }
    }
}

impl Event {
    /// Parses one line; `None` for anything else (a torn last line, say).
    pub fn parse(line: &str) -> Option<Event> {
        let w: Vec<&str> = line.split(' ').collect();
        let s = |i: usize| w.get(i).map(|x| x.to_string());
        let n = |i: usize| w.get(i).and_then(|x| x.parse::<u64>().ok());
        Some(match (w.first()?, w.len()) {
            (&"I", 2) => Event::Attempt { token: s(1)? },
            (&"S", 4) => Event::Sent {
                token: s(1)?,
                id: s(2)?,
                deliver_at_ms: n(3)?,
            },
            (&"R", 8) => Event::Received {
                group: s(1)?,
                token: s(2)?,
                id: s(3)?,
                deliver_at_ms: n(4)?,
                attempt: u32::try_from(n(5)?).ok()?,
                request_seq: n(6)?,
                received_ms: n(7)?,
            },
            (&"A", 4) => Event::Acked {
                group: s(1)?,
                id: s(2)?,
                seq: n(3)?,
            },
            (&"K", 1) => Event::Kill,
            _ => return None,
        })
    }
}

/// An append-only history file shared by every producer and consumer of a run, with
/// the live counts a drain needs.
pub struct History {
    file: Mutex<std::fs::File>,
    seq: AtomicU64,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    sent: HashSet<String>,
    /// Per group: ids received, and how many of them are acknowledged sends, kept as
    /// events come (in either order) so `missing` does not rescan every send.
    received: HashMap<String, (HashSet<String>, usize)>,
    max_deliver_at: u64,
}

impl History {
    /// Creates (truncates) the file at `path`.
    pub fn create(path: &Path) -> std::io::Result<History> {
        Ok(History {
            file: Mutex::new(std::fs::File::create(path)?),
            seq: AtomicU64::new(1),
            live: Mutex::default(),
        })
    }

    /// The next value of the ordering counter.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Appends events and syncs the file before returning.
    pub fn log(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        {
            let mut live = self.live.lock().unwrap();
            for e in events {
                match e {
                    Event::Sent {
                        id, deliver_at_ms, ..
                    } => {
                        if live.sent.insert(id.clone()) {
                            for (ids, sent) in live.received.values_mut() {
                                *sent += usize::from(ids.contains(id));
                            }
                        }
                        live.max_deliver_at = live.max_deliver_at.max(*deliver_at_ms);
                    }
                    Event::Received { group, id, .. } => {
                        let is_sent = live.sent.contains(id);
                        let (ids, sent) = live.received.entry(group.clone()).or_default();
                        if ids.insert(id.clone()) && is_sent {
                            *sent += 1;
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut text = String::new();
        for e in events {
            text.push_str(&e.to_string());
            text.push('\n');
        }
        let mut f = self.file.lock().unwrap();
        f.write_all(text.as_bytes()).expect("write the history");
        f.sync_data().expect("sync the history");
    }

    /// How many acknowledged sends `group` has not received yet.
    pub fn missing(&self, group: &str) -> usize {
        let live = self.live.lock().unwrap();
        let got = live.received.get(group).map_or(0, |(_, sent)| *sent);
        live.sent.len() - got
    }

    /// Acknowledged sends so far.
    pub fn sent(&self) -> usize {
        self.live.lock().unwrap().sent.len()
    }

    /// The latest effective delivery time among acknowledged sends.
    pub fn max_deliver_at(&self) -> u64 {
        self.live.lock().unwrap().max_deliver_at
    }
}

/// Reads a history file.
pub fn read(path: &Path) -> std::io::Result<Vec<Event>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().filter_map(Event::parse).collect())
}

/// What the checker found.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Sends tried.
    pub attempted: usize,
    /// Sends the daemon acknowledged.
    pub sent: usize,
    /// Deliveries received, over all groups.
    pub deliveries: usize,
    /// Acks confirmed.
    pub acks: usize,
    /// Kills recorded.
    pub kills: usize,
    /// (group, id) acknowledged as sent and never received by that group.
    pub lost: Vec<(String, String)>,
    /// Received bodies never tried, or whose id or time disagree with the receipt.
    pub unexpected: Vec<String>,
    /// (group, id, ms early).
    pub early: Vec<(String, String, u64)>,
    /// (group, id) received by a receive asked for after that group's ack was confirmed.
    pub acked_then_delivered: Vec<(String, String)>,
    /// Deliveries beyond the first per group and message (allowed: at-least-once).
    pub duplicates: usize,
    /// Sends without a receipt (the daemon died first) that were delivered anyway.
    pub recovered: usize,
}

impl Verdict {
    /// No loss, nothing unexpected, nothing early, nothing acked delivered again.
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.unexpected.is_empty()
            && self.early.is_empty()
            && self.acked_then_delivered.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kills {}, attempted {}, sent {}, deliveries {}, acks {}, lost {}, unexpected {}, \
             early {}, acked-then-delivered {}, duplicates {}, recovered {}",
            self.kills,
            self.attempted,
            self.sent,
            self.deliveries,
            self.acks,
            self.lost.len(),
            self.unexpected.len(),
            self.early.len(),
            self.acked_then_delivered.len(),
            self.duplicates,
            self.recovered
        )?;
        let some = |v: &dyn fmt::Debug| format!("{v:?}").chars().take(300).collect::<String>();
        if !self.lost.is_empty() {
            write!(
                f,
                "\n  lost e.g. {}",
                some(&&self.lost[..self.lost.len().min(5)])
            )?;
        }
        if !self.unexpected.is_empty() {
            write!(f, "\n  unexpected e.g. {}", some(&self.unexpected.first()))?;
        }
        if !self.early.is_empty() {
            write!(f, "\n  early e.g. {}", some(&self.early.first()))?;
        }
        if !self.acked_then_delivered.is_empty() {
            write!(
                f,
                "\n  acked then delivered e.g. {}",
                some(&self.acked_then_delivered.first())
            )?;
        }
        Ok(())
    }
}

/// Checks a history; `groups` must each have received every acknowledged send.
pub fn check(events: &[Event], groups: &[&str]) -> Verdict {
    let mut v = Verdict::default();
    let mut attempted = HashSet::new();
    let mut sent: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut acked_at: HashMap<(&str, &str), u64> = HashMap::new();
    for e in events {
        match e {
            Event::Attempt { token } => {
                attempted.insert(token.as_str());
            }
            Event::Sent {
                token,
                id,
                deliver_at_ms,
            } => {
                sent.insert(id, (token, *deliver_at_ms));
            }
            Event::Acked { group, id, seq } => {
                v.acks += 1;
                let at = acked_at.entry((group, id)).or_insert(*seq);
                *at = (*at).min(*seq);
            }
            Event::Kill => v.kills += 1,
            Event::Received { .. } => {}
        }
    }
    v.attempted = attempted.len();
    v.sent = sent.len();
    let mut seen: HashMap<(&str, &str), usize> = HashMap::new();
    let mut recovered = HashSet::new();
    for e in events {
        let Event::Received {
            group,
            token,
            id,
            deliver_at_ms,
            request_seq,
            received_ms,
            ..
        } = e
        else {
            continue;
        };
        v.deliveries += 1;
        *seen.entry((group, id)).or_default() += 1;
        match sent.get(id.as_str()) {
            Some((t, at)) if *t != token || *at != *deliver_at_ms => v.unexpected.push(format!(
                "{group} got {id} as {token} due {deliver_at_ms}; its receipt says {t} due {at}"
            )),
            Some(_) => {}
            None if attempted.contains(token.as_str()) => {
                recovered.insert(id.as_str());
            }
            None => v
                .unexpected
                .push(format!("{group} got {id} ({token}), never sent")),
        }
        if received_ms < deliver_at_ms {
            v.early
                .push((group.clone(), id.clone(), deliver_at_ms - received_ms));
        }
        if acked_at
            .get(&(group.as_str(), id.as_str()))
            .is_some_and(|a| request_seq > a)
        {
            v.acked_then_delivered.push((group.clone(), id.clone()));
        }
    }
    v.recovered = recovered.len();
    v.duplicates = seen.values().map(|n| n - 1).sum();
    for g in groups {
        for id in sent.keys() {
            if !seen.contains_key(&(*g, *id)) {
                v.lost.push((g.to_string(), id.to_string()));
            }
        }
    }
    v.lost.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(token: &str, id: &str, at: u64) -> Event {
        Event::Sent {
            token: token.into(),
            id: id.into(),
            deliver_at_ms: at,
        }
    }

    fn recv(group: &str, token: &str, id: &str, at: u64, seq: u64, ms: u64) -> Event {
        Event::Received {
            group: group.into(),
            token: token.into(),
            id: id.into(),
            deliver_at_ms: at,
            attempt: 1,
            request_seq: seq,
            received_ms: ms,
        }
    }

    fn attempt(token: &str) -> Event {
        Event::Attempt {
            token: token.into(),
        }
    }

    fn acked(group: &str, id: &str, seq: u64) -> Event {
        Event::Acked {
            group: group.into(),
            id: id.into(),
            seq,
        }
    }

    #[test]
    fn every_event_survives_its_text_form() {
        let events = vec![
            attempt("p0-1"),
            sent("p0-1", "ab", 12),
            recv("g", "p0-1", "ab", 12, 3, 15),
            acked("g", "ab", 4),
            Event::Kill,
        ];
        for e in &events {
            assert_eq!(Event::parse(&e.to_string()).as_ref(), Some(e));
        }
        assert_eq!(Event::parse("S p0-1 ab"), None, "a torn line is skipped");
    }

    #[test]
    fn a_clean_history_passes_and_counts_duplicates() {
        let h = vec![
            attempt("a"),
            sent("a", "1", 100),
            attempt("b"),
            sent("b", "2", 100),
            recv("g", "a", "1", 100, 1, 100),
            recv("g", "b", "2", 100, 1, 150),
            recv("g", "b", "2", 100, 2, 1_200),
            acked("g", "2", 3),
            acked("g", "1", 4),
        ];
        let v = check(&h, &["g"]);
        assert!(v.passed(), "{v}");
        assert_eq!((v.sent, v.deliveries, v.duplicates, v.acks), (2, 3, 1, 2));
    }

    #[test]
    fn each_violation_is_found() {
        // Lost in one group of two.
        let h = vec![
            attempt("a"),
            sent("a", "1", 100),
            recv("g", "a", "1", 100, 1, 100),
        ];
        let v = check(&h, &["g", "h"]);
        assert_eq!(v.lost, vec![("h".to_string(), "1".to_string())]);
        assert!(!v.passed());

        // Never sent.
        let v = check(&[recv("g", "x", "9", 100, 1, 100)], &["g"]);
        assert_eq!(v.unexpected.len(), 1, "{v}");
        // Sent, but delivered with another body or another time.
        let h = vec![
            attempt("a"),
            sent("a", "1", 100),
            recv("g", "b", "1", 100, 1, 100),
            recv("g", "a", "1", 90, 1, 100),
        ];
        assert_eq!(check(&h, &["g"]).unexpected.len(), 2);

        // Early by 1 ms.
        let h = vec![
            attempt("a"),
            sent("a", "1", 100),
            recv("g", "a", "1", 100, 1, 99),
        ];
        let v = check(&h, &["g"]);
        assert_eq!(v.early, vec![("g".into(), "1".into(), 1)]);

        // Acked, then handed out again to a receive asked for after the ack; a receive
        // asked for before the ack is only a duplicate.
        let h = vec![
            attempt("a"),
            sent("a", "1", 100),
            recv("g", "a", "1", 100, 1, 100),
            recv("g", "a", "1", 100, 2, 100),
            acked("g", "1", 3),
            recv("g", "a", "1", 100, 4, 200),
            recv("h", "a", "1", 100, 5, 200),
        ];
        let v = check(&h, &["g", "h"]);
        assert_eq!(v.acked_then_delivered, vec![("g".into(), "1".into())]);
        assert_eq!(v.duplicates, 2);
    }

    #[test]
    fn missing_counts_acknowledged_sends_a_group_has_not_received_in_either_order() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::create(&dir.path().join("h")).unwrap();
        h.log(&[sent("a", "1", 5), sent("b", "2", 9)]);
        assert_eq!((h.missing("g"), h.sent(), h.max_deliver_at()), (2, 2, 9));
        // Received before its receipt was logged, and a recovered send never receipted.
        h.log(&[recv("g", "c", "3", 5, 1, 5), recv("g", "a", "1", 5, 1, 5)]);
        h.log(&[recv("g", "a", "1", 5, 2, 6)]);
        assert_eq!(h.missing("g"), 1);
        h.log(&[sent("c", "3", 5)]);
        assert_eq!((h.missing("g"), h.missing("other")), (1, 3));
        h.log(&[recv("g", "b", "2", 9, 3, 9)]);
        assert_eq!(h.missing("g"), 0);
    }

    #[test]
    fn a_delivered_send_without_a_receipt_is_recovered_not_unexpected() {
        let h = vec![attempt("a"), recv("g", "a", "7", 100, 1, 100)];
        let v = check(&h, &["g"]);
        assert!(v.passed(), "{v}");
        assert_eq!(v.recovered, 1);
    }
}
