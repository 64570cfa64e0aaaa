//! Failpoints for the reliability tests: named places where a test can make the engine
//! fail on purpose (the `failpoints` feature, with the `fail` crate). Without the
//! feature every check is a constant `false` and compiles away.
//!
//! | name | where | what failing means |
//! | --- | --- | --- |
//! | `writer::sync` | every WAL sync (on the syncer thread) | the round's callers get errors and the engine refuses writes until reopened |
//! | `pump::move` | each pump job, before it moves anything | nothing moves this time; the pump tries again 200 ms later |
//! | `consume::ack` | each ack call, before it writes | the call is answered with an error; the deliveries stay inflight |
//! | `retention::filter` | every compaction filter decision | the filter keeps the entry (it never deletes when unsure) |

/// WAL sync.
pub const WAL_SYNC: &str = "writer::sync";
/// Timer → Ready move.
pub const PUMP_MOVE: &str = "pump::move";
/// Ack write.
pub const ACK_WRITE: &str = "consume::ack";
/// Retention compaction filter.
pub const COMPACTION_FILTER: &str = "retention::filter";
/// Every failpoint name, for the daemon's control endpoint.
pub const ALL: [&str; 4] = [WAL_SYNC, PUMP_MOVE, ACK_WRITE, COMPACTION_FILTER];

/// Whether the failpoint `name` fires now.
#[inline]
pub(crate) fn fires(name: &str) -> bool {
    #[cfg(feature = "failpoints")]
    {
        fail::eval(name, |_| ()).is_some()
    }
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        false
    }
}

/// The error a failpoint produces.
pub(crate) fn injected(name: &str) -> crate::Error {
    crate::Error::Storage(format!("injected failure at failpoint {name}"))
}

/// Sets the actions of a failpoint (`fail` syntax, e.g. `return`, `50%return`,
/// `3*off->return`); `off` disables it.
#[cfg(feature = "failpoints")]
pub fn configure(name: &str, actions: &str) -> Result<(), String> {
    if !ALL.contains(&name) {
        return Err(format!("no failpoint {name:?}; there are {ALL:?}"));
    }
    fail::cfg(name, actions)
}
