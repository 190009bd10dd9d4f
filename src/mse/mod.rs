//! Message Stream Encryption (MSE/PE), the obfuscation every major client speaks: a
//! Diffie-Hellman exchange over the 768-bit prime below, then RC4 both ways keyed from the
//! shared secret and the info-hash. The spec is the Vuze wiki's "Message Stream
//! Encryption" (there is no BEP).
//!
//! Sans-IO: [`Initiator`] and [`Responder`] take the bytes read and the randomness they need,
//! give the bytes to send, and end in [`Established`]: the chosen method, the two RC4 states
//! and whatever came after the handshake. The connection then applies [`Cipher`] in place on
//! the bytes it already owns. The primitives are crates: RC4 from `rc4`, the modular
//! exponentiation from `crypto-bigint`; SHA-1 is the crate's own.
//!
//! The traps the other clients fell into, kept here: Y and S are always 96 bytes,
//! left-padded with zeros; pads are 0–512 bytes and a longer one is refused; the sync
//! searches have hard windows (a peer that never sends the marker is dropped when the window
//! is spent); the first 1,024 bytes of each RC4 keystream are thrown away.

mod handshake;

pub use handshake::{Initiator, Responder, req2};

use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, U768};
use rc4::{KeyInit, Rc4, StreamCipher};
use std::fmt;

/// The 768-bit prime of the exchange (the spec's P), big-endian.
const PRIME_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74\
                         020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437\
                         4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";

/// Bytes of a public key or shared secret.
pub const KEY_LEN: usize = 96;
/// Longest pad either side may send.
pub const MAX_PAD: usize = 512;
/// Bytes of a private exponent (160 bits are enough, as the spec says).
pub const PRIVATE_LEN: usize = 20;
/// The verification constant: 8 zero bytes, encrypted.
const VC: [u8; 8] = [0; 8];
/// Keystream bytes thrown away before use.
const DISCARD: usize = 1024;

/// `crypto_provide` / `crypto_select` bit: plaintext after the handshake.
pub const PLAINTEXT: u32 = 0x01;
/// `crypto_provide` / `crypto_select` bit: RC4 after the handshake.
pub const RC4: u32 = 0x02;

/// Why a handshake failed: the peer is dropped with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MseError {
    /// The other side's public key is 0, 1, P − 1 or not below P.
    BadKey,
    /// The sync marker did not come within its window (the peer is not speaking MSE, or
    /// not for a torrent we have).
    NoSync,
    /// The responder knows no torrent for the initiator's `req2 ^ req3`.
    UnknownTorrent,
    /// The decrypted verification constant is not zero (wrong key: another torrent).
    BadVc,
    /// A pad longer than 512 bytes.
    PadTooLong(usize),
    /// `len(IA)` larger than a handshake can be.
    IaTooLong(usize),
    /// No method both sides allow (their offer, ours).
    NoCommonMethod(u32, u32),
    /// `crypto_select` names more than one method, or one we did not offer.
    BadSelect(u32),
}

impl fmt::Display for MseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadKey => f.write_str("encryption: the peer's public key is invalid"),
            Self::NoSync => f.write_str("encryption: no sync marker within its window"),
            Self::UnknownTorrent => f.write_str("encryption: not one of our torrents"),
            Self::BadVc => f.write_str("encryption: wrong verification constant"),
            Self::PadTooLong(n) => write!(f, "encryption: a pad of {n} bytes (512 at most)"),
            Self::IaTooLong(n) => write!(f, "encryption: an initial payload of {n} bytes"),
            Self::NoCommonMethod(theirs, ours) => write!(
                f,
                "encryption: no common method (they offer {theirs:#x}, we allow {ours:#x})"
            ),
            Self::BadSelect(s) => write!(f, "encryption: the peer selected {s:#x}"),
        }
    }
}

impl std::error::Error for MseError {}

fn prime() -> Odd<U768> {
    Odd::new(U768::from_be_hex(PRIME_HEX)).expect("the prime is odd")
}

/// `2^x mod P`, as 96 bytes.
fn public_key(x: &[u8; PRIVATE_LEN]) -> [u8; KEY_LEN] {
    power(&U768::from_u8(2), x)
}

/// `y^x mod P`, as 96 bytes, after checking `y`.
fn shared_secret(y: &[u8], x: &[u8; PRIVATE_LEN]) -> Result<[u8; KEY_LEN], MseError> {
    let y = U768::from_be_slice(y);
    let p = prime();
    let max = p.get().wrapping_sub(&U768::ONE);
    // 0, 1 and P − 1 give a secret an eavesdropper knows; P and above are not keys.
    if y <= U768::ONE || y >= max {
        return Err(MseError::BadKey);
    }
    Ok(power(&y, x))
}

