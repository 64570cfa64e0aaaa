//! The bottom layer: how sundial's data is laid out in RocksDB. Key encodings
//! ([`keys`]), value encodings ([`records`]), column families and their options
//! ([`families`]), the retention filters ([`filters`]), and the two ways to read:
//! the committed store ([`Store`]) and a writer round whose reads see its own writes
//! ([`Round`]).

pub(crate) mod families;
pub(crate) mod filters;
pub mod keys;
mod meta;
pub(crate) mod records;
mod round;
pub(crate) mod upgrade;

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

/// Batches smaller than this are read by multi-get (see [`Store::read_sorted`]).
const STEP_MIN_KEYS: usize = 16;
/// Keys a forward step may pass over before the next key is sought instead.
const STEPS_BEFORE_SEEK: usize = 8;
/// [`Store::read_sorted`] stops stepping once more than one key in this many needed a
/// seek.
const SEEK_SHARE: usize = 4;

thread_local! {
    /// Read options for point reads, made once per thread: the binding's plain `get_cf`
    /// makes (allocates, fills in and frees) a set of RocksDB's read options per call.
    static POINT_READ: ReadOptions = ReadOptions::default();
    /// The same, for reads of bodies that are not worth keeping in the block cache.
    static UNCACHED_READ: ReadOptions = {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        ro
    };
}

/// `k` of family `cf`, copied out.
pub(crate) fn point_get(db: &DB, cf: &ColumnFamily, k: &[u8]) -> Result<Option<Vec<u8>>> {
    POINT_READ.with(|ro| Ok(db.get_pinned_cf_opt(cf, k, ro)?.map(|v| v.to_vec())))
}

