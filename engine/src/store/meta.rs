//! A message record's metadata (topic, tag, keys, properties, birth and requested
//! times, whether the time was adjusted), written and read field by field: the bytes
//! bincode 2's standard configuration makes of it, so records written before read the
//! same. Through serde, every integer and string went through `std::io::Write` or a
//! visitor; every send writes this and every delivery reads it.
//!
//! The form: an unsigned integer below 251 is one byte, else a marker (251, 252, 253)
//! and its 2, 4 or 8 bytes little-endian; a signed one is zigzagged first; a string or
//! list starts with its length; an `Option` and a `bool` are a 0 or 1 byte.

use std::collections::BTreeMap;

/// Appends the metadata to `v`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_into(
    v: &mut Vec<u8>,
    topic: &str,
    tag: Option<&str>,
    keys: &[String],
    properties: &BTreeMap<String, String>,
    born_ms: u64,
    requested_ms: Option<i64>,
    adjusted: bool,
) {
    put_str(v, topic);
    match tag {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            put_str(v, t);
        }
    }
    put_int(v, keys.len() as u64);
    for k in keys {
        put_str(v, k);
    }
    put_int(v, properties.len() as u64);
    for (k, val) in properties {
        put_str(v, k);
        put_str(v, val);
    }
    put_int(v, born_ms);
    match requested_ms {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            // Zigzag: 0, -1, 1, -2 … as 0, 1, 2, 3 …
            put_int(v, ((t << 1) ^ (t >> 63)) as u64);
        }
    }
    v.push(u8::from(adjusted));
}

