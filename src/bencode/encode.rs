//! The encoder: a value tree whose dictionaries keep their keys sorted.

use super::{Kind, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// A bencode value to be written. Dictionaries are `BTreeMap`s, so keys come out sorted
/// (as raw bytes) and unique, as BEP 3 requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'a> {
    /// An integer.
    Int(i64),
    /// A byte string.
    Bytes(Cow<'a, [u8]>),
    /// A list.
    List(Vec<Item<'a>>),
    /// A dictionary.
    Dict(BTreeMap<Cow<'a, [u8]>, Item<'a>>),
    /// Bytes that are already bencoded, written as they are (the caller vouches for them).
    Raw(Cow<'a, [u8]>),
}

impl<'a> Item<'a> {
    /// A byte string borrowed from `b`.
    pub fn bytes(b: &'a [u8]) -> Self {
        Item::Bytes(Cow::Borrowed(b))
    }

    /// A byte string holding `s`.
    pub fn str(s: &'a str) -> Self {
        Item::Bytes(Cow::Borrowed(s.as_bytes()))
    }

    /// An empty dictionary, to be filled with [`Item::insert`].
    pub fn dict() -> Self {
        Item::Dict(BTreeMap::new())
    }

    /// Sets `key` to `value` if this is a dictionary (does nothing otherwise).
    pub fn insert(&mut self, key: &'a str, value: Item<'a>) {
        if let Item::Dict(map) = self {
            map.insert(Cow::Borrowed(key.as_bytes()), value);
        }
    }

    /// Appends the encoding to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Item::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Item::Bytes(b) => encode_bytes(b, out),
            Item::Raw(b) => out.extend_from_slice(b),
            Item::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode_into(out);
                }
                out.push(b'e');
            }
            Item::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    encode_bytes(k, out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The encoding as a new buffer.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

impl<'a> From<&Value<'a>> for Item<'a> {
    /// Converts a decoded value for re-encoding (keys get sorted on the way out).
    fn from(v: &Value<'a>) -> Self {
        match v.kind() {
            Kind::Int(i) => Item::Int(*i),
            Kind::Bytes(b) => Item::bytes(b),
            Kind::List(l) => Item::List(l.iter().map(Item::from).collect()),
            Kind::Dict(d) => Item::Dict(
                d.iter()
                    .map(|(k, v)| (Cow::Borrowed(*k), Item::from(v)))
                    .collect(),
            ),
        }
    }
}
