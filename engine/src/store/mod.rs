//! The bottom layer: how sundial's data is laid out in RocksDB. Key encodings
//! ([`keys`]), value encodings ([`records`]), column families and their options
//! ([`families`]), the retention filters ([`filters`]), and the two ways to read:
//! the committed store ([`Store`]) and a writer round whose reads see its own writes
//! ([`Round`]).

pub(crate) mod families;
pub(crate) mod filters;
pub mod keys;
pub(crate) mod records;
mod round;

pub(crate) use round::{Round, RowBuf, Spare};

use crate::error::{Error, Result};
use families::Family;
use rocksdb::{ColumnFamily, ReadOptions, DB};

/// One stored key and its value.
pub(crate) type Row = (Box<[u8]>, Box<[u8]>);
/// Keys and values read by a scan.
pub(crate) type Rows = Vec<Row>;

/// Reads of the store. [`Store`] reads what is committed; a writer's [`Round`] also
/// sees the writes it has gathered so far, so no caller has to flush before reading.
pub(crate) trait Read {
    /// The value of `k`, if any.
    fn get(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>>;
    /// The length of `k`'s value, without copying it where that can be avoided.
    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>>;
    /// Keys and values in `[lower, upper)` in order, at most `limit`.
    fn scan(&self, f: Family, lower: &[u8], upper: &[u8], limit: usize) -> Result<Rows>;
    /// The last key and value in `[lower, upper)`, if any.
    fn last_in(&self, f: Family, lower: &[u8], upper: &[u8]) -> Result<Option<Row>>;
}

/// The committed store: RocksDB and its column families.
pub(crate) struct Store {
    /// The database (only this module and the writer's commit touch it directly).
    pub db: DB,
}

/// Read options bounded to `[lower, upper)`, so the iterator never steps over
/// tombstones outside them.
fn bounded(lower: &[u8], upper: &[u8]) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_iterate_lower_bound(lower.to_vec());
    ro.set_iterate_upper_bound(upper.to_vec());
    ro
}

impl Store {
    /// A column family's handle.
    pub fn cf(&self, f: Family) -> Result<&ColumnFamily> {
        self.db
            .cf_handle(f.name())
            .ok_or_else(|| Error::Internal(format!("column family {} is missing", f.name())))
    }

    /// Every family's handle, in [`families::ALL`] order.
    pub fn handles(&self) -> Result<[&ColumnFamily; 7]> {
        let mut out = Vec::with_capacity(7);
        for f in families::ALL {
            out.push(self.cf(f)?);
        }
        out.try_into()
            .map_err(|_| Error::Internal("column family count".into()))
    }

    /// Visits keys and values in `[lower, upper)` in order until `f` returns false.
    pub fn visit(
        &self,
        cf: Family,
        lower: &[u8],
        upper: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<bool>,
    ) -> Result<()> {
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(cf)?, bounded(lower, upper));
        it.seek_to_first();
        while it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                if !f(k, v)? {
                    return Ok(());
                }
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }
}

impl Read for Store {
    fn get(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(f)?, k)?)
    }

    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>> {
        Ok(self.db.get_pinned_cf(self.cf(f)?, k)?.map(|v| v.len()))
    }

    fn scan(&self, f: Family, lower: &[u8], upper: &[u8], limit: usize) -> Result<Rows> {
        let mut out = Vec::new();
        if limit > 0 {
            self.visit(f, lower, upper, |k, v| {
                out.push((Box::from(k), Box::from(v)));
                Ok(out.len() < limit)
            })?;
        }
        Ok(out)
    }

    fn last_in(&self, f: Family, lower: &[u8], upper: &[u8]) -> Result<Option<Row>> {
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.cf(f)?, bounded(lower, upper));
        it.seek_to_last();
        let last = match (it.valid(), it.key(), it.value()) {
            (true, Some(k), Some(v)) => Some((Box::from(k), Box::from(v))),
            _ => None,
        };
        it.status()?;
        Ok(last)
    }
}
