//! Time comes from an injected clock so tests move time instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of Unix-millisecond time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// How long a waiter should sleep to reach `deadline_ms`; `None` means "until woken"
    /// (a manual clock wakes its waiters itself when it moves).
    fn sleep_hint(&self, deadline_ms: u64) -> Option<Duration>;
    /// Registers a waiter to be woken whenever the clock moves (manual clocks only).
    fn subscribe(&self, _wake: Weak<Wake>) {}
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn sleep_hint(&self, deadline_ms: u64) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let deadline = Duration::from_millis(deadline_ms);
        Some(deadline.saturating_sub(now))
    }
}

/// A clock that only moves when told to; waiters are woken on every move.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
    waiters: Mutex<Vec<Weak<Wake>>>,
}

impl ManualClock {
    /// A manual clock reading `start_ms`.
    pub fn new(start_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            now: AtomicU64::new(start_ms),
            waiters: Mutex::new(Vec::new()),
        })
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.wake_all();
    }

    /// Sets the clock to `ms` (which may move it backwards; the engine never goes back).
    pub fn set(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
        self.wake_all();
    }

    fn wake_all(&self) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.retain(|w| match w.upgrade() {
            Some(wake) => {
                wake.kick();
                true
            }
            None => false,
        });
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_hint(&self, _deadline_ms: u64) -> Option<Duration> {
        None
    }

    fn subscribe(&self, wake: Weak<Wake>) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
    }
}

/// A one-bit wake-up signal for a background thread.
#[derive(Debug, Default)]
pub struct Wake {
    kicked: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    /// Wakes the waiter (or makes its next wait return at once).
    pub fn kick(&self) {
        let mut k = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
        *k = true;
        self.cv.notify_all();
    }

    /// Waits until kicked or until `timeout` passes (`None`: no timeout).
    pub fn wait(&self, timeout: Option<Duration>) {
        let mut k = self.kicked.lock().unwrap_or_else(|p| p.into_inner());
        if !*k {
            k = match timeout {
                Some(t) => {
                    self.cv
                        .wait_timeout(k, t)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.cv.wait(k).unwrap_or_else(|p| p.into_inner()),
            };
        }
        *k = false;
    }
}
