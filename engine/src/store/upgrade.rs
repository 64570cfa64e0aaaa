//! Changes to the layout of stores written by earlier builds, made when a store is
//! opened, before anything reads it.

use super::families::{MESSAGES, RUNS};
use crate::error::{Error, Result};
use rocksdb::{WriteBatch, WriteOptions, DB};

/// Run records copied per batch.
const CHUNK: usize = 4096;

/// Longer than any run key (29 bytes), all `0xff`: above every key that starts with it.
const ABOVE_RUNS: [u8; 30] = [0xff; 30];

/// Moves the run records that stores written before the `runs` family keep in
/// `messages` (under `0xff`, above every message record) to `runs`: copies them a chunk
/// per batch, then deletes them from `messages` with one range deletion, synced (which
/// syncs the copies before it). A move cut short by a crash copies again at the next
/// open, harmlessly, since the copies are the same records. Returns how many moved.
pub(crate) fn move_runs(db: &DB) -> Result<u64> {
    let missing = |name: &str| Error::Internal(format!("column family {name} is missing"));
    let from = db
        .cf_handle(MESSAGES.name())
        .ok_or_else(|| missing(MESSAGES.name()))?;
    let to = db
        .cf_handle(RUNS.name())
        .ok_or_else(|| missing(RUNS.name()))?;
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_iterate_lower_bound(vec![0xffu8]);
    let mut it = db.raw_iterator_cf_opt(from, ro);
    it.seek([0xffu8]);
    let mut moved = 0u64;
    let mut batch = WriteBatch::default();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        batch.put_cf(to, k, v);
        moved += 1;
        if batch.len() == CHUNK {
            db.write(std::mem::take(&mut batch))?;
        }
        it.next();
    }
    it.status()?;
    drop(it);
    if moved == 0 {
        return Ok(0);
    }
    batch.delete_range_cf(from, &[0xffu8][..], &ABOVE_RUNS[..]);
    let mut wo = WriteOptions::default();
    wo.set_sync(true);
    db.write_opt(batch, &wo)?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::families::ALL;
    use rocksdb::{IteratorMode, Options};

    fn keys_of(db: &DB, name: &str) -> Vec<Box<[u8]>> {
        let cf = db.cf_handle(name).expect("family");
        db.iterator_cf(cf, IteratorMode::Start)
            .map(|r| r.expect("reads").0)
            .collect()
    }

    #[test]
    fn runs_in_messages_move_in_chunks_and_records_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut o = Options::default();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        let names: Vec<_> = ALL.iter().map(|f| f.name()).collect();
        let db = DB::open_cf(&o, dir.path(), &names).expect("opens");
        let messages = db.cf_handle(MESSAGES.name()).expect("family");
        // Message records (ids below 0xff…) and, above them, more runs than one chunk.
        for i in 0u32..10 {
            db.put_cf(
                messages,
                [&[0x01u8][..], &i.to_be_bytes()].concat(),
                b"body",
            )
            .expect("puts");
        }
        let runs = 2 * CHUNK as u32 + 5;
        for i in 0..runs {
            db.put_cf(
                messages,
                [&[0xffu8][..], &i.to_be_bytes()].concat(),
                i.to_le_bytes(),
            )
            .expect("puts");
        }
        assert_eq!(move_runs(&db).expect("moves"), u64::from(runs));
        let left = keys_of(&db, MESSAGES.name());
        assert_eq!(left.len(), 10);
        assert!(left.iter().all(|k| k[0] == 0x01));
        let moved = keys_of(&db, RUNS.name());
        assert_eq!(moved.len(), runs as usize);
        let cf = db.cf_handle(RUNS.name()).expect("family");
        for i in [0, CHUNK as u32, runs - 1] {
            let k = [&[0xffu8][..], &i.to_be_bytes()].concat();
            assert_eq!(
                db.get_cf(cf, k).expect("reads").as_deref(),
                Some(&i.to_le_bytes()[..])
            );
        }
        // Nothing left to move: a second open does nothing.
        assert_eq!(move_runs(&db).expect("moves"), 0);
    }
}