/// The length of `k`'s value in family `cf`.
pub(crate) fn point_len(db: &DB, cf: &ColumnFamily, k: &[u8]) -> Result<Option<usize>> {
    POINT_READ.with(|ro| Ok(db.get_pinned_cf_opt(cf, k, ro)?.map(|v| v.len())))
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
    pub fn handles(&self) -> Result<[&ColumnFamily; families::COUNT]> {
        let mut out = Vec::with_capacity(families::COUNT);
        for f in families::ALL {
            out.push(self.cf(f)?);
        }
        out.try_into()
            .map_err(|_| Error::Internal("column family count".into()))
    }

    /// Visits the values of `keys`, which ascend (repeats allowed), in their order:
    /// `f(i, Some(value))` for each key present, `f(i, None)` for each absent one.
    /// Bodies are read once, so none of this fills the block cache.
    ///
    /// Keys that sit close together in the family, as a receive's messages usually do,
    /// are read by one iterator stepping forward: a step costs a fraction of a lookup,
    /// which searches every memtable and table from the top. When the keys turn out to
    /// lie far apart (more than one in [`SEEK_SHARE`] needing a seek), the rest go to
    /// one multi-get, so a scattered batch costs at most a little more than one.
    pub fn read_sorted<K: AsRef<[u8]>>(
        &self,
        fam: Family,
        keys: &[K],
        mut f: impl FnMut(usize, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return Ok(());
        };
        let cf = self.cf(fam)?;
        if keys.len() == 1 {
            // A receive of one message: a multi-get's set-up costs as much as the lookup.
            let v = UNCACHED_READ.with(|ro| self.db.get_pinned_cf_opt(cf, first, ro))?;
            return f(0, v.as_deref());
        }
        if keys.len() < STEP_MIN_KEYS {
            return self.multi_get_from(cf, keys, 0, f);
        }
        // The iterator owns its bounds, so it gets options of its own.
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        // The smallest key above the last one: nothing past it is read.
        let mut upper = last.as_ref().to_vec();
        upper.push(0);
        ro.set_iterate_upper_bound(upper);
        let mut it = self.db.raw_iterator_cf_opt(cf, ro);
        it.seek(first);
        let mut seeks = 1usize;
        for (i, k) in keys.iter().enumerate() {
            let k = k.as_ref();
            let mut steps = 0;
            while let Some(at) = it.key() {
                if at >= k {
                    break;
                }
                if steps == STEPS_BEFORE_SEEK {
                    it.seek(k);
                    seeks += 1;
                    break;
                }
                it.next();
                steps += 1;
            }
            match (it.key(), it.value()) {
                (Some(at), Some(v)) if at == k => f(i, Some(v))?,
                _ => {
                    it.status()?;
                    f(i, None)?;
                }
            }
            if i + 1 >= STEP_MIN_KEYS && seeks * SEEK_SHARE > i + 1 && i + 1 < keys.len() {
                return self.multi_get_from(cf, &keys[i + 1..], i + 1, f);
            }
        }
        it.status()?;
        Ok(())
    }

    /// `read_sorted`'s lookups by multi-get; `f` sees indexes from `base`.
    fn multi_get_from<K: AsRef<[u8]>>(
        &self,
        cf: &ColumnFamily,
        keys: &[K],
        base: usize,
        mut f: impl FnMut(usize, Option<&[u8]>) -> Result<()>,
    ) -> Result<()> {
        UNCACHED_READ.with(|ro| {
            let values = self.db.batched_multi_get_cf_opt(cf, keys, true, ro);
            for (i, v) in values.into_iter().enumerate() {
                f(base + i, v?.as_deref())?;
            }
            Ok(())
        })
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
        point_get(&self.db, self.cf(f)?, k.as_ref())
    }

    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>> {
        point_len(&self.db, self.cf(f)?, k.as_ref())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::families::MESSAGES;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn key(k: u16) -> [u8; 3] {
        let b = k.to_be_bytes();
        [b[0], b[1], 0]
    }

    /// Ascending keys with repeats: runs of neighbours with small gaps (the iterator
    /// steps) or keys spread over the whole range (it gives up and multi-gets).
    fn queries() -> impl Strategy<Value = Vec<u16>> {
        prop_oneof![
            (0u16..600, proptest::collection::vec(0u16..4, 0..80)).prop_map(|(start, gaps)| {
                let mut k = start;
                gaps.into_iter()
                    .map(|g| {
                        k = k.saturating_add(g);
                        k
                    })
                    .collect()
            }),
            proptest::collection::vec(0u16..1000, 0..80).prop_map(|mut v| {
                v.sort_unstable();
                v
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever path a batch takes, each key's value is what was stored last
        /// (none for keys never written, deleted, or written between the keys asked
        /// for), in the order asked, across memtables and tables.
        #[test]
        fn read_sorted_returns_each_keys_stored_value_in_order(
            layers in proptest::collection::vec(
                proptest::collection::vec((0u16..1000, any::<u8>(), 0u8..5), 0..300), 1..4),
            asked in queries(),
        ) {
            let dir = tempfile::tempdir().expect("dir");
            let mut o = rocksdb::Options::default();
            o.create_if_missing(true);
            o.create_missing_column_families(true);
            let names: Vec<_> = families::ALL.iter().map(|f| f.name()).collect();
            let store = Store { db: DB::open_cf(&o, dir.path(), names).expect("open") };
            let cf = store.cf(MESSAGES).expect("cf");
            let mut model = BTreeMap::new();
            for (n, layer) in layers.iter().enumerate() {
                for &(k, v, what) in layer {
                    if what == 0 {
                        store.db.delete_cf(cf, key(k)).expect("delete");
                        model.remove(&k);
                    } else {
                        store.db.put_cf(cf, key(k), [v]).expect("put");
                        model.insert(k, vec![v]);
                    }
                    // Keys between the ones asked for, which the iterator must pass.
                    store.db.put_cf(cf, [key(k)[0], key(k)[1], 1], [v]).expect("put");
                }
                if n + 1 < layers.len() {
                    store.db.flush_cf(cf).expect("flush");
                }
            }
            let ks: Vec<_> = asked.iter().map(|&k| key(k)).collect();
            let mut got = Vec::new();
            store
                .read_sorted(MESSAGES, &ks, |i, v| {
                    got.push((i, v.map(<[u8]>::to_vec)));
                    Ok(())
                })
                .expect("read");
            let want: Vec<_> = asked
                .iter()
                .enumerate()
                .map(|(i, k)| (i, model.get(k).cloned()))
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
