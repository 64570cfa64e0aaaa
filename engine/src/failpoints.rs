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
//! | `writer::nospace` | every round's write | the write fails as on a full file system: the round's callers get `StorageFull`, nothing of it is stored, and the engine goes on |
//! | `inflight::lease_of_one` | each run of one offset a receive hands out | the run is written as a lease of one offset, as builds before 2026-12-06 wrote it, so a test can make a store that holds such leases |
//!
//! Any of them can also be set to `panic`: the thread that reaches it panics, which
//! must poison the engine.

/// WAL sync.
pub const WAL_SYNC: &str = "writer::sync";
/// Timer → Ready move.
pub const PUMP_MOVE: &str = "pump::move";
/// Ack write.
pub const ACK_WRITE: &str = "consume::ack";
/// Retention compaction filter.
pub const COMPACTION_FILTER: &str = "retention::filter";
/// A round's write, failing as on a full file system.
pub const WRITE_NO_SPACE: &str = "writer::nospace";
/// A receive's run of one offset written as a lease (the older stores' form).
pub const LEASE_OF_ONE: &str = "inflight::lease_of_one";
/// Every failpoint name, for the daemon's control endpoint.
pub const ALL: [&str; 6] = [
    WAL_SYNC,
    PUMP_MOVE,
    ACK_WRITE,
    COMPACTION_FILTER,
    WRITE_NO_SPACE,
    LEASE_OF_ONE,
];

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
    crate::Error::storage(
        crate::error::StorageErrorKind::Io,
        format!("injected failure at failpoint {name}"),
    )
}

/// The error a no-space failpoint produces: what RocksDB reports for a full disk.
pub(crate) fn no_space(name: &str) -> crate::Error {
    crate::Error::storage(
        crate::error::StorageErrorKind::NoSpace,
        format!("IO error: No space left on device (injected at failpoint {name})"),
    )
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
