//! The peer wire protocol as a codec: BEP 3's messages, BEP 6's Fast messages and BEP 10's
//! extended message (its payload is decoded by [`crate::ext`]). Bytes in, messages out, and
//! back. Decoding
//! borrows from the input, so a 16 KiB block is never copied until it lands in its piece
//! buffer. "Need more bytes" is `Ok(None)`, not an error; a length prefix past the limit is
//! an error before anything is allocated.

use std::fmt;

/// The protocol string of the handshake.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Handshake length.
pub const HANDSHAKE_LEN: usize = 68;
/// The block size btmini requests, and the largest it serves.
pub const BLOCK: u32 = 16 * 1024;

/// Reserved bits of the handshake: BEP 10's extension protocol (byte 5, 0x10).
pub const RESERVED_LTEP: (usize, u8) = (5, 0x10);
/// Reserved bits of the handshake: BEP 6's Fast extension (byte 7, 0x04).
pub const RESERVED_FAST: (usize, u8) = (7, 0x04);
/// Reserved bits of the handshake: BEP 5's DHT (byte 7, 0x01).
pub const RESERVED_DHT: (usize, u8) = (7, 0x01);

/// Whether `bit` is set in `reserved`.
pub fn has_bit(reserved: &[u8; 8], bit: (usize, u8)) -> bool {
    reserved[bit.0] & bit.1 != 0
}

/// A peer's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bits (extensions).
    pub reserved: [u8; 8],
    /// The torrent.
    pub info_hash: [u8; 20],
    /// The peer's id.
    pub peer_id: [u8; 20],
}

impl Handshake {
    /// The 68 bytes.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut b = [0u8; HANDSHAKE_LEN];
        b[0] = 19;
        b[1..20].copy_from_slice(PROTOCOL);
        b[20..28].copy_from_slice(&self.reserved);
        b[28..48].copy_from_slice(&self.info_hash);
        b[48..68].copy_from_slice(&self.peer_id);
        b
    }

    /// The info-hash a handshake names, from its first 48 bytes (`Ok(None)` until they are
    /// there): what a host needs to pick the torrent of an incoming connection before the
    /// peer id has arrived. Wrong protocol bytes are refused as soon as they arrive.
    pub fn info_hash_of(buf: &[u8]) -> Result<Option<[u8; 20]>, WireError> {
        check_protocol(buf)?;
        Ok(buf.get(28..48).map(|h| h.try_into().expect("20 bytes")))
    }

    /// Decodes a handshake from the start of `buf`; `Ok(None)` until 68 bytes are there.
    /// Wrong protocol bytes are refused as soon as they arrive.
    pub fn decode(buf: &[u8]) -> Result<Option<Self>, WireError> {
        check_protocol(buf)?;
        if buf.len() < HANDSHAKE_LEN {
            return Ok(None);
        }
        let id = |at: usize| -> [u8; 20] { buf[at..at + 20].try_into().expect("20 bytes") };
        Ok(Some(Self {
            reserved: buf[20..28].try_into().expect("8 bytes"),
            info_hash: id(28),
            peer_id: id(48),
        }))
    }
}

/// The handshake's first 20 bytes (19, "BitTorrent protocol"), as far as `buf` goes.
fn check_protocol(buf: &[u8]) -> Result<(), WireError> {
    let n = buf.len().min(20);
    let mut expected = [0u8; 20];
    expected[0] = 19;
    expected[1..].copy_from_slice(PROTOCOL);
    if buf[..n] == expected[..n] {
        Ok(())
    } else {
        Err(WireError::BadHandshake)
    }
}

