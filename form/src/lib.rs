//! bincode 2's standard form, written and read by hand: the engine's message records and
//! the wire's receive answers use it on their hot paths, where bincode's serde path costs
//! a writer call or a visitor per integer. Both crates use this one piece, so the form
//! is written down once.
//!
//! The form: an unsigned integer below 251 is one byte, else a marker (251, 252, 253,
//! 254) and its 2, 4, 8 or 16 bytes little-endian; a signed one is zigzagged first; a
//! string, byte buffer or list starts with its length (such an integer); an `Option` and
//! a `bool` are a 0 or 1 byte; an enum starts with its variant index.

use std::collections::BTreeMap;

/// The most bytes an integer of up to 64 bits takes.
pub const WIDEST_U64: usize = 9;
/// The most bytes a 128-bit integer takes.
pub const WIDEST_U128: usize = 17;

/// Writes `v` at the start of `b` (at least [`WIDEST_U64`] bytes); returns the bytes
/// written.
#[inline]
pub fn write_u64(b: &mut [u8], v: u64) -> usize {
    if v < 251 {
        b[0] = v as u8;
        1
    } else if let Ok(v) = u16::try_from(v) {
        b[0] = 251;
        b[1..3].copy_from_slice(&v.to_le_bytes());
        3
    } else if let Ok(v) = u32::try_from(v) {
        b[0] = 252;
        b[1..5].copy_from_slice(&v.to_le_bytes());
        5
    } else {
        b[0] = 253;
        b[1..9].copy_from_slice(&v.to_le_bytes());
        9
    }
}

/// Writes `v` at the start of `b` (at least [`WIDEST_U128`] bytes); returns the bytes
/// written.
#[inline]
pub fn write_u128(b: &mut [u8], v: u128) -> usize {
    match u64::try_from(v) {
        Ok(v) => write_u64(b, v),
        Err(_) => {
            b[0] = 254;
            b[1..17].copy_from_slice(&v.to_le_bytes());
            WIDEST_U128
        }
    }
}

/// Appends `v` to `out`.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    let mut b = [0; WIDEST_U64];
    let n = write_u64(&mut b, v);
    out.extend_from_slice(&b[..n]);
}

/// Appends a string or byte buffer: its length, then its bytes.
#[inline]
pub fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A signed integer as the unsigned one bincode writes: 0, -1, 1, -2 … as 0, 1, 2, 3 …
#[inline]
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The signed integer [`zigzag`] made `z` of.
#[inline]
pub fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

/// What a [`Reader`] refuses, in a few words.
pub type Read<T> = Result<T, &'static str>;

/// A cursor over bytes in the form, refusing what bincode refuses: a marker wider than
/// the field, a reserved marker, a flag other than 0 or 1, a string that is not UTF-8,
/// a length past the end.
pub struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    /// The bytes read so far.
    pub fn position(&self) -> usize {
        self.at
    }

    /// The bytes not read yet.
    pub fn left(&self) -> usize {
        self.b.len() - self.at
    }

    #[inline]
    pub fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        let end = self.at.checked_add(n).ok_or("a length past the end")?;
        let s = self.b.get(self.at..end).ok_or("the bytes end early")?;
        self.at = end;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    #[inline]
    pub fn byte(&mut self) -> Read<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// An `Option`'s or a `bool`'s byte.
    #[inline]
    pub fn flag(&mut self) -> Read<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("a flag other than 0 or 1"),
        }
    }

    /// An integer of a field at most `widest` bytes wide (2, 4, 8 or 16).
    #[inline]
    fn varint(&mut self, widest: usize) -> Read<u128> {
        let first = self.byte()?;
        let width = match first {
            0..=250 => return Ok(u128::from(first)),
            251 => 2,
            252 => 4,
            253 => 8,
            254 => 16,
            _ => return Err("a reserved integer marker"),
        };
        if width > widest {
            return Err("an integer wider than its field");
        }
        Ok(match width {
            2 => u128::from(u16::from_le_bytes(self.array()?)),
            4 => u128::from(u32::from_le_bytes(self.array()?)),
            8 => u128::from(u64::from_le_bytes(self.array()?)),
            _ => u128::from_le_bytes(self.array()?),
        })
    }

    #[inline]
    pub fn u32(&mut self) -> Read<u32> {
        u32::try_from(self.varint(4)?).map_err(|_| "an integer wider than its field")
    }

    #[inline]
    pub fn u64(&mut self) -> Read<u64> {
        u64::try_from(self.varint(8)?).map_err(|_| "an integer wider than its field")
    }

    #[inline]
    pub fn u128(&mut self) -> Read<u128> {
        self.varint(16)
    }

    #[inline]
    pub fn length(&mut self) -> Read<usize> {
        usize::try_from(self.u64()?).map_err(|_| "a length past the end")
    }

    /// A string's or byte buffer's bytes.
    #[inline]
    pub fn bytes(&mut self) -> Read<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    #[inline]
    pub fn string(&mut self) -> Read<String> {
        let s = std::str::from_utf8(self.bytes()?).map_err(|_| "a string that is not UTF-8")?;
        Ok(s.to_owned())
    }

    /// An `Option<String>`.
    #[inline]
    pub fn optional_string(&mut self) -> Read<Option<String>> {
        Ok(if self.flag()? {
            Some(self.string()?)
        } else {
            None
        })
    }

    /// A list of strings, reserving no more room than the bytes left could fill.
    #[inline]
    pub fn strings(&mut self) -> Read<Vec<String>> {
        let n = self.length()?;
        let mut v = Vec::with_capacity(self.room(n, 1));
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    /// A map of strings; a key given twice keeps its last value, as serde's map does.
    #[inline]
    pub fn string_map(&mut self) -> Read<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for _ in 0..self.length()? {
            let k = self.string()?;
            m.insert(k, self.string()?);
        }
        Ok(m)
    }

    /// Room to reserve for a list claiming `claimed` elements of at least `least` bytes
    /// each: no more than the bytes left could hold.
    pub fn room(&self, claimed: usize, least: usize) -> usize {
        claimed.min(self.left() / least.max(1))
    }
}

