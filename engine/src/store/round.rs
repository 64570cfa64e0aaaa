//! A writer round: the writes of every job in one group commit, gathered in memory
//! and written to RocksDB in one batch when the round commits. Reads through the round
//! see its own writes on top of the committed store, so a job sees what the jobs
//! before it in the round did without anything reaching RocksDB early. A round that
//! fails to commit leaves the store as it was.
//!
//! The round encodes its writes itself, in RocksDB's WriteBatch format (the format of
//! the write-ahead log, fixed since it must be read back by every release), into one
//! buffer that is handed to RocksDB whole at commit: a write is a few bytes appended in
//! memory, not a call across the FFI boundary, and each family's log of writes points
//! at its keys and values inside that buffer instead of copying them. The sorted index
//! over a family's log is built only when the round reads the family and its writes did
//! not come in key order, so a round that only writes (a batch of sends) pays for
//! little more than the encoding. The buffer and the logs are kept from one round to
//! the next ([`Spare`]), so a round allocates nothing once they have grown.

use super::families::{self, Family};
use super::{bounded, Read, Row, Rows};
use crate::error::{Error, Result};
use rocksdb::{ColumnFamily, WriteBatch, DB};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;

/// Most buffer bytes and writes per family a round keeps for the next one (a round of
/// large batches of sends is a few MiB).
const KEEP_BYTES: usize = 16 << 20;
const KEEP_OPS: usize = 64 * 1024;

/// A WriteBatch starts with its sequence number (8 bytes) and record count (4 bytes).
const HEADER: usize = 12;

/// Record tags of RocksDB's WriteBatch format for a family other than the default one
/// (`ValueType` in RocksDB's `dbformat.h`); the default family's tags carry no family
/// id.
mod tag {
    pub const PUT: u8 = 0x5;
    pub const DELETE: u8 = 0x4;
    pub const SINGLE_DELETE: u8 = 0x8;
    pub const DELETE_RANGE: u8 = 0xE;
    pub const DEFAULT_PUT: u8 = 0x1;
    pub const DEFAULT_DELETE: u8 = 0x0;
    pub const DEFAULT_SINGLE_DELETE: u8 = 0x7;
    pub const DEFAULT_DELETE_RANGE: u8 = 0xF;
}

