//! A writer round: the writes of every job in one group commit, gathered in memory
//! and written to RocksDB in one batch when the round commits. Reads through the round
//! see its own writes on top of the committed store, so a job sees what the jobs
//! before it in the round did without anything reaching RocksDB early. A round that
//! fails to commit leaves the store as it was.
//!
//! Each family keeps a log of its writes: keys in one arena, values as positions in the
//! round's WriteBatch (which holds them anyway). The sorted index over that log is built
//! only when the round reads the family and its writes did not come in key order, so a
//! round that only writes (a batch of sends) pays for little more than the key copies.

use super::families::Family;
use super::{bounded, Read, Row, Rows};
use crate::error::Result;
use rocksdb::{ColumnFamily, WriteBatch, DB};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
}

/// One write: where its key and value are in the arena.
struct Op {
    kind: Kind,
    key: (usize, usize),
    value: (usize, usize),
}

/// A deleted range, and how many of the family's writes came before it (those it
/// covers are gone; later ones are not).
struct DeletedRange {
    lower: Box<[u8]>,
    upper: Box<[u8]>,
    after: usize,
}

impl DeletedRange {
    fn covers(&self, k: &[u8]) -> bool {
        *self.lower <= *k && *k < *self.upper
    }
}

/// A key the round wrote, and its value (`None`: deleted).
type Written = (Box<[u8]>, Option<Box<[u8]>>);

/// The key → latest write index over the first `indexed` writes.
#[derive(Default)]
struct Index {
    latest: BTreeMap<Box<[u8]>, usize>,
    indexed: usize,
}

/// One family's writes in this round.
#[derive(Default)]
struct FamilyLog {
    arena: Vec<u8>,
    ops: Vec<Op>,
    /// Whether every write's key is above the one before (a ready log appended in
    /// order, timer keys taken in order): then the log itself is sorted and is searched
    /// without building the index.
    ascending: bool,
    ranges: Vec<DeletedRange>,
    index: RefCell<Index>,
}

impl FamilyLog {
    /// Logs a write of `k`; `value` is where its value is in the round's batch.
    fn push(&mut self, kind: Kind, k: &[u8], value: (usize, usize)) {
        if self.ops.is_empty() {
            self.ascending = true;
        } else if self.ascending {
            let last = self.ops[self.ops.len() - 1].key;
            self.ascending = self.bytes(last) < k;
        }
        let ks = self.arena.len();
        self.arena.extend_from_slice(k);
        self.ops.push(Op {
            kind,
            key: (ks, k.len()),
            value,
        });
    }

    fn bytes(&self, (at, len): (usize, usize)) -> &[u8] {
        &self.arena[at..at + len]
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.ranges.is_empty()
    }

    /// Brings the index up to date with the log.
    fn sync(&self) {
        let mut ix = self.index.borrow_mut();
        let from = ix.indexed;
        for (i, op) in self.ops.iter().enumerate().skip(from) {
            ix.latest.insert(Box::from(self.bytes(op.key)), i);
        }
        ix.indexed = self.ops.len();
    }

    /// What write `i` leaves for its key: the value, or `None` if deleted (by itself
    /// or by a later range deletion).
    fn outcome<'b>(&self, i: usize, k: &[u8], batch: &'b [u8]) -> Option<&'b [u8]> {
        let op = &self.ops[i];
        let deleted =
            op.kind == Kind::Delete || self.ranges.iter().any(|r| r.after > i && r.covers(k));
        let (at, len) = op.value;
        (!deleted).then(|| batch.get(at..at + len).unwrap_or_default())
    }

    /// Whether a committed key is deleted by this round's range deletions.
    fn range_deleted(&self, k: &[u8]) -> bool {
        self.ranges.iter().any(|r| r.covers(k))
    }

    /// This round's word on `k`: `None` if it did not touch it, `Some(None)` if it
    /// deleted it, `Some(Some(v))` if it wrote `v`.
    fn lookup(&self, k: &[u8], batch: &[u8]) -> Option<Option<Vec<u8>>> {
        if self.is_empty() {
            return None;
        }
        let i = if self.ascending {
            self.ops
                .binary_search_by(|op| self.bytes(op.key).cmp(k))
                .ok()
        } else {
            self.sync();
            self.index.borrow().latest.get(k).copied()
        };
        match i {
            Some(i) => Some(self.outcome(i, k, batch).map(<[u8]>::to_vec)),
            None => self.range_deleted(k).then_some(None),
        }
    }

    /// This round's writes with keys in `[lower, upper)`, in key order (or reverse), as
    /// (key, outcome).
    fn written_in(&self, lower: &[u8], upper: &[u8], reverse: bool, batch: &[u8]) -> Vec<Written> {
        let one = |k: &[u8], i: usize| -> Written {
            (Box::from(k), self.outcome(i, k, batch).map(Box::from))
        };
        if self.ascending {
            let from = self.ops.partition_point(|op| self.bytes(op.key) < lower);
            let to = self.ops.partition_point(|op| self.bytes(op.key) < upper);
            let span = (from..to.max(from)).map(|i| one(self.bytes(self.ops[i].key), i));
            return if reverse {
                span.rev().collect()
            } else {
                span.collect()
            };
        }
        self.sync();
        let ix = self.index.borrow();
        let range = ix
            .latest
            .range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)));
        if reverse {
            range.rev().map(|(k, &i)| one(k, i)).collect()
        } else {
            range.map(|(k, &i)| one(k, i)).collect()
        }
    }
}

