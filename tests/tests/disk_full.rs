//! Disk full (SPEC §5): on a 64 MiB tmpfs when the test runs as root (else on a 32 MiB
//! disk budget), a producer fills the store until sends are refused with
//! `StorageFull`. The daemon keeps running and is not stopped by a failed write,
//! receives and acks keep working, nothing acknowledged is lost, a Timing message
//! stays, and once acked data is freed sends succeed again.

use rand::Rng;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use sundial_tests::Daemon;
use sundial_wire::{
    now_ms, ClientError, ErrorCode, OutgoingMessage, ReceiveOptions, StartFrom, TopicType,
};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a `size` tmpfs at `at` when running as root; `None` otherwise.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        std::fs::create_dir_all(at).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let done = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_sends_keeps_consumers_working_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mount = Tmpfs::mount(&dir.path().join("fs"), "64m");
    let (data, extra): (PathBuf, Vec<&str>) = match &mount {
        Some(m) => (m.0.join("data"), vec![]),
        None => {
            eprintln!("not root: a 32 MiB disk budget stands in for a small filesystem");
            (
                dir.path().join("data"),
                vec!["--disk-high-watermark-bytes", "33554432"],
            )
        }
    };
    let mut d = Daemon::start(&data, &extra);
    let c = d.client().await;
    c.create_topic("d", TopicType::Mixed).await.unwrap();
    c.create_group("d", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let timing = c
        .send(OutgoingMessage::new("d", "an hour from now").deliver_at(now_ms() + 3_600_000))
        .await
        .unwrap();

    // Fill: batches of 16 messages of 16 KiB until sends have been refused for 3 s
    // (a refusal wakes a maintenance pass, which measures again and may find room).
    // Random bodies: compression must not make room the test did not ask for.
    let mut rng = rand::rng();
    let mut receipted = HashSet::new();
    let mut refusal = None;
    let mut refused_since: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    while refused_since.is_none_or(|t| t.elapsed() < Duration::from_secs(3))
        && Instant::now() < deadline
    {
        let batch = (0..16)
            .map(|_| {
                let body: Vec<u8> = (0..16 * 1024).map(|_| rng.random()).collect();
                OutgoingMessage::new("d", body)
            })
            .collect();
        let mut refused = false;
        match c.send_batch(batch).await {
            Ok(rs) => {
                for r in rs {
                    match r {
                        Ok(r) => {
                            receipted.insert(r.message_id);
                        }
                        Err(f) => (refusal, refused) = (Some(f.code), true),
                    }
                }
            }
            Err(ClientError::Refused(f)) => (refusal, refused) = (Some(f.code), true),
            Err(e) => panic!(
                "the daemon failed instead of refusing: {e}\n{}",
                d.log_text()
            ),
        }
        if refused {
            refused_since.get_or_insert_with(Instant::now);
            tokio::time::sleep(Duration::from_millis(50)).await;
        } else {
            refused_since = None;
        }
    }
    assert_eq!(refusal, Some(ErrorCode::StorageFull), "{}", d.log_text());
    assert!(refused_since.is_some(), "sends were never refused for long");
    let filled_mib = receipted.len() as f64 * 16.0 / 1024.0;
    let mib = |name| d.metric(name).unwrap_or(0.0) / 1048576.0;
    let at_refusal = format!(
        "data dir {:.1} MiB, filesystem {:.1} of {:.1} MiB used",
        mib("sundial_disk_bytes"),
        mib("sundial_filesystem_used_bytes"),
        mib("sundial_filesystem_size_bytes")
    );
    assert!(filled_mib > 4.0, "only {filled_mib} MiB accepted");
    assert_eq!(d.metric("sundial_storage_full"), Some(1.0));
    assert_eq!(
        d.metric("sundial_storage_poisoned"),
        Some(0.0),
        "no write failed"
    );
    let r = c.send(OutgoingMessage::new("d", "small")).await;
    assert!(
        matches!(&r, Err(ClientError::Refused(f)) if f.code == ErrorCode::StorageFull),
        "{r:?}"
    );

    // Receives and acks keep working; everything acknowledged is there.
    let o = ReceiveOptions {
        max_messages: 64,
        wait: Duration::from_millis(200),
        ..ReceiveOptions::default()
    };
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !receipted.is_subset(&seen) && Instant::now() < deadline {
        let got = c.receive("d", "g", &o).await.unwrap();
        let receipts = got.iter().map(|m| m.receipt_handle).collect();
        for m in got {
            seen.insert(m.message_id);
        }
        for r in c.ack("d", "g", receipts).await.unwrap() {
            r.unwrap();
        }
    }
    let lost = receipted.difference(&seen).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged sends lost",
        receipted.len()
    );

    // Acked data is deleted by the next maintenance pass; then sends are taken again.
    let started = Instant::now();
    let mut again = None;
    while again.is_none() && started.elapsed() < Duration::from_secs(60) {
        match c.send(OutgoingMessage::new("d", "after")).await {
            Ok(r) => again = Some(r),
            Err(ClientError::Refused(f)) if f.code == ErrorCode::StorageFull => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    let again = again.unwrap_or_else(|| {
        let files: Vec<String> = std::fs::read_dir(&data)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        format!("{} {len}", e.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "sends are still refused after the acks: data dir {:.1} MiB, filesystem {:.1} MiB \
             used; files {files:?}\n{}",
            mib("sundial_disk_bytes"),
            mib("sundial_filesystem_used_bytes"),
            d.log_text()
        )
    });
    eprintln!(
        "disk full ({}): {} sends ({filled_mib:.1} MiB) accepted before StorageFull \
         ({at_refusal}), all received; sends accepted again {} ms after the acks",
        if mount.is_some() {
            "64 MiB tmpfs"
        } else {
            "32 MiB budget"
        },
        receipted.len(),
        started.elapsed().as_millis()
    );
    assert_eq!(d.metric("sundial_storage_full"), Some(0.0));

    drop(c);
    let status = d.stop();
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    let d = Daemon::start(&data, &extra);
    let c = d.client().await;
    assert_eq!(
        c.show_message(&timing.message_id).await.unwrap().state,
        "Timing"
    );
    let got = c.receive("d", "g", &o).await.unwrap();
    assert_eq!(
        got.iter().map(|m| &m.message_id).collect::<Vec<_>>(),
        vec![&again.message_id]
    );
    drop(c);
    drop(d);
    drop(mount);
}

/// Sends until one is refused with `StorageFull` (within `limit`); returns the ids of
/// those accepted on the way.
async fn send_until_refused(c: &sundial_wire::Client, limit: Duration) -> (Vec<String>, bool) {
    let mut accepted = Vec::new();
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match c.send(OutgoingMessage::new("d", vec![7u8; 4096])).await {
            Ok(r) => accepted.push(r.message_id.to_string()),
            Err(ClientError::Refused(f)) if f.code == ErrorCode::StorageFull => {
                return (accepted, true)
            }
            Err(e) => panic!("a full disk must refuse with StorageFull, not {e}"),
        }
    }
    (accepted, false)
}

