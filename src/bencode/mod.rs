//! Bencode (BEP 3): a strict, borrowing decoder and a sorted-key encoder.
//!
//! The decoder ([`decode`], [`decode_prefix`]) borrows every byte string from its input and
//! keeps, for every value, the exact bytes it was decoded from ([`Value::raw`]): the info-hash
//! is the SHA-1 of the `info` dictionary as it appears in the file, never of a re-encoding.
//!
//! Strict where BEP 3 is strict: integers have no leading zeros and no `-0`, byte-string
//! lengths have no leading zeros and must fit the input, dictionary keys are byte strings and
//! appear once. Keys out of order are accepted (real torrents have them; the raw bytes are what
//! gets hashed). Nesting is limited to [`MAX_DEPTH`]. Every error names what went wrong and the
//! byte offset where it did.
//!
//! The encoder ([`Item`], [`Item::encode`]) writes dictionaries with sorted keys, as BEP 3
//! requires, because its dictionaries are `BTreeMap`s.

mod decode;
mod encode;

pub use decode::{DecodeError, DecodeErrorKind, MAX_DEPTH, decode, decode_prefix};
pub use encode::Item;

/// A decoded bencode value, borrowing from the input it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value<'a> {
    kind: Kind<'a>,
    raw: &'a [u8],
}

/// The four bencode types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `i…e`
    Int(i64),
    /// `N:…`
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`, entries in the order they appear in the input.
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value's type and contents.
    pub fn kind(&self) -> &Kind<'a> {
        &self.kind
    }

    /// The exact input bytes this value was decoded from.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self.kind {
            Kind::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::List(l) => Some(l),
            _ => None,
        }
    }

    /// The dictionary entries, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match &self.kind {
            Kind::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key`, if this is a dictionary that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Int(_) => "integer",
            Kind::Bytes(_) => "byte string",
            Kind::List(_) => "list",
            Kind::Dict(_) => "dictionary",
        }
    }
}

#[cfg(test)]
mod tests;
