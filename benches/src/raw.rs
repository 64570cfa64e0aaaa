//! The raw RocksDB ceilings: what RocksDB alone does with the same bytes.

use rocksdb::{ColumnFamilyDescriptor, Options, WriteBatch, WriteOptions, DB};
use std::path::Path;
use std::time::{Duration, Instant};

fn open(path: &Path, cfs: &[&str]) -> Result<DB, String> {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    let descs = cfs.iter().map(|n| {
        let mut co = Options::default();
        co.set_write_buffer_size(64 << 20);
        co.set_max_write_buffer_number(4);
        ColumnFamilyDescriptor::new(*n, co)
    });
    DB::open_cf_descriptors(&o, path, descs).map_err(|e| e.to_string())
}

/// Synced batched puts of `body`-byte values under 16-byte keys from `producers`
/// threads, each writing batches of `batch`; returns the elapsed time for `n`.
pub fn synced_puts(
    path: &Path,
    n: u64,
    body: usize,
    batch: usize,
    producers: usize,
) -> Result<Duration, String> {
    let db = std::sync::Arc::new(open(path, &["messages"])?);
    let per = n / producers as u64;
    let start = Instant::now();
    let mut threads = Vec::new();
    for p in 0..producers {
        let db = db.clone();
        threads.push(std::thread::spawn(move || -> Result<(), String> {
            let cf = db.cf_handle("messages").ok_or("no cf")?;
            let template = vec![7u8; body];
            let mut wo = WriteOptions::default();
            wo.set_sync(true);
            let mut i = 0u64;
            while i < per {
                let mut b = WriteBatch::default();
                for _ in 0..batch.min((per - i) as usize) {
                    let k = ((p as u128) << 64 | i as u128).to_be_bytes();
                    // The same bodies as the side it is the ceiling of.
                    b.put_cf(cf, k, crate::bodies::body(&template));
                    i += 1;
                }
                db.write_opt(b, &wo).map_err(|e| e.to_string())?;
            }
            Ok(())
        }));
    }
    for t in threads {
        t.join().map_err(|_| "producer panicked")??;
    }
    Ok(start.elapsed())
}

/// Moves `n` timer-like entries (24-byte keys) into a ready-like family (12-byte keys,
/// 40-byte values) in batches of `step`, deleting the source with SingleDelete;
/// returns the elapsed time of the move alone.
pub fn batched_move(path: &Path, n: u64, step: usize) -> Result<Duration, String> {
    let db = open(path, &["timer", "ready"])?;
    let timer = db.cf_handle("timer").ok_or("no cf")?;
    let ready = db.cf_handle("ready").ok_or("no cf")?;
    let due = 1_700_000_000_000u64.to_be_bytes();
    let mut b = WriteBatch::default();
    for i in 0..n {
        let mut k = [0u8; 24];
        k[..8].copy_from_slice(&due);
        k[8..].copy_from_slice(&(i as u128).to_be_bytes());
        b.put_cf(timer, k, [0u8; 4]);
        if b.len() >= 10_000 {
            db.write(std::mem::take(&mut b))
                .map_err(|e| e.to_string())?;
        }
    }
    db.write(b).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut lower: Vec<u8> = vec![0; 24];
    let mut offset = 0u64;
    loop {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(lower.clone());
        let mut it = db.raw_iterator_cf_opt(timer, ro);
        it.seek_to_first();
        let mut b = WriteBatch::default();
        let mut last = None;
        while it.valid() && b.len() < 2 * step {
            if let Some(k) = it.key() {
                let mut rk = [0u8; 12];
                rk[4..].copy_from_slice(&offset.to_be_bytes());
                offset += 1;
                let mut v = [0u8; 40];
                v[16..40].copy_from_slice(k);
                b.put_cf(ready, rk, v);
                b.single_delete_cf(timer, k);
                last = Some(k.to_vec());
            }
            it.next();
        }
        drop(it);
        let Some(mut l) = last else { break };
        db.write(b).map_err(|e| e.to_string())?;
        l.push(0);
        lower = l;
    }
    if offset != n {
        return Err(format!("raw move moved {offset} of {n}"));
    }
    Ok(start.elapsed())
}