/// Rows read into one buffer (keys and values back to back), reused from one read to
/// the next so a long walk does not allocate per row.
#[derive(Default)]
pub(crate) struct RowBuf {
    bytes: Vec<u8>,
    /// Start, key length and value length of each row.
    rows: Vec<(usize, usize, usize)>,
}

impl RowBuf {
    fn clear(&mut self) {
        self.bytes.clear();
        self.rows.clear();
    }

    fn push(&mut self, k: &[u8], v: &[u8]) {
        self.rows.push((self.bytes.len(), k.len(), v.len()));
        self.bytes.extend_from_slice(k);
        self.bytes.extend_from_slice(v);
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Row `i` as (key, value).
    pub fn row(&self, i: usize) -> (&[u8], &[u8]) {
        let (at, kl, vl) = self.rows[i];
        (&self.bytes[at..at + kl], &self.bytes[at + kl..at + kl + vl])
    }
}

/// What a merged walk takes next.
enum Step {
    /// The committed row under the iterator.
    Committed,
    /// The round's next write; `replaces`: the committed row has the same key.
    Written { replaces: bool },
}

fn step_on(it: &mut rocksdb::DBRawIterator<'_>, reverse: bool) {
    if reverse {
        it.prev()
    } else {
        it.next()
    }
}

/// The writes of one round, and reads that see them.
pub(crate) struct Round<'a> {
    db: &'a DB,
    handles: [&'a ColumnFamily; 7],
    batch: WriteBatch,
    logs: [FamilyLog; 7],
}

impl<'a> Round<'a> {
    /// An empty round over `db` (handles in `families::ALL` order).
    pub fn new(db: &'a DB, handles: [&'a ColumnFamily; 7]) -> Self {
        Round {
            db,
            handles,
            batch: WriteBatch::default(),
            logs: Default::default(),
        }
    }

    /// Writes `v` under `k`.
    pub fn put(&mut self, f: Family, k: &[u8], v: &[u8]) {
        self.batch.put_cf(self.handles[f.0], k, v);
        // A Put record ends with its value: the log points there instead of copying it.
        let end = self.batch.data().len();
        self.logs[f.0].push(Kind::Put, k, (end - v.len(), v.len()));
    }

    /// Deletes `k`.
    pub fn delete(&mut self, f: Family, k: &[u8]) {
        self.batch.delete_cf(self.handles[f.0], k);
        self.logs[f.0].push(Kind::Delete, k, (0, 0));
    }

    /// Deletes a key that was put exactly once and never overwritten (timer keys): its
    /// tombstone vanishes together with the value instead of piling up.
    pub fn single_delete(&mut self, f: Family, k: &[u8]) {
        self.batch.single_delete_cf(self.handles[f.0], k);
        self.logs[f.0].push(Kind::Delete, k, (0, 0));
    }

    /// Deletes every key in `[lower, upper)`.
    pub fn delete_range(&mut self, f: Family, lower: &[u8], upper: &[u8]) {
        self.batch.delete_range_cf(self.handles[f.0], lower, upper);
        let log = &mut self.logs[f.0];
        let after = log.ops.len();
        log.ranges.push(DeletedRange {
            lower: Box::from(lower),
            upper: Box::from(upper),
            after,
        });
    }