/// A message after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// Zero-length message.
    KeepAlive,
    /// id 0.
    Choke,
    /// id 1.
    Unchoke,
    /// id 2.
    Interested,
    /// id 3.
    NotInterested,
    /// id 4.
    Have(u32),
    /// id 5: the raw bitfield bytes.
    Bitfield(&'a [u8]),
    /// id 6.
    Request {
        /// Piece.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 7.
    Piece {
        /// Piece.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// The block.
        data: &'a [u8],
    },
    /// id 8.
    Cancel {
        /// Piece.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 9 (DHT port).
    Port(u16),
    /// id 0x0D (BEP 6): the peer suggests a piece.
    Suggest(u32),
    /// id 0x0E (BEP 6): the peer has every piece.
    HaveAll,
    /// id 0x0F (BEP 6): the peer has no piece.
    HaveNone,
    /// id 0x10 (BEP 6): a request that will not be served.
    Reject {
        /// Piece.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 0x11 (BEP 6): the piece may be requested while choked.
    AllowedFast(u32),
    /// id 20 (BEP 10): an extended message, `id` 0 being the extended handshake.
    Extended {
        /// The extended message id.
        id: u8,
        /// Its payload (bencoded, possibly followed by raw bytes).
        payload: &'a [u8],
    },
    /// An id btmini does not know, ignored.
    Unknown(u8),
}

/// A peer broke the protocol; the connection is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// The first bytes are not a BitTorrent handshake.
    BadHandshake,
    /// A length prefix beyond the largest legal message.
    TooLong(u32),
    /// A message whose length does not fit its id.
    BadLength {
        /// Message id.
        id: u8,
        /// Its length.
        len: u32,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHandshake => f.write_str("not a BitTorrent handshake"),
            Self::TooLong(n) => write!(f, "message of {n} bytes is too long"),
            Self::BadLength { id, len } => write!(f, "message id {id} with length {len}"),
        }
    }
}

impl std::error::Error for WireError {}

/// The largest message a peer may send for a torrent of `piece_count` pieces: a block
/// (9 + 16 KiB), an extended message carrying a 16 KiB metadata piece with its dictionary
/// (BEP 9), or the bitfield, whichever is larger.
pub fn max_message_len(piece_count: u32) -> u32 {
    (2 + BLOCK + 1024).max(1 + piece_count.div_ceil(8))
}

/// How many more bytes the first message of `buf` needs to be whole (at least 1, for a
/// `buf` that holds no whole message): the rest of the handshake when `handshake`, else of
/// the length prefix, else of the message it announces.
pub fn missing(buf: &[u8], handshake: bool) -> usize {
    let whole = if handshake {
        HANDSHAKE_LEN
    } else if let Some(prefix) = buf.first_chunk::<4>() {
        (u32::from_be_bytes(*prefix) as usize).saturating_add(4)
    } else {
        4
    };
    whole.saturating_sub(buf.len()).max(1)
}

/// Decodes one message from the start of `buf`: the message and the bytes it used, or
/// `Ok(None)` when more bytes are needed.
pub fn decode(buf: &[u8], max_len: u32) -> Result<Option<(Message<'_>, usize)>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes(buf[..4].try_into().expect("4"));
    if len > max_len {
        return Err(WireError::TooLong(len));
    }
    let total = 4 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    if len == 0 {
        return Ok(Some((Message::KeepAlive, 4)));
    }
    let id = buf[4];
    let body = &buf[5..total];
    let be = |at: usize| u32::from_be_bytes(body[at..at + 4].try_into().expect("4"));
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(WireError::BadLength { id, len })
        }
    };
    let msg = match id {
        0 => exact(0).map(|_| Message::Choke)?,
        1 => exact(0).map(|_| Message::Unchoke)?,
        2 => exact(0).map(|_| Message::Interested)?,
        3 => exact(0).map(|_| Message::NotInterested)?,
        4 => exact(4).map(|_| Message::Have(be(0)))?,
        5 => Message::Bitfield(body),
        6 | 8 | 0x10 => {
            exact(12)?;
            let (index, begin, length) = (be(0), be(4), be(8));
            match id {
                6 => Message::Request {
                    index,
                    begin,
                    length,
                },
                8 => Message::Cancel {
                    index,
                    begin,
                    length,
                },
                _ => Message::Reject {
                    index,
                    begin,
                    length,
                },
            }
        }
        7 if body.len() >= 8 => Message::Piece {
            index: be(0),
            begin: be(4),
            data: &body[8..],
        },
        7 => return Err(WireError::BadLength { id, len }),
        9 => exact(2).map(|_| Message::Port(u16::from_be_bytes([body[0], body[1]])))?,
        0x0D => exact(4).map(|_| Message::Suggest(be(0)))?,
        0x0E => exact(0).map(|_| Message::HaveAll)?,
        0x0F => exact(0).map(|_| Message::HaveNone)?,
        0x11 => exact(4).map(|_| Message::AllowedFast(be(0)))?,
        20 if !body.is_empty() => Message::Extended {
            id: body[0],
            payload: &body[1..],
        },
        20 => return Err(WireError::BadLength { id, len }),
        other => Message::Unknown(other),
    };
    Ok(Some((msg, total)))
}

