//! Floods (see `sundial_tests::flood`): 2,000 idle connections, a client that never
//! reads, producers at full rate. The daemon accepts and keeps every idle connection,
//! keeps taking the flood, and the well-behaved client keeps being served. Its latency
//! ratio is measured on a release build by `sundial-bench flood`; this debug build only
//! bounds it loosely.

use std::time::Duration;
use sundial_tests::flood::{self, quantile, FloodOptions};
use sundial_tests::Daemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_well_behaved_client_is_served_through_floods() {
    // The test process holds 2,000+ sockets; the daemon raises its own limit.
    flood::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(&dir.path().join("data"), &[]);
    let r = flood::run(&d.addr, &FloodOptions::default()).await.unwrap();
    eprintln!("floods (debug build): {}", r.summary());

    let connections = d.metric("sundial_connections").unwrap_or(0.0);
    assert!(connections >= 2_000.0, "{connections} connections open");
    assert!(
        r.flood_msgs_per_s > 1_000.0,
        "the producers were not flooding"
    );
    assert!(
        r.deaf_requests > 0,
        "the never-reading client wrote nothing"
    );
    // Loose: a debug daemon sharing 2 cores with the flood's own clients.
    assert!(
        quantile(&r.loaded, 0.99) < Duration::from_secs(1),
        "{}",
        r.summary()
    );
    // Every idle connection still works.
    for c in [&r.idle[0], &r.idle[1_999]] {
        assert_eq!(c.stats().await.unwrap().early_deliveries, 0);
    }
}
