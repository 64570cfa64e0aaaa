//! A message record's metadata (topic, tag, keys, properties, birth and requested
//! times, whether the time was adjusted), written and read field by field: the bytes
//! bincode 2's standard configuration makes of it, so records written before read the
//! same. Through serde, every integer and string went through `std::io::Write` or a
//! visitor; every send writes this and every delivery reads it. The form is written
//! and read with `sundial_form`, which the wire's receive answers share.

use std::collections::BTreeMap;
use sundial_form::{put_bytes, put_u64, unzigzag, zigzag, Reader};

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
    put_bytes(v, topic.as_bytes());
    match tag {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            put_bytes(v, t.as_bytes());
        }
    }
    put_u64(v, keys.len() as u64);
    for k in keys {
        put_bytes(v, k.as_bytes());
    }
    put_u64(v, properties.len() as u64);
    for (k, val) in properties {
        put_bytes(v, k.as_bytes());
        put_bytes(v, val.as_bytes());
    }
    put_u64(v, born_ms);
    match requested_ms {
        None => v.push(0),
        Some(t) => {
            v.push(1);
            put_u64(v, zigzag(t));
        }
    }
    v.push(u8::from(adjusted));
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
    read(&mut Reader::new(b), with_topic).ok()
}

fn read(r: &mut Reader<'_>, with_topic: bool) -> sundial_form::Read<Fields> {
    let topic = if with_topic {
        Some(r.string()?)
    } else {
        r.bytes()?;
        None
    };
    let tag = r.optional_string()?;
    let keys = r.strings()?;
    let properties = r.string_map()?;
    let born_ms = r.u64()?;
    let requested_ms = if r.flag()? {
        Some(unzigzag(r.u64()?))
    } else {
        None
    };
    let adjusted = r.flag()?;
    Ok(Fields {
        topic,
        tag,
        keys,
        properties,
        born_ms,
        requested_ms,
        adjusted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sundial_form::strategies::edgy_u64;

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
        put_u64(&mut v, zigzag(t));
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
