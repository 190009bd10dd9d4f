//! What a peer says it has before we know the torrent's metadata (a magnet link): its
//! bitfield, HAVEs and BEP 6 have-all / have-none are kept, bounded, and checked against the
//! piece count once the metadata is verified. libtorrent sends its extended handshake before
//! its bitfield, so a magnet download that dropped these would not know what its first
//! peers have until they send HAVEs.

use crate::bitfield::{Bitfield, BitfieldError};
use crate::ext::fetch::MAX_SIZE;

/// The most pieces a torrent whose metadata fits [`MAX_SIZE`] can have (20 bytes of hash
/// each): HAVEs past it are refused, and a peer's early bits take at most
/// `MAX_PIECES / 8` bytes (205 KiB).
pub const MAX_PIECES: u32 = (MAX_SIZE / 20) as u32;

/// A peer's pieces as it stated them before the piece count was known.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct EarlyHas {
    /// Bits set by the bitfield and HAVEs, grown as needed up to [`MAX_PIECES`].
    bits: Vec<u8>,
    /// The length in bytes of the bitfield it sent, checked once the count is known.
    bitfield_len: Option<usize>,
    /// It sent have_all.
    all: bool,
}

/// The peer stated a piece no torrent of ours can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooLarge(pub(crate) u32);

impl EarlyHas {
    /// A HAVE for piece `index`.
    pub(crate) fn have(&mut self, index: u32) -> Result<(), TooLarge> {
        if index >= MAX_PIECES {
            return Err(TooLarge(index));
        }
        let byte = (index / 8) as usize;
        if self.bits.len() <= byte {
            self.bits.resize(byte + 1, 0);
        }
        self.bits[byte] |= 0x80 >> (index % 8);
        Ok(())
    }

    /// A bitfield (it replaces what was said before, as a later bitfield does).
    pub(crate) fn bitfield(&mut self, bytes: &[u8]) -> Result<(), TooLarge> {
        if bytes.len() > MAX_PIECES.div_ceil(8) as usize {
            return Err(TooLarge(bytes.len() as u32 * 8));
        }
        self.bits = bytes.to_vec();
        self.bitfield_len = Some(bytes.len());
        self.all = false;
        Ok(())
    }

    /// have_all (BEP 6).
    pub(crate) fn have_all(&mut self) {
        *self = Self {
            all: true,
            ..Self::default()
        };
    }

    /// have_none (BEP 6).
    pub(crate) fn have_none(&mut self) {
        *self = Self::default();
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn memory(&self) -> usize {
        self.bits.capacity()
    }

    /// What it said, as a bitfield of `count` pieces: an error if its bitfield had the
    /// wrong length or spare bits, or a HAVE was past the last piece.
    pub(crate) fn resolve(&self, count: u32) -> Result<Bitfield, BitfieldError> {
        if self.all {
            return Ok(Bitfield::full(count));
        }
        let want = count.div_ceil(8) as usize;
        if let Some(n) = self.bitfield_len {
            if n != want {
                // The length is what it sent: let the bitfield codec say what is wrong.
                return Bitfield::from_bytes(count, &vec![0; n]);
            }
        }
        let mut bytes = self.bits.clone();
        if bytes.len() > want {
            if bytes[want..].iter().any(|&b| b != 0) {
                return Bitfield::from_bytes(count, &bytes);
            }
            bytes.truncate(want);
        }
        bytes.resize(want, 0);
        Bitfield::from_bytes(count, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haves_and_a_bitfield_resolve_once_the_count_is_known() {
        let mut e = EarlyHas::default();
        e.bitfield(&[0b1010_0000]).unwrap();
        e.have(3).unwrap();
        let b = e.resolve(5).unwrap();
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 2, 3]);
    }

    #[test]
    fn haves_alone_resolve_without_a_bitfield() {
        let mut e = EarlyHas::default();
        e.have(9).unwrap();
        assert_eq!(e.resolve(20).unwrap().ones().collect::<Vec<_>>(), vec![9]);
        assert_eq!(EarlyHas::default().resolve(20).unwrap().count(), 0);
    }

    #[test]
    fn a_have_past_the_last_piece_is_an_error_once_known() {
        let mut e = EarlyHas::default();
        e.have(40).unwrap();
        assert!(e.resolve(20).is_err());
        assert!(e.resolve(41).is_ok());
    }

    #[test]
    fn a_bitfield_of_the_wrong_length_or_with_spare_bits_is_an_error() {
        let mut e = EarlyHas::default();
        e.bitfield(&[0xff, 0xff]).unwrap();
        assert!(e.resolve(20).is_err());
        assert!(e.resolve(16).is_ok());
        let mut e = EarlyHas::default();
        e.bitfield(&[0xff]).unwrap();
        assert!(e.resolve(5).is_err());
    }

    #[test]
    fn have_all_and_have_none_replace_what_came_before() {
        let mut e = EarlyHas::default();
        e.have(1).unwrap();
        e.have_all();
        assert!(e.resolve(7).unwrap().is_full());
        e.have_none();
        assert_eq!(e.resolve(7).unwrap().count(), 0);
    }

    #[test]
    fn memory_is_bounded_by_the_largest_possible_torrent() {
        let mut e = EarlyHas::default();
        assert_eq!(e.have(MAX_PIECES), Err(TooLarge(MAX_PIECES)));
        e.have(MAX_PIECES - 1).unwrap();
        assert!(e.memory() <= (MAX_PIECES as usize).div_ceil(8) * 2);
        assert!(
            e.bitfield(&vec![0; MAX_PIECES.div_ceil(8) as usize + 1])
                .is_err()
        );
    }
}
