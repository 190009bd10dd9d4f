//! The uTP packet (BEP 29): a 20-byte header, a chain of extensions (only selective ACK,
//! type 1, is understood; others are skipped) and the payload.
//!
//! ```text
//!  0       4       8               16              24              32
//!  | type  | ver   | extension     | connection_id                 |
//!  | timestamp_microseconds                                        |
//!  | timestamp_difference_microseconds                             |
//!  | wnd_size                                                      |
//!  | seq_nr                        | ack_nr                        |
//! ```

use std::fmt;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The protocol version in every header.
pub const VERSION: u8 = 1;
/// The selective-ACK extension's type.
const EXT_SACK: u8 = 1;
/// Longest selective-ACK bitmask we send (bits for 256 packets past `ack_nr + 1`); a
/// longer one received is read this far.
pub const MAX_SACK: usize = 32;

/// The packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Payload.
    Data = 0,
    /// The sender's last packet (it carries the last `seq_nr`).
    Fin = 1,
    /// An ACK with no payload.
    State = 2,
    /// The connection is closed at once.
    Reset = 3,
    /// Opens a connection.
    Syn = 4,
}

impl Type {
    fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }
}

/// A packet's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The packet type.
    pub ty: Type,
    /// The connection id: the receiver's for every packet but the SYN, which carries the
    /// sender's receive id.
    pub conn_id: u16,
    /// The sender's clock when it sent it, microseconds (wrapping).
    pub timestamp: u32,
    /// The sender's last measured delay of our packets, microseconds.
    pub timestamp_diff: u32,
    /// Bytes the sender can still receive.
    pub wnd_size: u32,
    /// This packet's sequence number.
    pub seq_nr: u16,
    /// The last packet received in order.
    pub ack_nr: u16,
}

/// A parsed datagram, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The header.
    pub header: Header,
    /// The selective-ACK bitmask: bit i (LSB first within each byte) says packet
    /// `ack_nr + 2 + i` was received.
    pub sack: Option<&'a [u8]>,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why a datagram is not a uTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketError {
    /// Shorter than a header, or an extension runs past the end.
    Truncated,
    /// Not version 1, or an unknown type.
    NotUtp,
    /// A selective ACK of no bytes. (The BEP says a multiple of 4; libtorrent sends any
    /// length, so any other is read.)
    BadSack(usize),
}

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("uTP: truncated packet"),
            Self::NotUtp => f.write_str("uTP: not a uTP packet"),
            Self::BadSack(n) => write!(f, "uTP: a selective ACK of {n} bytes"),
        }
    }
}

impl std::error::Error for PacketError {}

/// Whether a datagram looks like uTP (version 1, a known type, long enough): how the shared
/// UDP socket tells it from KRPC (`d…`) and tracker replies (action 0–3, first byte 0).
pub fn is_utp(d: &[u8]) -> bool {
    d.len() >= HEADER_LEN && d[0] & 0x0f == VERSION && d[0] >> 4 <= Type::Syn as u8
}

/// Parses a datagram.
pub fn decode(d: &[u8]) -> Result<Packet<'_>, PacketError> {
    if d.len() < HEADER_LEN {
        return Err(PacketError::Truncated);
    }
    if d[0] & 0x0f != VERSION {
        return Err(PacketError::NotUtp);
    }
    let ty = Type::from_nibble(d[0] >> 4).ok_or(PacketError::NotUtp)?;
    let be16 = |i: usize| u16::from_be_bytes([d[i], d[i + 1]]);
    let be32 = |i: usize| u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]]);
    let header = Header {
        ty,
        conn_id: be16(2),
        timestamp: be32(4),
        timestamp_diff: be32(8),
        wnd_size: be32(12),
        seq_nr: be16(16),
        ack_nr: be16(18),
    };
    let mut next = d[1];
    let mut at = HEADER_LEN;
    let mut sack = None;
    // Each extension: its successor's type, its length, its bytes. At most 255 bytes each,
    // and the datagram bounds the chain.
    while next != 0 {
        let (&following, &len) = (
            d.get(at).ok_or(PacketError::Truncated)?,
            d.get(at + 1).ok_or(PacketError::Truncated)?,
        );
        let len = usize::from(len);
        let body = d.get(at + 2..at + 2 + len).ok_or(PacketError::Truncated)?;
        if next == EXT_SACK {
            if len == 0 {
                return Err(PacketError::BadSack(len));
            }
            sack = Some(&body[..len.min(MAX_SACK)]);
        }
        next = following;
        at += 2 + len;
    }
    Ok(Packet {
        header,
        sack,
        payload: &d[at..],
    })
}