fn put_int(v: &mut Vec<u8>, n: u64) {
    if n < 251 {
        v.push(n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        v.push(251);
        v.extend_from_slice(&n.to_le_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        v.push(252);
        v.extend_from_slice(&n.to_le_bytes());
    } else {
        v.push(253);
        v.extend_from_slice(&n.to_le_bytes());
    }
}

fn put_str(v: &mut Vec<u8>, s: &str) {
    put_int(v, s.len() as u64);
    v.extend_from_slice(s.as_bytes());
}

/// The metadata, decoded; `topic` is `None` when the reader skipped it.
pub(crate) struct Fields {
    pub topic: Option<String>,
    pub tag: Option<String>,
    pub keys: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub born_ms: u64,
    pub requested_ms: Option<i64>,
    pub adjusted: bool,
}

/// Reads the metadata; `with_topic: false` skips the topic unchecked (a delivery's
/// receiver knows it). `None`: not well-formed.
pub(crate) fn decode(b: &[u8], with_topic: bool) -> Option<Fields> {
    let mut r = Reader(b);
    let topic = if with_topic {
        Some(r.string()?)
    } else {
        r.bytes()?;
        None
    };
    let tag = if r.flag()? { Some(r.string()?) } else { None };
    let n = r.len()?;
    let mut keys = Vec::with_capacity(n.min(r.0.len()));
    for _ in 0..n {
        keys.push(r.string()?);
    }
    let mut properties = BTreeMap::new();
    for _ in 0..r.len()? {
        let k = r.string()?;
        properties.insert(k, r.string()?);
    }
    let born_ms = r.int()?;
    let requested_ms = match r.flag()? {
        false => None,
        // Zigzag back.
        true => r.int().map(|z| ((z >> 1) as i64) ^ -((z & 1) as i64)),
    };
    let adjusted = r.flag()?;
    Some(Fields {
        topic,
        tag,
        keys,
        properties,
        born_ms,
        requested_ms,
        adjusted,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    /// An `Option`'s or a `bool`'s byte: 0 or 1, nothing else.
    fn flag(&mut self) -> Option<bool> {
        match self.byte()? {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    fn int(&mut self) -> Option<u64> {
        Some(match self.byte()? {
            n @ 0..=250 => u64::from(n),
            251 => u64::from(u16::from_le_bytes(self.take(2)?.try_into().ok()?)),
            252 => u64::from(u32::from_le_bytes(self.take(4)?.try_into().ok()?)),
            253 => u64::from_le_bytes(self.take(8)?.try_into().ok()?),
            _ => return None,
        })
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.int()?).ok()
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// bincode's serde path, the form records were written in before.
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Reference {
        topic: String,
        tag: Option<String>,
        keys: Vec<String>,
        properties: BTreeMap<String, String>,
        born_ms: u64,
        requested_ms: Option<i64>,
        adjusted: bool,
    }

    fn edgy_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(250u64),
            Just(251),
            Just(u64::from(u16::MAX)),
            Just(u64::from(u16::MAX) + 1),
            Just(u64::from(u32::MAX)),
            Just(u64::from(u32::MAX) + 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    proptest! {
        /// Written by hand, the metadata is bincode's bytes; read by hand, it is what
        /// bincode reads, and a cut record is refused rather than misread.
        #[test]
        fn metadata_is_bincodes_bytes_both_ways(
            topic in "\\PC{0,40}",
            tag in proptest::option::of("\\PC{0,300}"),
            keys in proptest::collection::vec("\\PC{0,20}", 0..5),
            properties in proptest::collection::btree_map("\\PC{1,12}", "\\PC{0,300}", 0..5),
            born_ms in edgy_u64(),
            requested_ms in proptest::option::of(any::<i64>()),
            adjusted in any::<bool>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let want = Reference { topic, tag, keys, properties, born_ms, requested_ms, adjusted };
            let mut v = Vec::new();
            encode_into(
                &mut v, &want.topic, want.tag.as_deref(), &want.keys, &want.properties,
                want.born_ms, want.requested_ms, want.adjusted,
            );
            let bincode_bytes = bincode::serde::encode_to_vec(&want, bincode::config::standard())
                .expect("encodes");
            prop_assert_eq!(&v, &bincode_bytes);
            let got = decode_delivery(&v).expect("decodes");
            prop_assert_eq!(
                (&got.tag, &got.keys, &got.properties, got.born_ms),
                (&want.tag, &want.keys, &want.properties, want.born_ms)
            );
            let all = decode(&v, true).expect("decodes");
            prop_assert_eq!(
                (all.topic.as_ref(), all.requested_ms, all.adjusted),
                (Some(&want.topic), want.requested_ms, want.adjusted)
            );
            // Cut anywhere up to the birth time's end: refused.
            let (back, _): (Reference, _) =
                bincode::serde::decode_from_slice(&v, bincode::config::standard()).expect("decodes");
            prop_assert_eq!(back, want);
            // What follows the birth time: the requested time's flag (and value) and
            // the adjusted flag.
            let needed = v.len() - 2 - requested_ms.map_or(0, zigzag_len);
            let at = cut.index(needed);
            prop_assert!(decode_delivery(&v[..at]).is_none(), "cut at {} of {}", at, needed);
        }
    }

    /// The delivery's read: the topic skipped.
    fn decode_delivery(b: &[u8]) -> Option<Fields> {
        decode(b, false)
    }

    fn zigzag_len(t: i64) -> usize {
        let mut v = Vec::new();
        put_int(&mut v, ((t << 1) ^ (t >> 63)) as u64);
        v.len()
    }

    #[test]
    fn a_bad_tag_flag_or_text_is_refused() {
        let mut v = Vec::new();
        encode_into(
            &mut v,
            "t",
            Some("é"),
            &[],
            &BTreeMap::new(),
            1,
            None,
            false,
        );
        let good = decode_delivery(&v).expect("decodes");
        assert_eq!(good.tag.as_deref(), Some("é"));
        let mut flag = v.clone();
        flag[2] = 2;
        assert!(decode_delivery(&flag).is_none());
        let mut text = v.clone();
        text[4] = 0xff;
        assert!(decode_delivery(&text).is_none());
    }
}
