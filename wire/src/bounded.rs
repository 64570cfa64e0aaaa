//! A serde adapter that keeps [`decode`](crate::decode)'s allocations proportional to
//! the payload: one wrapper, [`Bounded`], put around every deserializer, visitor, seed
//! and access object, so that it applies at every depth of a nested value.

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use std::fmt;

/// Most elements a list or map may reserve room for before they are decoded: enough
/// to spare small lists from regrowing, too few to matter whatever length is claimed.
const PREALLOC: usize = 16;

/// No limit on the elements of a list or map (answers: a topic list is as long as the
/// topics are many).
pub(crate) const UNLIMITED: usize = usize::MAX;

/// Refuses a list or map that claims more than `MAX` elements, before any of them is
/// decoded (bincode states the length first, and serde passes it on as the size hint).
fn within<E: de::Error, const MAX: usize>(claimed: Option<usize>) -> Result<(), E> {
    match claimed {
        Some(n) if n > MAX => Err(E::custom(format_args!(
            "a list of {n} elements, over the {MAX} a request may hold"
        ))),
        _ => Ok(()),
    }
}

/// Wraps one part of a deserialization (a deserializer, a visitor, a seed, or a
/// sequence, map, enum or variant access) and forwards to it, except that owned
/// strings and byte buffers are requested as borrowed ones (bincode then checks
/// their length against the bytes left before anything is allocated, and the
/// visitor copies exactly what is there), size hints are capped at [`PREALLOC`], and a
/// list or map claiming more than `MAX` elements is refused before it is decoded.
pub(crate) struct Bounded<T, const MAX: usize>(pub(crate) T);

/// Forwards deserializer methods that take only a visitor, wrapping the visitor.
macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method(Bounded::<_, MAX>(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>, const MAX: usize> Deserializer<'de> for Bounded<D, MAX> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
        deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
        deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_bytes deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_str(Bounded::<_, MAX>(visitor))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_bytes(Bounded::<_, MAX>(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_unit_struct(name, Bounded::<_, MAX>(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_newtype_struct(name, Bounded::<_, MAX>(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_tuple(len, Bounded::<_, MAX>(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Bounded::<_, MAX>(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_struct(name, fields, Bounded::<_, MAX>(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0
            .deserialize_enum(name, variants, Bounded::<_, MAX>(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Forwards visitor methods that take a plain value.
macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>, const MAX: usize> Visitor<'de> for Bounded<V, MAX> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_f64: f64 visit_char: char
        visit_str: &str visit_borrowed_str: &'de str visit_string: String
        visit_bytes: &[u8] visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Bounded::<_, MAX>(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(Bounded::<_, MAX>(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        within::<A::Error, MAX>(seq.size_hint())?;
        self.0.visit_seq(Bounded::<_, MAX>(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        within::<A::Error, MAX>(map.size_hint())?;
        self.0.visit_map(Bounded::<_, MAX>(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(Bounded::<_, MAX>(data))
    }
}

impl<'de, S: DeserializeSeed<'de>, const MAX: usize> DeserializeSeed<'de> for Bounded<S, MAX> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Bounded::<_, MAX>(d))
    }
}

impl<'de, A: SeqAccess<'de>, const MAX: usize> SeqAccess<'de> for Bounded<A, MAX> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, A::Error> {
        self.0.next_element_seed(Bounded::<_, MAX>(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint().map(|n| n.min(PREALLOC))
    }
}

impl<'de, A: MapAccess<'de>, const MAX: usize> MapAccess<'de> for Bounded<A, MAX> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Bounded::<_, MAX>(seed))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.0.next_value_seed(Bounded::<_, MAX>(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint().map(|n| n.min(PREALLOC))
    }
}

impl<'de, A: EnumAccess<'de>, const MAX: usize> EnumAccess<'de> for Bounded<A, MAX> {
    type Error = A::Error;
    type Variant = Bounded<A::Variant, MAX>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Bounded::<_, MAX>(seed))?;
        Ok((value, Bounded::<_, MAX>(variant)))
    }
}

impl<'de, A: VariantAccess<'de>, const MAX: usize> VariantAccess<'de> for Bounded<A, MAX> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.0.newtype_variant_seed(Bounded::<_, MAX>(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Bounded::<_, MAX>(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Bounded::<_, MAX>(visitor))
    }
}