fn put_varint32(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint32 at `at`: (value, bytes it took).
fn get_varint32(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let mut v = 0u32;
    for i in 0..5 {
        let byte = *b.get(at + i)?;
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// A span of the round's buffer: start and length.
type Span = (usize, usize);

/// Appends a length-prefixed slice; returns where its bytes went.
fn put_slice(out: &mut Vec<u8>, s: &[u8]) -> Result<Span> {
    let len = u32::try_from(s.len())
        .map_err(|_| Error::Internal(format!("a key or value of {} bytes", s.len())))?;
    put_varint32(out, len);
    let at = out.len();
    out.extend_from_slice(s);
    Ok((at, s.len()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Put,
    Delete,
}

/// One write: where its key and value are in the round's buffer.
struct Op {
    kind: Kind,
    key: Span,
    value: Span,
}

/// A deleted range, and how many of the family's writes came before it (those it
/// covers are gone; later ones are not).
struct DeletedRange {
    lower: Span,
    upper: Span,
    after: usize,
}

/// The key → latest write index over the first `indexed` writes.
#[derive(Default)]
struct Index {
    latest: BTreeMap<Box<[u8]>, usize>,
    indexed: usize,
}

fn bytes(rep: &[u8], (at, len): Span) -> &[u8] {
    &rep[at..at + len]
}

/// One family's writes in this round.
#[derive(Default)]
struct FamilyLog {
    ops: Vec<Op>,
    /// Whether every write's key is above the one before (a ready log appended in
    /// order, timer keys taken in order): then the log itself is sorted and is searched
    /// without building the index.
    ascending: bool,
    ranges: Vec<DeletedRange>,
    index: RefCell<Index>,
}

impl FamilyLog {
    /// Logs a write whose key and value are at `key` and `value` in `rep`.
    fn push(&mut self, rep: &[u8], kind: Kind, key: Span, value: Span) {
        if self.ops.is_empty() {
            self.ascending = true;
        } else if self.ascending {
            let last = self.ops[self.ops.len() - 1].key;
            self.ascending = bytes(rep, last) < bytes(rep, key);
        }
        self.ops.push(Op { kind, key, value });
    }

    /// Forgets every write, keeping the allocations.
    fn clear(&mut self) {
        self.ops.clear();
        self.ranges.clear();
        let ix = self.index.get_mut();
        ix.latest.clear();
        ix.indexed = 0;
    }

    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.ranges.is_empty()
    }

    fn key<'b>(&self, i: usize, rep: &'b [u8]) -> &'b [u8] {
        bytes(rep, self.ops[i].key)
    }

    /// Brings the index up to date with the log.
    fn sync(&self, rep: &[u8]) {
        let mut ix = self.index.borrow_mut();
        let from = ix.indexed;
        for (i, op) in self.ops.iter().enumerate().skip(from) {
            ix.latest.insert(Box::from(bytes(rep, op.key)), i);
        }
        ix.indexed = self.ops.len();
    }

    fn covers(&self, r: &DeletedRange, k: &[u8], rep: &[u8]) -> bool {
        bytes(rep, r.lower) <= k && k < bytes(rep, r.upper)
    }

    /// What write `i` leaves for its key: the value, or `None` if deleted (by itself
    /// or by a later range deletion).
    fn outcome<'b>(&self, i: usize, rep: &'b [u8]) -> Option<&'b [u8]> {
        let op = &self.ops[i];
        let k = bytes(rep, op.key);
        let deleted = op.kind == Kind::Delete
            || self
                .ranges
                .iter()
                .any(|r| r.after > i && self.covers(r, k, rep));
        (!deleted).then(|| bytes(rep, op.value))
    }

    /// Whether a committed key is deleted by this round's range deletions.
    fn range_deleted(&self, k: &[u8], rep: &[u8]) -> bool {
        self.ranges.iter().any(|r| self.covers(r, k, rep))
    }

    /// This round's word on `k`: `None` if it did not touch it, `Some(None)` if it
    /// deleted it, `Some(Some(v))` if it wrote `v`.
    fn lookup<'b>(&self, k: &[u8], rep: &'b [u8]) -> Option<Option<&'b [u8]>> {
        if self.is_empty() {
            return None;
        }
        let i = if self.ascending {
            self.ops
                .binary_search_by(|op| bytes(rep, op.key).cmp(k))
                .ok()
        } else {
            self.sync(rep);
            self.index.borrow().latest.get(k).copied()
        };
        match i {
            Some(i) => Some(self.outcome(i, rep)),
            None => self.range_deleted(k, rep).then_some(None),
        }
    }

    /// The writes (by position in the log) that stand for keys in `[lower, upper)`, in
    /// key order (or reverse).
    fn written_in(&self, lower: &[u8], upper: &[u8], reverse: bool, rep: &[u8]) -> Vec<usize> {
        if self.ascending {
            let from = self.ops.partition_point(|op| bytes(rep, op.key) < lower);
            let to = self.ops.partition_point(|op| bytes(rep, op.key) < upper);
            let span = from..to.max(from);
            return if reverse {
                span.rev().collect()
            } else {
                span.collect()
            };
        }
        self.sync(rep);
        let ix = self.index.borrow();
        let range = ix
            .latest
            .range::<[u8], _>((Bound::Included(lower), Bound::Excluded(upper)));
        if reverse {
            range.rev().map(|(_, &i)| i).collect()
        } else {
            range.map(|(_, &i)| i).collect()
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

/// The allocations one round leaves for the next: its buffer and family logs, empty,
/// and the column families' ids in the WriteBatch format.
pub(crate) struct Spare {
    rep: Vec<u8>,
    logs: [FamilyLog; families::COUNT],
    ids: [u32; families::COUNT],
}

impl Spare {
    /// Empty buffers for rounds over the families `handles` (in `families::ALL`
    /// order). Each family's id is read from a batch RocksDB encodes itself, so the
    /// round's own encoding names families as RocksDB does.
    pub fn new(handles: &[&ColumnFamily; families::COUNT]) -> Result<Self> {
        let mut ids = [0u32; families::COUNT];
        for (id, h) in ids.iter_mut().zip(handles) {
            let mut probe = WriteBatch::default();
            probe.put_cf(*h, b"", b"");
            *id = family_id(probe.data()).ok_or_else(|| {
                Error::Internal("a WriteBatch record of an unexpected form".into())
            })?;
        }
        let mut rep = Vec::with_capacity(64 * 1024);
        rep.resize(HEADER, 0);
        Ok(Spare {
            rep,
            logs: Default::default(),
            ids,
        })
    }
}

/// The family id of a batch's first record, a put.
fn family_id(data: &[u8]) -> Option<u32> {
    match *data.get(HEADER)? {
        tag::DEFAULT_PUT => Some(0),
        tag::PUT => get_varint32(data, HEADER + 1).map(|(id, _)| id),
        _ => None,
    }
}

/// The writes of one round, and reads that see them.
pub(crate) struct Round<'a> {
    db: &'a DB,
    handles: [&'a ColumnFamily; families::COUNT],
    /// The round's writes in RocksDB's WriteBatch format, header first (its count is
    /// filled in at commit).
    rep: Vec<u8>,
    count: u32,
    logs: [FamilyLog; families::COUNT],
    ids: [u32; families::COUNT],
}

impl<'a> Round<'a> {
    /// An empty round over `db` (handles in `families::ALL` order) in the buffers of
    /// `spare`.
    pub fn new(db: &'a DB, handles: [&'a ColumnFamily; families::COUNT], spare: Spare) -> Self {
        Round {
            db,
            handles,
            rep: spare.rep,
            count: 0,
            logs: spare.logs,
            ids: spare.ids,
        }
    }

    /// Gives back the buffers, emptied, for the next round (an unusually large round's
    /// are trimmed, so one burst does not hold its memory for good).
    pub fn into_spare(mut self) -> Spare {
        self.clear();
        self.rep.shrink_to(KEEP_BYTES);
        for log in &mut self.logs {
            log.ops.shrink_to(KEEP_OPS);
            log.ranges.shrink_to(KEEP_OPS);
        }
        Spare {
            rep: self.rep,
            logs: self.logs,
            ids: self.ids,
        }
    }

    fn clear(&mut self) {
        self.rep.truncate(HEADER);
        self.count = 0;
        for log in &mut self.logs {
            log.clear();
        }
    }

    /// Starts a record: its tag (the default family's form when its id is 0) and id.
    fn record(&mut self, f: Family, tag: u8, default_tag: u8) {
        self.count += 1;
        let id = self.ids[f.0];
        if id == 0 {
            self.rep.push(default_tag);
        } else {
            self.rep.push(tag);
            put_varint32(&mut self.rep, id);
        }
    }

    fn encode_put(&mut self, f: Family, k: &[u8], v: &[u8]) -> Result<(Span, Span)> {
        self.rep.reserve(16 + k.len() + v.len());
        self.record(f, tag::PUT, tag::DEFAULT_PUT);
        let key = put_slice(&mut self.rep, k)?;
        let value = put_slice(&mut self.rep, v)?;
        Ok((key, value))
    }

    fn encode_delete(&mut self, f: Family, k: &[u8], tag: u8, default_tag: u8) -> Result<Span> {
        self.rep.reserve(12 + k.len());
        self.record(f, tag, default_tag);
        put_slice(&mut self.rep, k)
    }

    /// Writes `v` under `k`.
    pub fn put(&mut self, f: Family, k: &[u8], v: &[u8]) -> Result<()> {
        let (key, value) = self.encode_put(f, k, v)?;
        self.logs[f.0].push(&self.rep, Kind::Put, key, value);
        Ok(())
    }

    /// Deletes `k`.
    pub fn delete(&mut self, f: Family, k: &[u8]) -> Result<()> {
        let key = self.encode_delete(f, k, tag::DELETE, tag::DEFAULT_DELETE)?;
        self.logs[f.0].push(&self.rep, Kind::Delete, key, (0, 0));
        Ok(())
    }

    /// Deletes a key that was put exactly once and never overwritten (timer keys): its
    /// tombstone vanishes together with the value instead of piling up.
    pub fn single_delete(&mut self, f: Family, k: &[u8]) -> Result<()> {
        let key = self.encode_delete(f, k, tag::SINGLE_DELETE, tag::DEFAULT_SINGLE_DELETE)?;
        self.logs[f.0].push(&self.rep, Kind::Delete, key, (0, 0));
        Ok(())
    }

    /// Deletes every key in `[lower, upper)`.
    pub fn delete_range(&mut self, f: Family, lower: &[u8], upper: &[u8]) -> Result<()> {
        self.rep.reserve(16 + lower.len() + upper.len());
        self.record(f, tag::DELETE_RANGE, tag::DEFAULT_DELETE_RANGE);
        let lower = put_slice(&mut self.rep, lower)?;
        let upper = put_slice(&mut self.rep, upper)?;
        let log = &mut self.logs[f.0];
        let after = log.ops.len();
        log.ranges.push(DeletedRange {
            lower,
            upper,
            after,
        });
        Ok(())
    }

    /// Writes a record that no job of the round reads back (topic, group and engine
    /// records, which live in memory): into the batch only.
    pub fn put_unread(&mut self, f: Family, k: &[u8], v: &[u8]) -> Result<()> {
        self.encode_put(f, k, v).map(|_| ())
    }

    /// Deletes a record that no job of the round reads back.
    pub fn delete_unread(&mut self, f: Family, k: &[u8]) -> Result<()> {
        self.encode_delete(f, k, tag::DELETE, tag::DEFAULT_DELETE)
            .map(|_| ())
    }

    /// Whether the round has written anything.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch to commit, leaving the round empty.
    pub fn take_batch(&mut self) -> WriteBatch {
        self.rep[8..HEADER].copy_from_slice(&self.count.to_le_bytes());
        let batch = WriteBatch::from_data(&self.rep);
        self.clear();
        batch
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
        let rep = &self.rep[..];
        let written = if log.is_empty() {
            Vec::new()
        } else {
            log.written_in(lower, upper, reverse, rep)
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
                let next = written.peek().map(|&i| log.key(i, rep));
                match (committed, next) {
                    (None, None) => break,
                    (Some(_), None) => Step::Committed,
                    (None, Some(_)) => Step::Written { replaces: false },
                    (Some(ck), Some(wk)) if before(ck, wk) => Step::Committed,
                    (Some(ck), Some(wk)) => Step::Written { replaces: ck == wk },
                }
            };
            match step {
                Step::Committed => {
                    if let (Some(ck), Some(cv)) = (it.key(), it.value()) {
                        if !log.range_deleted(ck, rep) && !want(ck, cv) {
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
                    if let Some(i) = written.next() {
                        if let Some(wv) = log.outcome(i, rep) {
                            if !want(log.key(i, rep), wv) {
                                return Ok(());
                            }
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
        match self.logs[f.0].lookup(k, &self.rep) {
            Some(v) => Ok(v.map(<[u8]>::to_vec)),
            None => super::point_get(self.db, self.handles[f.0], k),
        }
    }

    fn value_len(&self, f: Family, k: impl AsRef<[u8]>) -> Result<Option<usize>> {
        let k = k.as_ref();
        match self.logs[f.0].lookup(k, &self.rep) {
            Some(v) => Ok(v.map(<[u8]>::len)),
            None => super::point_len(self.db, self.handles[f.0], k),
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
            let Ok(handles) = <[&ColumnFamily; families::COUNT]>::try_from(handles) else {
                panic!("every family");
            };
            // The round runs in the buffers of a refused one that wrote to the same
            // family: none of that may show.
            let mut refused = Round::new(&db, handles, Spare::new(&handles).expect("spare"));
            for k in 0u8..24 {
                refused.put(READY, &key(k), b"refused").expect("put");
            }
            refused.delete_range(READY, &key(0), &key(30)).expect("delete range");
            let mut round = Round::new(&db, handles, refused.into_spare());
            for w in &ws {
                match *w {
                    W::Put(k, v) => {
                        round.put(READY, &key(k), &[v]).expect("put");
                        model.insert(key(k).to_vec(), vec![v]);
                    }
                    W::Delete(k) => {
                        round.delete(READY, &key(k)).expect("delete");
                        model.remove(key(k).as_slice());
                    }
                    W::DeleteRange(a, b) => {
                        round.delete_range(READY, &key(a), &key(b)).expect("delete range");
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

        /// The round's own encoding of a batch is byte for byte the one RocksDB makes,
        /// for every kind of write, long keys and values (multi-byte lengths), every
        /// family and the default family (whose records carry no id).
        #[test]
        fn the_rounds_batch_is_encoded_as_rocksdb_encodes_it(
            ops in proptest::collection::vec(
                (0usize..families::COUNT, 0u8..6, proptest::collection::vec(any::<u8>(), 0..300),
                 proptest::collection::vec(any::<u8>(), 0..300)),
                0..30),
            rounds in 1usize..3,
        ) {
            let dir = tempfile::tempdir().expect("dir");
            let db = open(dir.path());
            let mut handles: Vec<_> = families::ALL
                .iter()
                .map(|f| db.cf_handle(f.name()).expect("cf"))
                .collect();
            // The last family stands in for the default one.
            handles[families::COUNT - 1] = db.cf_handle("default").expect("default cf");
            let Ok(handles) = <[&ColumnFamily; families::COUNT]>::try_from(handles) else {
                panic!("every family");
            };
            let mut spare = Spare::new(&handles).expect("spare");
            for _ in 0..rounds {
                let mut round = Round::new(&db, handles, spare);
                let mut theirs = WriteBatch::default();
                for (f, kind, k, v) in &ops {
                    let (fam, h) = (Family(*f), handles[*f]);
                    match kind {
                        0 => { round.put(fam, k, v).expect("put"); theirs.put_cf(h, k, v); }
                        1 => { round.put_unread(fam, k, v).expect("put"); theirs.put_cf(h, k, v); }
                        2 => { round.delete(fam, k).expect("delete"); theirs.delete_cf(h, k); }
                        3 => { round.delete_unread(fam, k).expect("delete"); theirs.delete_cf(h, k); }
                        4 => { round.single_delete(fam, k).expect("single delete"); theirs.single_delete_cf(h, k); }
                        _ => {
                            let (lo, hi) = (k.min(v), k.max(v));
                            round.delete_range(fam, lo, hi).expect("delete range");
                            theirs.delete_range_cf(h, lo, hi);
                        }
                    }
                }
                prop_assert_eq!(round.is_empty(), theirs.is_empty());
                let ours = round.take_batch();
                prop_assert_eq!(ours.data(), theirs.data());
                prop_assert_eq!(ours.len(), theirs.len());
                db.write(ours).expect("write");
                spare = round.into_spare();
            }
        }
    }
}
