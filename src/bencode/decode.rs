//! The decoder: a recursive descent over a byte slice with a depth limit.

use super::{Kind, Value};
use std::fmt;

/// The deepest nesting of lists and dictionaries the decoder accepts. Real torrents need
/// about five levels; the limit keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// What went wrong, and at which byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What went wrong.
    pub kind: DecodeErrorKind,
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
}

/// The ways bencode can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start a value (not `i`, `l`, `d` or a digit).
    UnexpectedByte(u8),
    /// An integer with no digits, a stray character, a leading zero or `-0`.
    BadInteger,
    /// An integer that does not fit in 64 signed bits.
    IntegerOverflow,
    /// A byte-string length with a leading zero, a non-digit or no digits, or no `:`.
    BadLength,
    /// A byte-string length that runs past the end of the input.
    LengthPastEnd,
    /// A dictionary key that is not a byte string.
    KeyNotBytes,
    /// A dictionary key that appears twice.
    DuplicateKey,
    /// Lists and dictionaries nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes left over after a complete top-level value.
    TrailingBytes,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => f.write_str("unexpected end of data"),
            Self::UnexpectedByte(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected byte '{}'", *b as char)
            }
            Self::UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x}"),
            Self::BadInteger => f.write_str("malformed integer"),
            Self::IntegerOverflow => f.write_str("integer out of 64-bit range"),
            Self::BadLength => f.write_str("malformed byte-string length"),
            Self::LengthPastEnd => f.write_str("byte-string length runs past the end of data"),
            Self::KeyNotBytes => f.write_str("dictionary key is not a byte string"),
            Self::DuplicateKey => f.write_str("duplicate dictionary key"),
            Self::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels"),
            Self::TrailingBytes => f.write_str("trailing bytes after the value"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.kind, self.offset)
    }
}

impl std::error::Error for DecodeError {}

/// Decodes exactly one value that fills the whole input.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    let (value, used) = decode_prefix(input)?;
    if used != input.len() {
        return Err(DecodeError {
            kind: DecodeErrorKind::TrailingBytes,
            offset: used,
        });
    }
    Ok(value)
}

/// Decodes one value from the start of the input and returns it with the number of bytes
/// it used; the rest of the input is left alone (protocol messages carry data after it).
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    let mut d = Decoder { input, pos: 0 };
    let value = d.value(0)?;
    Ok((value, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn err<T>(&self, kind: DecodeErrorKind, offset: usize) -> Result<T, DecodeError> {
        Err(DecodeError { kind, offset })
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        match self.input.get(self.pos) {
            Some(&b) => Ok(b),
            None => self.err(DecodeErrorKind::UnexpectedEnd, self.pos),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        let start = self.pos;
        let kind = match self.peek()? {
            b'i' => Kind::Int(self.int()?),
            b'0'..=b'9' => Kind::Bytes(self.bytes()?),
            b'l' | b'd' if depth >= MAX_DEPTH => {
                return self.err(DecodeErrorKind::TooDeep, start);
            }
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Kind::List(items)
            }
            b'd' => Kind::Dict(self.dict(depth)?),
            b => return self.err(DecodeErrorKind::UnexpectedByte(b), start),
        };
        Ok(Value {
            kind,
            raw: &self.input[start..self.pos],
        })
    }

    fn dict(&mut self, depth: usize) -> Result<Vec<(&'a [u8], Value<'a>)>, DecodeError> {
        self.pos += 1;
        let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
        let mut sorted = true;
        let mut key_offsets = Vec::new();
        while self.peek()? != b'e' {
            let key_at = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return self.err(DecodeErrorKind::KeyNotBytes, key_at);
            }
            let key = self.bytes()?;
            if let Some((last, _)) = entries.last() {
                match (*last).cmp(key) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return self.err(DecodeErrorKind::DuplicateKey, key_at);
                    }
                    std::cmp::Ordering::Greater => sorted = false,
                }
            }
            key_offsets.push(key_at);
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        if !sorted {
            // Out-of-order keys are tolerated, but a key given twice would let two parsers
            // disagree about the torrent, so look for duplicates among all of them.
            let mut order: Vec<usize> = (0..entries.len()).collect();
            order.sort_by(|&a, &b| entries[a].0.cmp(entries[b].0).then(a.cmp(&b)));
            for pair in order.windows(2) {
                if entries[pair[0]].0 == entries[pair[1]].0 {
                    return self.err(DecodeErrorKind::DuplicateKey, key_offsets[pair[1]]);
                }
            }
        }
        Ok(entries)
    }

    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let mut value: i64 = 0;
        loop {
            let b = self.peek()?;
            match b {
                b'0'..=b'9' => {
                    let d = i64::from(b - b'0');
                    // Accumulate negatively so that i64::MIN is representable.
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(d)
                            } else {
                                v.checked_add(d)
                            }
                        })
                        .ok_or(DecodeError {
                            kind: DecodeErrorKind::IntegerOverflow,
                            offset: start,
                        })?;
                    self.pos += 1;
                }
                b'e' => break,
                _ => return self.err(DecodeErrorKind::BadInteger, self.pos),
            }
        }
        let digits = &self.input[digits_at..self.pos];
        if digits.is_empty()
            || (digits.len() > 1 && digits[0] == b'0')
            || (negative && digits == b"0")
        {
            return self.err(DecodeErrorKind::BadInteger, start);
        }
        self.pos += 1; // 'e'
        Ok(value)
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        let mut len: usize = 0;
        loop {
            let b = self.peek()?;
            match b {
                b'0'..=b'9' => {
                    len = len
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(usize::from(b - b'0')))
                        .ok_or(DecodeError {
                            kind: DecodeErrorKind::LengthPastEnd,
                            offset: start,
                        })?;
                    self.pos += 1;
                }
                b':' => break,
                _ => return self.err(DecodeErrorKind::BadLength, self.pos),
            }
        }
        let digits = self.pos - start;
        if digits == 0 || (digits > 1 && self.input[start] == b'0') {
            return self.err(DecodeErrorKind::BadLength, start);
        }
        self.pos += 1; // ':'
        let rest = self.input.len() - self.pos;
        if len > rest {
            return self.err(DecodeErrorKind::LengthPastEnd, start);
        }
        let s = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(s)
    }
}