fn power(base: &U768, x: &[u8; PRIVATE_LEN]) -> [u8; KEY_LEN] {
    let params = FixedMontyParams::new_vartime(prime());
    let mut e = [0u8; KEY_LEN];
    e[KEY_LEN - PRIVATE_LEN..].copy_from_slice(x);
    let r = FixedMontyForm::new(base, &params)
        .pow(&U768::from_be_slice(&e))
        .retrieve();
    // Always 96 bytes, leading zeros included: the trap of "one handshake in 250".
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(&r.to_be_bytes());
    out
}

/// SHA-1 of the concatenation of `parts`.
fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = crate::hash::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.digest()
}

/// One direction's RC4, its first 1,024 bytes of keystream spent.
fn rc4(name: &[u8], secret: &[u8; KEY_LEN], skey: &[u8; 20]) -> Rc4 {
    let key = hash(&[name, secret, skey]);
    let mut c = Rc4::new_from_slice(&key).expect("20 bytes are a valid key");
    let mut waste = [0u8; DISCARD];
    c.apply_keystream(&mut waste);
    c
}

/// RC4 both ways, for a connection whose peer selected it.
pub struct Cipher {
    enc: Rc4,
    dec: Rc4,
}

/// One direction's RC4: the connection's queue encrypts with one half, its reads decrypt
/// with the other.
pub struct Half(Rc4);

impl Half {
    /// Encrypts or decrypts `data` in place (RC4 is its own inverse).
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply_keystream(data);
    }
}

impl fmt::Debug for Half {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Half(rc4)")
    }
}

impl Cipher {
    /// The two directions apart: (encrypt, decrypt).
    pub fn split(self) -> (Half, Half) {
        (Half(self.enc), Half(self.dec))
    }

    /// Encrypts bytes about to be sent, in place.
    pub fn encrypt(&mut self, data: &mut [u8]) {
        self.enc.apply_keystream(data);
    }

    /// Decrypts bytes just read, in place.
    pub fn decrypt(&mut self, data: &mut [u8]) {
        self.dec.apply_keystream(data);
    }
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(rc4)")
    }
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// The info-hash the handshake was for (the responder learns it from `req2 ^ req3`).
    pub info_hash: [u8; 20],
    /// RC4 from here on, or `None` for plaintext.
    pub cipher: Option<Cipher>,
    /// The initiator's initial payload (its BitTorrent handshake, if it sent it), decrypted;
    /// empty on the initiator's side.
    pub initial: Vec<u8>,
    /// Bytes that came after the handshake, as received (still encrypted under RC4).
    pub rest: Vec<u8>,
}

/// Fills `buf` with random bytes from the system (`/dev/urandom`); where that cannot be
/// read, from the process's seeded hashes (enough to obfuscate, which is what MSE does).
pub fn random(buf: &mut [u8]) {
    use std::io::Read;
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if ok.is_err() {
        for chunk in buf.chunks_mut(8) {
            let r = crate::util::random_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// How a process treats encryption (`--encryption`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// Dial encrypted first (offering RC4 and plaintext-after-MSE) and fall back to a
    /// plaintext dial when the peer does not speak MSE; accept both ways in.
    #[default]
    Prefer,
    /// RC4 only, both ways: plaintext handshakes and plaintext-after-MSE are refused.
    Require,
    /// No MSE: dial in plaintext, refuse incoming MSE handshakes.
    Off,
}

impl Policy {
    /// `prefer`, `require` or `off`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prefer" => Some(Self::Prefer),
            "require" => Some(Self::Require),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// The methods offered or accepted after an MSE handshake: a set of [`PLAINTEXT`] and
    /// [`RC4`].
    pub fn methods(self) -> u32 {
        match self {
            Self::Require => RC4,
            _ => RC4 | PLAINTEXT,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::Off => "off",
        })
    }
}

/// A fresh private key and pads for one handshake (each pad 0–510 bytes, random).
pub fn fresh() -> ([u8; PRIVATE_LEN], Vec<u8>, Vec<u8>) {
    let mut x = [0u8; PRIVATE_LEN];
    random(&mut x);
    let mut pads = [0u8; 2 * MAX_PAD];
    random(&mut pads);
    let (n1, n2) = (usize::from(pads[0]) * 2, usize::from(pads[1]) * 2);
    let first = pads[2..2 + n1].to_vec();
    let second = pads[2 + n1..2 + n1 + n2].to_vec();
    (x, first, second)
}

#[cfg(test)]
mod tests;
