//! A fixed-length set of piece indices, stored as BEP 3's bitfield: the high bit of the first
//! byte is piece 0, spare bits at the end are zero.

use std::fmt;

/// A bitfield of `len` bits with a running count of the set ones.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    count: u32,
}

/// Why bytes from outside are not a bitfield of the expected length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitfieldError {
    /// The byte count is not `ceil(len / 8)`.
    WrongLength {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A bit past the last piece is set.
    SpareBitsSet,
}

impl fmt::Display for BitfieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongLength { expected, found } => {
                write!(f, "bitfield is {found} bytes, expected {expected}")
            }
            Self::SpareBitsSet => f.write_str("bitfield has spare bits set"),
        }
    }
}

impl std::error::Error for BitfieldError {}

impl Bitfield {
    /// All clear.
    pub fn new(len: u32) -> Self {
        Self {
            bytes: vec![0; (len as usize).div_ceil(8)],
            len,
            count: 0,
        }
    }

    /// All set.
    pub fn full(len: u32) -> Self {
        let mut b = Self::new(len);
        b.bytes.fill(0xff);
        b.clear_spare();
        b.count = len;
        b
    }

    /// From wire or file bytes, checked for length and spare bits.
    pub fn from_bytes(len: u32, bytes: &[u8]) -> Result<Self, BitfieldError> {
        let expected = (len as usize).div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                expected,
                found: bytes.len(),
            });
        }
        let mut b = Self {
            bytes: bytes.to_vec(),
            len,
            count: 0,
        };
        let before = b.bytes.last().copied();
        b.clear_spare();
        if b.bytes.last().copied() != before {
            return Err(BitfieldError::SpareBitsSet);
        }
        b.count = b.bytes.iter().map(|x| x.count_ones()).sum();
        Ok(b)
    }

    fn clear_spare(&mut self) {
        let spare = self.bytes.len() * 8 - self.len as usize;
        if let Some(last) = self.bytes.last_mut() {
            *last &= 0xffu8 << spare;
        }
    }

    /// Number of bits.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the bitfield has no bits at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of set bits.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether every bit is set.
    pub fn is_full(&self) -> bool {
        self.count == self.len
    }

    /// Bit `i`; false when out of range.
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i` (ignored when out of range); returns whether it was clear before.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.count += 1;
        true
    }

    /// Clears bit `i`; returns whether it was set before.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !(0x80 >> (i % 8));
        self.count -= 1;
        true
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The indices of the set bits, in order.
    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        // Byte by byte, so empty stretches cost one test per 8 pieces. Spare bits are
        // always clear, so no index past `len` comes out.
        self.bytes
            .iter()
            .enumerate()
            .filter(|(_, b)| **b != 0)
            .flat_map(|(i, &b)| {
                (0..8u32)
                    .filter(move |bit| b & (0x80 >> bit) != 0)
                    .map(move |bit| i as u32 * 8 + bit)
            })
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitfield({}/{})", self.count, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_msb_first_with_a_count() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(9) && !b.set(10));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert!(b.clear(0) && !b.clear(0));
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![9]);
        assert!(!b.get(100));
    }

    #[test]
    fn full_leaves_spare_bits_clear() {
        let b = Bitfield::full(10);
        assert_eq!(b.as_bytes(), &[0xff, 0xc0]);
        assert!(b.is_full());
        assert_eq!(Bitfield::full(16).as_bytes(), &[0xff, 0xff]);
    }

    #[test]
    fn from_bytes_checks_length_and_spare_bits() {
        assert_eq!(Bitfield::from_bytes(10, &[0xff, 0xc0]).unwrap().count(), 10);
        assert_eq!(
            Bitfield::from_bytes(10, &[0xff]),
            Err(BitfieldError::WrongLength {
                expected: 2,
                found: 1
            })
        );
        assert_eq!(
            Bitfield::from_bytes(10, &[0xff, 0xe0]),
            Err(BitfieldError::SpareBitsSet)
        );
        assert!(Bitfield::from_bytes(0, &[]).unwrap().is_empty());
    }
}