/// Another process fills the file system under the data directory, then frees it: the
/// daemon refuses sends with `StorageFull` (not a crash, not a poisoned store), its
/// counts stay exact, and once the space is back sends and acks work again without a
/// restart; a restart afterwards finds every acknowledged send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_system_filled_from_outside_refuses_sends_until_freed_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // RocksDB resumes writing after a full disk once one memtable's worth (64 MiB) is
    // free, so the file system is larger than that.
    let Some(mount) = Tmpfs::mount(&dir.path().join("fs"), "160m") else {
        eprintln!("not root: no tmpfs to fill from outside; skipped");
        return;
    };
    // The data directory is the tmpfs itself, so the daemon's log (written next to it)
    // is not on the file system the test fills.
    let data = mount.0.clone();
    let mut d = Daemon::start(&data, &[]);
    let c = d.client().await;
    c.create_topic("d", TopicType::Mixed).await.unwrap();
    c.create_group("d", "g", StartFrom::Earliest, None)
        .await
        .unwrap();
    let mut accepted: Vec<String> = Vec::new();
    for i in 0..6 {
        let r = c
            .send(OutgoingMessage::new("d", format!("m{i}")))
            .await
            .unwrap();
        accepted.push(r.message_id.to_string());
    }
    let o = ReceiveOptions {
        max_messages: 2,
        wait: Duration::from_millis(500),
        invisible: Duration::from_secs(600),
        ..ReceiveOptions::default()
    };
    let held = c.receive("d", "g", &o).await.unwrap();
    assert_eq!(held.len(), 2);

    // Fill the file system from outside until dd itself runs out of space.
    let filler = mount.0.join("filler");
    let dd = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "status=none"])
        .arg(format!("of={}", filler.display()))
        .status()
        .expect("run dd");
    assert!(!dd.success(), "dd stops with 'no space left'");
    let (more, refused) = send_until_refused(&c, Duration::from_secs(30)).await;
    accepted.extend(more);
    assert!(refused, "sends were never refused\n{}", d.log_text());
    assert_eq!(
        d.metric("sundial_storage_poisoned"),
        Some(0.0),
        "a full disk does not poison the store\n{}",
        d.log_text()
    );
    // The topic's live counters (`stats` may answer from a report up to 250 ms old).
    let sent = |t: sundial_wire::TopicCounts| Some(t.sent);
    assert_eq!(
        sent(c.show_topic("d").await.unwrap()),
        Some(accepted.len() as u64),
        "a refused send is not counted"
    );

    // Free the space: writes resume by themselves, in the same process.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut resumed = None;
    while resumed.is_none() && Instant::now() < deadline {
        match c.send(OutgoingMessage::new("d", "after")).await {
            Ok(r) => resumed = Some(r.message_id.to_string()),
            Err(ClientError::Refused(f)) if f.code == ErrorCode::StorageFull => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{e}\n{}", d.log_text()),
        }
    }
    let resumed = resumed.unwrap_or_else(|| panic!("sends still refused\n{}", d.log_text()));
    accepted.push(resumed);
    let receipts = held.iter().map(|m| m.receipt_handle).collect();
    for r in c.ack("d", "g", receipts).await.unwrap() {
        r.unwrap();
    }
    assert_eq!(
        sent(c.show_topic("d").await.unwrap()),
        Some(accepted.len() as u64)
    );

    // Nothing acknowledged was lost, also across a restart.
    d.stop();
    let d = Daemon::start(&data, &[]);
    let c = d.client().await;
    let mut seen: HashSet<String> = held.iter().map(|m| m.message_id.to_string()).collect();
    let o = ReceiveOptions {
        max_messages: 64,
        wait: Duration::from_millis(200),
        ..ReceiveOptions::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < accepted.len() && Instant::now() < deadline {
        let got = c.receive("d", "g", &o).await.unwrap();
        let receipts = got.iter().map(|m| m.receipt_handle).collect();
        seen.extend(got.iter().map(|m| m.message_id.to_string()));
        for r in c.ack("d", "g", receipts).await.unwrap() {
            r.unwrap();
        }
    }
    let missing: Vec<_> = accepted.iter().filter(|id| !seen.contains(*id)).collect();
    assert!(missing.is_empty(), "lost {missing:?}");
    eprintln!(
        "filled from outside: {} sends accepted in all, every one delivered after a restart",
        accepted.len()
    );
}