    /// Writes a record that no job of the round reads back (topic, group and engine
    /// records, which live in memory): into the batch only.
    pub fn put_unread(&mut self, f: Family, k: &[u8], v: &[u8]) {
        self.batch.put_cf(self.handles[f.0], k, v);
    }

    /// Deletes a record that no job of the round reads back.
    pub fn delete_unread(&mut self, f: Family, k: &[u8]) {
        self.batch.delete_cf(self.handles[f.0], k);
    }

    /// Whether the round has written anything.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    /// The batch to commit, leaving the round empty.
    pub fn take_batch(&mut self) -> WriteBatch {
        self.logs = Default::default();
        std::mem::take(&mut self.batch)
    }

    /// Merges the committed rows of `[lower, upper)` with this round's writes, in key
    /// order (or reverse), until `want` returns false.
    fn merged(
        &self,
        f: Family,
        lower: &[u8],
        upper: &[u8],
        reverse: bool,
        mut want: impl FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<()> {
        let log = &self.logs[f.0];
        let written = if log.is_empty() {
            Vec::new()
        } else {
            log.written_in(lower, upper, reverse, self.batch.data())
        };
        let mut written = written.into_iter().peekable();
        let mut it = self
            .db
            .raw_iterator_cf_opt(self.handles[f.0], bounded(lower, upper));
        if reverse {
            it.seek_to_last();
        } else {
            it.seek_to_first();
        }
        // The order the walk goes in: `a` comes before `b`.
        let before = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        loop {
            let step = {
                let committed = if it.valid() { it.key() } else { None };
                match (committed, written.peek()) {
                    (None, None) => break,
                    (Some(_), None) => Step::Committed,
                    (None, Some(_)) => Step::Written { replaces: false },
                    (Some(ck), Some((wk, _))) if before(ck, wk) => Step::Committed,
                    (Some(ck), Some((wk, _))) => Step::Written {
                        replaces: ck == &**wk,
                    },
                }
            };
            match step {
                Step::Committed => {
                    if let (Some(ck), Some(cv)) = (it.key(), it.value()) {
                        if !log.range_deleted(ck) && !want(ck, cv) {
                            return Ok(());
                        }
                    }
                    step_on(&mut it, reverse);
                }
                Step::Written { replaces } => {
                    if replaces {
                        // The round's write stands for the committed row.
                        step_on(&mut it, reverse);
                    }
                    if let Some((wk, Some(wv))) = written.next() {
                        if !want(&wk, &wv) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        it.status()?;
        Ok(())
    }
}

impl Round<'_> {
    /// Like [`Read::scan`], into `out` (cleared first).
    pub fn scan_into(
        &self,
        f: Family,
        lower: &[u8],
        upper: &[u8],
        limit: usize,
        out: &mut RowBuf,
    ) -> Result<()> {
        out.clear();
        if limit > 0 {
            self.merged(f, lower, upper, false, |k, v| {
                out.push(k, v);
                out.len() < limit
            })?;
        }
        Ok(())
    }
}

impl Read for Round<'_> {
    fn get(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>> {
        let k = k.as_ref();
        match self.logs[f.0].lookup(k, self.batch.data()) {
            Some(v) => Ok(v),
            None => Ok(self.db.get_cf(self.handles[f.0], k)?),
        }
    }

    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>> {
        let k = k.as_ref();
        match self.logs[f.0].lookup(k, self.batch.data()) {
            Some(v) => Ok(v.map(|v| v.len())),
            None => Ok(self
                .db
                .get_pinned_cf(self.handles[f.0], k)?
                .map(|v| v.len())),
        }
    }

    fn scan(&self, f: Family, lower: &[u8], upper: &[u8], limit: usize) -> Result<Rows> {
        let mut out = Vec::new();
        if limit > 0 {
            self.merged(f, lower, upper, false, |k, v| {
                out.push((Box::from(k), Box::from(v)));
                out.len() < limit
            })?;
        }
        Ok(out)
    }

    fn last_in(&self, f: Family, lower: &[u8], upper: &[u8]) -> Result<Option<Row>> {
        let mut last = None;
        self.merged(f, lower, upper, true, |k, v| {
            last = Some((Box::from(k), Box::from(v)));
            false
        })?;
        Ok(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::families::{self, READY};
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum W {
        Put(u8, u8),
        Delete(u8),
        DeleteRange(u8, u8),
    }

    fn key(k: u8) -> [u8; 2] {
        [b'k', k]
    }

    fn writes() -> impl Strategy<Value = W> {
        prop_oneof![
            4 => (0u8..24, any::<u8>()).prop_map(|(k, v)| W::Put(k, v)),
            2 => (0u8..24).prop_map(W::Delete),
            1 => (0u8..24, 0u8..24).prop_map(|(a, b)| W::DeleteRange(a.min(b), a.max(b))),
        ]
    }

    fn open(dir: &std::path::Path) -> DB {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let names: Vec<_> = families::ALL.iter().map(|f| f.name()).collect();
        DB::open_cf(&o, dir, names).expect("open")
    }

    fn rows(r: &Rows) -> Vec<(Vec<u8>, Vec<u8>)> {
        r.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Reads through a round equal reads of a model of committed rows plus the
        /// round's writes in order, and the committed batch leaves exactly that model.
        #[test]
        fn reads_see_the_rounds_own_writes_and_the_batch_stores_the_same(
            committed in proptest::collection::btree_map(0u8..24, any::<u8>(), 0..12),
            ws in proptest::collection::vec(writes(), 0..40),
            scans in proptest::collection::vec((0u8..26, 0u8..26, 1usize..8), 1..6),
            ascending in any::<bool>(),
        ) {
            // Writes in strictly ascending key order take the log's sorted path.
            let ws: Vec<W> = if ascending {
                let mut by_key = BTreeMap::new();
                for w in ws {
                    match w {
                        W::Put(k, _) | W::Delete(k) => {
                            by_key.insert(k, w);
                        }
                        W::DeleteRange(..) => {}
                    }
                }
                by_key.into_values().collect()
            } else {
                ws
            };
            let dir = tempfile::tempdir().expect("dir");
            let db = open(dir.path());
            let cf = db.cf_handle(READY.name()).expect("cf");
            for (k, v) in &committed {
                db.put_cf(cf, key(*k), [*v]).expect("put");
            }
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> =
                committed.iter().map(|(k, v)| (key(*k).to_vec(), vec![*v])).collect();
            let handles: Vec<_> = families::ALL
                .iter()
                .map(|f| db.cf_handle(f.name()).expect("cf"))
                .collect();
            let Ok(handles) = <[&ColumnFamily; 7]>::try_from(handles) else {
                panic!("seven families");
            };
            let mut round = Round::new(&db, handles);
            for w in &ws {
                match *w {
                    W::Put(k, v) => {
                        round.put(READY, &key(k), &[v]);
                        model.insert(key(k).to_vec(), vec![v]);
                    }
                    W::Delete(k) => {
                        round.delete(READY, &key(k));
                        model.remove(key(k).as_slice());
                    }
                    W::DeleteRange(a, b) => {
                        round.delete_range(READY, &key(a), &key(b));
                        model.retain(|k, _| !(k.as_slice() >= key(a).as_slice() && k.as_slice() < key(b).as_slice()));
                    }
                }
                // Reads in between writes see everything so far.
                for k in 0u8..24 {
                    prop_assert_eq!(round.get(READY, key(k)).expect("get"), model.get(key(k).as_slice()).cloned());
                }
            }
            for (a, b, limit) in scans {
                let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                let want: Vec<_> = model
                    .range(lo.to_vec()..hi.to_vec())
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                prop_assert_eq!(rows(&round.scan(READY, &lo, &hi, limit).expect("scan")), want);
                let last = model.range(lo.to_vec()..hi.to_vec()).next_back().map(|(k, v)| (k.clone(), v.clone()));
                let got = round.last_in(READY, &lo, &hi).expect("last").map(|(k, v)| (k.to_vec(), v.to_vec()));
                prop_assert_eq!(got, last);
            }
            let batch = round.take_batch();
            db.write(batch).expect("write");
            let stored: BTreeMap<Vec<u8>, Vec<u8>> = db
                .iterator_cf(cf, rocksdb::IteratorMode::Start)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("row"))
                .collect();
            prop_assert_eq!(stored, model);
        }
    }
}
