//! What the messages of every scenario carry. By default each body is fresh random
//! bytes: real bodies (JSON, protobuf, images) compress a few times at most, while a
//! constant body compresses almost to nothing in RocksDB's LZ4 blocks (and not at all in
//! the Redis peer), which flatters sundial's disk and write figures. `--bodies
//! compressible` keeps the constant bodies of earlier runs, for comparison.

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether bodies are constant (`--bodies compressible`).
static COMPRESSIBLE: AtomicBool = AtomicBool::new(false);

/// The kind of body every scenario of this run sends.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Kind {
    /// Fresh random bytes per message: incompressible.
    #[default]
    Random,
    /// The same byte repeated, as earlier runs sent.
    Compressible,
}

impl Kind {
    /// The name the reports print.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Random => "random",
            Kind::Compressible => "compressible",
        }
    }
}

/// Sets the kind for the whole run.
pub fn set(kind: Kind) {
    COMPRESSIBLE.store(kind == Kind::Compressible, Ordering::Relaxed);
}

/// The kind of this run.
pub fn kind() -> Kind {
    if COMPRESSIBLE.load(Ordering::Relaxed) {
        Kind::Compressible
    } else {
        Kind::Random
    }
}

thread_local! {
    /// A fast generator per thread, seeded from the OS's: bodies need bytes no
    /// compressor can shrink, not secrets, and a cryptographic generator cost the load
    /// generator about 600 instructions per 256-byte body.
    static BODIES: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// One message's body of `template`'s length: a copy of it, or random bytes.
pub fn body(template: &[u8]) -> Vec<u8> {
    match kind() {
        Kind::Compressible => template.to_vec(),
        Kind::Random => {
            let mut b = vec![0u8; template.len()];
            BODIES.with(|r| r.borrow_mut().fill_bytes(&mut b));
            b
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bodies_differ_and_compressible_ones_copy() {
        let t = vec![b'x'; 256];
        set(Kind::Random);
        let (a, b) = (body(&t), body(&t));
        assert_eq!(a.len(), 256);
        assert_ne!(a, b, "two random bodies were equal");
        assert_ne!(a, t);
        // Not a repeated byte: at least 100 distinct values in 256 random bytes.
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 100, "{}", distinct.len());
        set(Kind::Compressible);
        assert_eq!(body(&t), t);
        set(Kind::Random);
    }
}