/// Appends `msg` to `out`.
pub fn encode(msg: &Message<'_>, out: &mut Vec<u8>) {
    // What we send is bounded long before 4 GiB: a bitfield of at most 2^32 pieces, a 16 KiB
    // block, an extended message of our own making.
    let len32 = |n: usize| u32::try_from(n).expect("a message we send is under 4 GiB");
    let head = |out: &mut Vec<u8>, len: u32, id: u8| {
        out.extend_from_slice(&len.to_be_bytes());
        out.push(id);
    };
    let three = |out: &mut Vec<u8>, id: u8, a: u32, b: u32, c: u32| {
        head(out, 13, id);
        out.extend_from_slice(&a.to_be_bytes());
        out.extend_from_slice(&b.to_be_bytes());
        out.extend_from_slice(&c.to_be_bytes());
    };
    match *msg {
        Message::KeepAlive => out.extend_from_slice(&[0, 0, 0, 0]),
        Message::Choke => head(out, 1, 0),
        Message::Unchoke => head(out, 1, 1),
        Message::Interested => head(out, 1, 2),
        Message::NotInterested => head(out, 1, 3),
        Message::Have(i) => {
            head(out, 5, 4);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Message::Bitfield(b) => {
            head(out, 1 + len32(b.len()), 5);
            out.extend_from_slice(b);
        }
        Message::Request {
            index,
            begin,
            length,
        } => three(out, 6, index, begin, length),
        Message::Piece { index, begin, data } => {
            head(out, 9 + len32(data.len()), 7);
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&begin.to_be_bytes());
            out.extend_from_slice(data);
        }
        Message::Cancel {
            index,
            begin,
            length,
        } => three(out, 8, index, begin, length),
        Message::Port(p) => {
            head(out, 3, 9);
            out.extend_from_slice(&p.to_be_bytes());
        }
        Message::Suggest(i) => {
            head(out, 5, 0x0D);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Message::HaveAll => head(out, 1, 0x0E),
        Message::HaveNone => head(out, 1, 0x0F),
        Message::Reject {
            index,
            begin,
            length,
        } => three(out, 0x10, index, begin, length),
        Message::AllowedFast(i) => {
            head(out, 5, 0x11);
            out.extend_from_slice(&i.to_be_bytes());
        }
        Message::Extended { id, payload } => {
            head(out, 2 + len32(payload.len()), 20);
            out.push(id);
            out.extend_from_slice(payload);
        }
        Message::Unknown(id) => head(out, 1, id),
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test data of known small sizes
mod tests {
    #[test]
    fn the_info_hash_of_a_handshake_is_known_after_48_bytes_whole_or_one_byte_at_a_time() {
        use super::{Handshake, WireError};
        let hs = Handshake {
            reserved: [0; 8],
            info_hash: [7; 20],
            peer_id: [9; 20],
        }
        .encode();
        for n in 0..48 {
            assert_eq!(Handshake::info_hash_of(&hs[..n]), Ok(None), "{n} bytes");
        }
        assert_eq!(Handshake::info_hash_of(&hs[..48]), Ok(Some([7; 20])));
        assert_eq!(Handshake::info_hash_of(&hs), Ok(Some([7; 20])));
        assert_eq!(
            Handshake::info_hash_of(b"GET / HTTP/1.1"),
            Err(WireError::BadHandshake)
        );
        assert_eq!(
            Handshake::info_hash_of(&[19, b'X']),
            Err(WireError::BadHandshake)
        );
    }

    #[test]
    fn missing_counts_what_completes_the_first_message() {
        use super::missing;
        assert_eq!(missing(&[], false), 4);
        assert_eq!(missing(&[0, 0], false), 2);
        assert_eq!(
            missing(&[0, 0, 0, 5, 4], false),
            4,
            "4 of the 5 bytes to come"
        );
        assert_eq!(
            missing(&[0xff; 4], false),
            // 2^32 + 3 more bytes, saturated where a usize is 32 bits.
            usize::try_from(0xffff_ffff_u64 + 4).unwrap_or(usize::MAX) - 4,
            "the codec refuses it, not this"
        );
        assert_eq!(missing(&[19; 10], true), 58);
        assert_eq!(missing(&[0, 0, 0, 0], false), 1, "whole: at least one");
    }

    use super::*;

    fn all() -> Vec<Message<'static>> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(0x01020304),
            Message::Bitfield(&[0xff, 0x80]),
            Message::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Piece {
                index: 2,
                begin: 0,
                data: b"block",
            },
            Message::Cancel {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject {
                index: 1,
                begin: 0,
                length: 16384,
            },
            Message::AllowedFast(9),
            Message::Extended {
                id: 0,
                payload: b"d1:pi6881ee",
            },
            Message::Extended {
                id: 3,
                payload: b"",
            },
            Message::Unknown(21),
        ]
    }

    #[test]
    fn exact_bytes() {
        let mut out = Vec::new();
        encode(&Message::Have(7), &mut out);
        assert_eq!(out, [0, 0, 0, 5, 4, 0, 0, 0, 7]);
        out.clear();
        encode(
            &Message::Request {
                index: 1,
                begin: 2,
                length: 3,
            },
            &mut out,
        );
        assert_eq!(out, [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]);
        let h = Handshake {
            reserved: [0; 8],
            info_hash: [1; 20],
            peer_id: [2; 20],
        };
        let b = h.encode();
        assert_eq!(&b[..20], b"\x13BitTorrent protocol");
        assert_eq!(Handshake::decode(&b), Ok(Some(h)));
    }

    #[test]
    fn every_message_round_trips_whole_and_byte_by_byte() {
        let mut stream = Vec::new();
        for m in all() {
            encode(&m, &mut stream);
        }
        // Whole.
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((m, n)) = decode(&stream[at..], max_message_len(16)).unwrap() {
            got.push(m);
            at += n;
        }
        assert_eq!(got, all());
        // One byte more at a time: never a message before its last byte.
        let mut got = Vec::new();
        let (mut start, mut end) = (0, 0);
        while end < stream.len() {
            end += 1;
            if let Some((m, n)) = decode(&stream[start..end], max_message_len(16)).unwrap() {
                assert_eq!(start + n, end);
                got.push(m);
                start = end;
            }
        }
        assert_eq!(got, all());
    }

    #[test]
    fn hostile_lengths() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff], max_message_len(100)),
            Err(WireError::TooLong(u32::MAX))
        );
        let mut big = (max_message_len(100) + 1).to_be_bytes().to_vec();
        big.push(7);
        assert!(matches!(
            decode(&big, max_message_len(100)),
            Err(WireError::TooLong(_))
        ));
        assert_eq!(
            decode(&[0, 0, 0, 2, 4, 0], 100),
            Err(WireError::BadLength { id: 4, len: 2 })
        );
        assert_eq!(
            decode(&[0, 0, 0, 2, 0, 0], 100),
            Err(WireError::BadLength { id: 0, len: 2 })
        );
        assert_eq!(
            decode(&[0, 0, 0, 5, 7, 0, 0, 0, 0], 100),
            Err(WireError::BadLength { id: 7, len: 5 })
        );
        assert_eq!(
            Handshake::decode(b"\x13BitTorrent protocoX"),
            Err(WireError::BadHandshake)
        );
        assert_eq!(
            Handshake::decode(b"GET / HTTP/1.1"),
            Err(WireError::BadHandshake)
        );
        assert_eq!(Handshake::decode(b"\x13Bit"), Ok(None));
        assert_eq!(
            decode(&[0, 0, 0, 1, 20], 100),
            Err(WireError::BadLength { id: 20, len: 1 }),
            "an extended message without its id"
        );
        assert_eq!(
            decode(&[0, 0, 0, 2, 0x0E, 0], 100),
            Err(WireError::BadLength { id: 0x0E, len: 2 })
        );
    }

    #[test]
    fn fast_and_extended_exact_bytes() {
        let mut out = Vec::new();
        encode(&Message::HaveAll, &mut out);
        encode(&Message::AllowedFast(5), &mut out);
        encode(
            &Message::Extended {
                id: 1,
                payload: b"de",
            },
            &mut out,
        );
        assert_eq!(
            out,
            [
                0, 0, 0, 1, 0x0E, 0, 0, 0, 5, 0x11, 0, 0, 0, 5, 0, 0, 0, 4, 20, 1, b'd', b'e'
            ]
        );
    }
}