/// Appends the datagram for `h`, an optional selective ACK (a multiple of 4 bytes, at most
/// [`MAX_SACK`]) and `payload` to `out`.
pub fn encode(h: &Header, sack: Option<&[u8]>, payload: &[u8], out: &mut Vec<u8>) {
    out.push(((h.ty as u8) << 4) | VERSION);
    out.push(if sack.is_some() { EXT_SACK } else { 0 });
    out.extend_from_slice(&h.conn_id.to_be_bytes());
    out.extend_from_slice(&h.timestamp.to_be_bytes());
    out.extend_from_slice(&h.timestamp_diff.to_be_bytes());
    out.extend_from_slice(&h.wnd_size.to_be_bytes());
    out.extend_from_slice(&h.seq_nr.to_be_bytes());
    out.extend_from_slice(&h.ack_nr.to_be_bytes());
    if let Some(s) = sack {
        debug_assert!(!s.is_empty() && s.len() % 4 == 0 && s.len() <= MAX_SACK);
        out.push(0);
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ty: Type) -> Header {
        Header {
            ty,
            conn_id: 0xBEEF,
            timestamp: 0x0102_0304,
            timestamp_diff: 7,
            wnd_size: 1 << 20,
            seq_nr: 65535,
            ack_nr: 3,
        }
    }

    #[test]
    fn round_trips_with_and_without_a_selective_ack() {
        let mut b = Vec::new();
        encode(&header(Type::Data), None, b"payload", &mut b);
        assert_eq!(b.len(), HEADER_LEN + 7);
        assert_eq!(b[0], 0x01);
        let p = decode(&b).unwrap();
        assert_eq!(p.header, header(Type::Data));
        assert_eq!((p.sack, p.payload), (None, &b"payload"[..]));

        let mut b = Vec::new();
        encode(&header(Type::State), Some(&[1, 0, 0, 0x80]), b"", &mut b);
        assert_eq!(&b[..2], &[0x21, 1]);
        let p = decode(&b).unwrap();
        assert_eq!(p.sack, Some(&[1u8, 0, 0, 0x80][..]));
        assert!(p.payload.is_empty());
    }

    #[test]
    fn bytes_from_libutp_parse() {
        // A SYN as libutp sends it: type 4, version 1, no extension, conn id 0x1234,
        // seq 1, window 1 MiB.
        let d = [
            0x41, 0, 0x12, 0x34, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0,
        ];
        let p = decode(&d).unwrap();
        assert_eq!(p.header.ty, Type::Syn);
        assert_eq!(p.header.conn_id, 0x1234);
        assert_eq!(p.header.wnd_size, 1 << 20);
        assert_eq!(p.header.seq_nr, 1);
        assert!(is_utp(&d));
    }

    #[test]
    fn unknown_extensions_are_skipped_and_bad_ones_refused() {
        let mut b = Vec::new();
        encode(&header(Type::Data), None, b"", &mut b);
        b[1] = 9; // an unknown extension of 3 bytes, then a SACK of 4, then the payload
        b.extend_from_slice(&[EXT_SACK, 3, 0xaa, 0xbb, 0xcc, 0, 4, 1, 2, 3, 4]);
        b.extend_from_slice(b"xy");
        let p = decode(&b).unwrap();
        assert_eq!(p.sack, Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(p.payload, b"xy");

        let mut short = b[..HEADER_LEN + 4].to_vec();
        short[HEADER_LEN + 1] = 50;
        assert_eq!(decode(&short), Err(PacketError::Truncated));
        let mut bad = Vec::new();
        encode(&header(Type::State), None, b"", &mut bad);
        bad[1] = EXT_SACK;
        bad.extend_from_slice(&[0, 0]);
        assert_eq!(decode(&bad), Err(PacketError::BadSack(0)));
        // libtorrent's selective ACKs of 2 or 13 bytes are read.
        bad.truncate(HEADER_LEN);
        bad.extend_from_slice(&[0, 2, 0xff, 1]);
        assert_eq!(decode(&bad).unwrap().sack, Some(&[0xffu8, 1][..]));
    }

    #[test]
    fn what_is_not_utp() {
        assert_eq!(decode(&[0x41; 19]), Err(PacketError::Truncated));
        let mut b = Vec::new();
        encode(&header(Type::Data), None, b"", &mut b);
        b[0] = 0x02;
        assert_eq!(decode(&b), Err(PacketError::NotUtp));
        b[0] = 0x51;
        assert_eq!(decode(&b), Err(PacketError::NotUtp));
        assert!(!is_utp(&b));
        // KRPC and a UDP tracker's reply are told apart by their first byte.
        assert!(!is_utp(
            b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"
        ));
        assert!(!is_utp(&[
            0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
    }
}