/// Integers at every edge of the form, for the proptests of the crates that use it.
#[cfg(any(test, feature = "strategies"))]
pub mod strategies {
    use proptest::prelude::*;

    /// 64-bit integers at and around each marker's range, and any.
    pub fn edgy_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(250),
            Just(251),
            Just(u64::from(u16::MAX)),
            Just(u64::from(u16::MAX) + 1),
            Just(u64::from(u32::MAX)),
            Just(u64::from(u32::MAX) + 1),
            Just(u64::MAX),
            any::<u64>(),
            0u64..300,
        ]
    }

    /// The same for 128-bit integers, with the widest form's edges.
    pub fn edgy_u128() -> impl Strategy<Value = u128> {
        prop_oneof![
            edgy_u64().prop_map(u128::from),
            Just(u128::from(u64::MAX) + 1),
            Just(u128::MAX),
            any::<u128>(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::edgy_u64;
    use super::*;
    use proptest::prelude::*;

    fn bincode_bytes<T: bincode::Encode>(v: T) -> Vec<u8> {
        bincode::encode_to_vec(v, bincode::config::standard()).expect("encodes")
    }

    proptest! {
        /// Integers, strings and signed integers are bincode's bytes and read back.
        #[test]
        fn the_form_is_bincodes(v in edgy_u64(), w in super::strategies::edgy_u128(), s in "\\PC{0,300}", i in any::<i64>()) {
            let mut out = Vec::new();
            put_u64(&mut out, v);
            prop_assert_eq!(&out, &bincode_bytes(v));
            let mut b = [0; WIDEST_U128];
            let n = write_u128(&mut b, w);
            prop_assert_eq!(&b[..n], &bincode_bytes(w)[..]);
            let mut text = Vec::new();
            put_bytes(&mut text, s.as_bytes());
            prop_assert_eq!(&text, &bincode_bytes(s.as_str()));
            prop_assert_eq!(unzigzag(zigzag(i)), i);
            let mut signed = Vec::new();
            put_u64(&mut signed, zigzag(i));
            prop_assert_eq!(&signed, &bincode_bytes(i));

            let mut all = out.clone();
            all.extend_from_slice(&b[..n]);
            all.extend_from_slice(&text);
            let mut r = Reader::new(&all);
            prop_assert_eq!(r.u64(), Ok(v));
            prop_assert_eq!(r.u128(), Ok(w));
            prop_assert_eq!(r.string(), Ok(s));
            prop_assert_eq!(r.left(), 0);
            prop_assert!(r.byte().is_err());
        }

        /// A field refuses a wider integer than it holds, as bincode does.
        #[test]
        fn a_field_refuses_wider_integers(v in any::<u64>()) {
            let b = bincode_bytes(v);
            let fits_u32 = u32::try_from(v).is_ok();
            prop_assert_eq!(Reader::new(&b).u32().is_ok(), fits_u32);
            let decoded = bincode::decode_from_slice::<u32, _>(&b, bincode::config::standard());
            prop_assert_eq!(decoded.is_ok(), fits_u32);
        }
    }

    #[test]
    fn reserved_markers_bad_flags_and_cut_input_are_refused() {
        assert!(Reader::new(&[255]).u64().is_err());
        assert!(Reader::new(&[254, 1]).u64().is_err());
        assert!(Reader::new(&[2]).flag().is_err());
        assert!(Reader::new(&[252, 1, 2]).u64().is_err());
        assert!(Reader::new(&[2, 0xff, 0xfe]).string().is_err());
        assert!(Reader::new(&[5, b'a']).bytes().is_err());
        assert_eq!(Reader::new(&[1, 0]).room(1_000_000, 1), 2);
        assert_eq!(Reader::new(&[1, 0, 0, 0]).room(3, 2), 2);
        let mut twice = vec![2];
        for s in ["k", "a", "k", "b"] {
            put_bytes(&mut twice, s.as_bytes());
        }
        let m = Reader::new(&twice).string_map().expect("reads");
        assert_eq!(m.get("k").map(String::as_str), Some("b"));
        assert!(Reader::new(&[3, 0]).strings().is_err());
        assert_eq!(Reader::new(&[0]).optional_string(), Ok(None));
    }
}
