//! The two sides of the handshake, each a state machine over the bytes received:
//!
//! 1. A → B: Ya, PadA
//! 2. B → A: Yb, PadB
//! 3. A → B: HASH('req1', S), HASH('req2', SKEY) ⊕ HASH('req3', S),
//!    ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
//! 4. B → A: ENCRYPT(VC, crypto_select, len(PadD), PadD), then the payload
//!
//! Bytes are kept only while a field is incomplete or a marker is being searched for, and
//! every search has its window, so what a side holds is bounded by the window plus one read.

use super::{
    Cipher, Established, KEY_LEN, MAX_PAD, MseError, PLAINTEXT, PRIVATE_LEN, RC4, VC, hash,
    public_key, rc4, shared_secret,
};
use rc4::{Rc4, StreamCipher};

/// Longest initial payload accepted (a BitTorrent handshake is 68 bytes; some clients add
/// their first messages).
const MAX_IA: usize = 8192;

/// `HASH('req2', info_hash)`: what a responder looks a torrent up by.
pub fn req2(info_hash: &[u8; 20]) -> [u8; 20] {
    hash(&[b"req2", info_hash])
}

fn xor20(a: &[u8; 20], b: &[u8]) -> [u8; 20] {
    let mut out = *a;
    for (o, x) in out.iter_mut().zip(b) {
        *o ^= x;
    }
    out
}

/// Searches `buf` for `marker`, which must start within `window - skipped` bytes. Returns
/// the bytes before it when found; otherwise drops what can no longer start a match and
/// counts it as skipped.
fn find_marker(
    buf: &mut Vec<u8>,
    marker: &[u8],
    skipped: &mut usize,
    window: usize,
) -> Result<Option<()>, MseError> {
    if let Some(i) = buf.windows(marker.len()).position(|w| w == marker) {
        if *skipped + i > window {
            return Err(MseError::NoSync);
        }
        buf.drain(..i + marker.len());
        return Ok(Some(()));
    }
    let keep = marker.len() - 1;
    if buf.len() > keep {
        let n = buf.len() - keep;
        *skipped += n;
        buf.drain(..n);
    }
    if *skipped > window {
        return Err(MseError::NoSync);
    }
    Ok(None)
}

/// Takes `n` bytes off the front of `buf`, decrypted with `c`.
fn take(buf: &mut Vec<u8>, n: usize, c: &mut Rc4) -> Vec<u8> {
    let mut v: Vec<u8> = buf.drain(..n).collect();
    c.apply_keystream(&mut v);
    v
}

enum IState {
    AwaitY,
    AwaitVc { marker: [u8; 8], skipped: usize },
    AwaitSelect,
    AwaitPadD { select: u32, len: usize },
    Done,
}

/// The side that dialled.
pub struct Initiator {
    info_hash: [u8; 20],
    x: [u8; PRIVATE_LEN],
    provide: u32,
    pad_c: Vec<u8>,
    ia: Vec<u8>,
    out: Vec<u8>,
    buf: Vec<u8>,
    keys: Option<(Rc4, Rc4)>,
    state: IState,
    /// The shared secret's first byte is zero (see [`Initiator::secret_starts_with_zero`]).
    secret_zero: Option<bool>,
}

impl Initiator {
    /// Starts a handshake for `info_hash` offering the methods `provide` ([`PLAINTEXT`],
    /// [`RC4`]), with `ia` (our BitTorrent handshake, or nothing) sent encrypted in step 3.
    /// `x` is the random private key; `pad_a` and `pad_c` random pads of at most 512 bytes.
    /// Step 1 is ready to send at once.
    pub fn new(
        info_hash: [u8; 20],
        provide: u32,
        ia: &[u8],
        x: [u8; PRIVATE_LEN],
        pad_a: &[u8],
        pad_c: &[u8],
    ) -> Self {
        let mut out = public_key(&x).to_vec();
        out.extend_from_slice(&pad_a[..pad_a.len().min(MAX_PAD)]);
        Self {
            info_hash,
            x,
            provide,
            pad_c: pad_c[..pad_c.len().min(MAX_PAD)].to_vec(),
            ia: ia.to_vec(),
            out,
            buf: Vec::new(),
            keys: None,
            state: IState::AwaitY,
            secret_zero: None,
        }
    }

    /// Bytes to send now (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Whether the shared secret begins with a zero byte (`None` before the peer's key
    /// came). libtorrent (2.0.8 at least) hashes its `req3` mask over the secret without
    /// its leading zero bytes, so such a handshake fails against it, one in 256: the peer
    /// then speaks MSE all the same, and is dialled encrypted again.
    pub fn secret_starts_with_zero(&self) -> Option<bool> {
        self.secret_zero
    }

    /// Whether any byte of the responder's has come.
    pub fn heard(&self) -> bool {
        !self.buf.is_empty() || !matches!(self.state, IState::AwaitY)
    }

    /// Bytes received; `Ok(Some(_))` once the handshake is over.
    pub fn handle(&mut self, data: &[u8]) -> Result<Option<Established>, MseError> {
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                IState::AwaitY => {
                    if self.buf.len() < KEY_LEN {
                        return Ok(None);
                    }
                    let y: Vec<u8> = self.buf.drain(..KEY_LEN).collect();
                    let s = shared_secret(&y, &self.x)?;
                    self.secret_zero = Some(s[0] == 0);
                    let mut enc = rc4(b"keyA", &s, &self.info_hash);
                    let dec = rc4(b"keyB", &s, &self.info_hash);
                    let mut marker = VC;
                    rc4(b"keyB", &s, &self.info_hash).apply_keystream(&mut marker);
                    self.out.extend_from_slice(&hash(&[b"req1", &s]));
                    let req3 = hash(&[b"req3", &s]);
                    self.out
                        .extend_from_slice(&xor20(&req2(&self.info_hash), &req3));
                    let mut tail = VC.to_vec();
                    tail.extend_from_slice(&self.provide.to_be_bytes());
                    tail.extend_from_slice(&(self.pad_c.len() as u16).to_be_bytes());
                    tail.extend_from_slice(&self.pad_c);
                    tail.extend_from_slice(&(self.ia.len() as u16).to_be_bytes());
                    tail.extend_from_slice(&self.ia);
                    enc.apply_keystream(&mut tail);
                    self.out.extend_from_slice(&tail);
                    self.keys = Some((enc, dec));
                    self.state = IState::AwaitVc { marker, skipped: 0 };
                }
                IState::AwaitVc { marker, skipped } => {
                    // PadB (at most 512 bytes) comes before the marker.
                    let marker = *marker;
                    if find_marker(&mut self.buf, &marker, skipped, MAX_PAD)?.is_none() {
                        return Ok(None);
                    }
                    let (_, dec) = self.keys.as_mut().expect("keys made");
                    dec.apply_keystream(&mut [0u8; 8]);
                    self.state = IState::AwaitSelect;
                }
                IState::AwaitSelect => {
                    if self.buf.len() < 6 {
                        return Ok(None);
                    }
                    let (_, dec) = self.keys.as_mut().expect("keys made");
                    let f = take(&mut self.buf, 6, dec);
                    let select = u32::from_be_bytes([f[0], f[1], f[2], f[3]]);
                    let len = usize::from(u16::from_be_bytes([f[4], f[5]]));
                    if !(select == PLAINTEXT || select == RC4) || select & self.provide == 0 {
                        return Err(MseError::BadSelect(select));
                    }
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = IState::AwaitPadD { select, len };
                }
                IState::AwaitPadD { select, len } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let (select, len) = (*select, *len);
                    let (enc, mut dec) = self.keys.take().expect("keys made");
                    take(&mut self.buf, len, &mut dec);
                    self.state = IState::Done;
                    return Ok(Some(Established {
                        info_hash: self.info_hash,
                        cipher: (select == RC4).then_some(Cipher { enc, dec }),
                        initial: Vec::new(),
                        rest: std::mem::take(&mut self.buf),
                    }));
                }
                IState::Done => return Ok(None),
            }
        }
    }
}

enum RState {
    AwaitY,
    AwaitReq1 { req1: [u8; 20], skipped: usize },
    AwaitReq2,
    AwaitProvide,
    AwaitPadC { provide: u32, len: usize },
    AwaitIa { provide: u32, len: usize },
    Done,
}

/// The side that was dialled, once the first bytes said MSE (not `\x13BitTorrent`).
pub struct Responder {
    x: [u8; PRIVATE_LEN],
    allowed: u32,
    pad_b: Vec<u8>,
    pad_d: Vec<u8>,
    out: Vec<u8>,
    buf: Vec<u8>,
    secret: [u8; KEY_LEN],
    info_hash: [u8; 20],
    keys: Option<(Rc4, Rc4)>,
    state: RState,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Responder")
    }
}

impl Responder {
    /// Waits for an initiator; `allowed` is the set of methods we accept, `x` the random
    /// private key, `pad_b` and `pad_d` random pads of at most 512 bytes.
    pub fn new(allowed: u32, x: [u8; PRIVATE_LEN], pad_b: &[u8], pad_d: &[u8]) -> Self {
        Self {
            x,
            allowed,
            pad_b: pad_b[..pad_b.len().min(MAX_PAD)].to_vec(),
            pad_d: pad_d[..pad_d.len().min(MAX_PAD)].to_vec(),
            out: Vec::new(),
            buf: Vec::new(),
            secret: [0; KEY_LEN],
            info_hash: [0; 20],
            keys: None,
            state: RState::AwaitY,
        }
    }

    /// Bytes to send now (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Bytes received; `lookup` finds our torrent by [`req2`] of its info-hash. `Ok(Some(_))`
    /// once the handshake is over.
    pub fn handle(
        &mut self,
        data: &[u8],
        lookup: impl Fn(&[u8; 20]) -> Option<[u8; 20]>,
    ) -> Result<Option<Established>, MseError> {
        self.buf.extend_from_slice(data);
        loop {
            match &mut self.state {
                RState::AwaitY => {
                    if self.buf.len() < KEY_LEN {
                        return Ok(None);
                    }
                    let y: Vec<u8> = self.buf.drain(..KEY_LEN).collect();
                    self.secret = shared_secret(&y, &self.x)?;
                    self.out.extend_from_slice(&public_key(&self.x));
                    self.out.extend_from_slice(&self.pad_b);
                    let req1 = hash(&[b"req1", &self.secret]);
                    self.state = RState::AwaitReq1 { req1, skipped: 0 };
                }
                RState::AwaitReq1 { req1, skipped } => {
                    // PadA (at most 512 bytes) comes before it.
                    let req1 = *req1;
                    if find_marker(&mut self.buf, &req1, skipped, MAX_PAD)?.is_none() {
                        return Ok(None);
                    }
                    self.state = RState::AwaitReq2;
                }
                RState::AwaitReq2 => {
                    if self.buf.len() < 20 {
                        return Ok(None);
                    }
                    let req3 = hash(&[b"req3", &self.secret]);
                    let masked: Vec<u8> = self.buf.drain(..20).collect();
                    let key = xor20(&req3, &masked);
                    self.info_hash = lookup(&key).ok_or(MseError::UnknownTorrent)?;
                    let dec = rc4(b"keyA", &self.secret, &self.info_hash);
                    let enc = rc4(b"keyB", &self.secret, &self.info_hash);
                    self.keys = Some((enc, dec));
                    self.state = RState::AwaitProvide;
                }
                RState::AwaitProvide => {
                    if self.buf.len() < 14 {
                        return Ok(None);
                    }
                    let (_, dec) = self.keys.as_mut().expect("keys made");
                    let f = take(&mut self.buf, 14, dec);
                    if f[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provide = u32::from_be_bytes([f[8], f[9], f[10], f[11]]);
                    let len = usize::from(u16::from_be_bytes([f[12], f[13]]));
                    if len > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = RState::AwaitPadC { provide, len };
                }
                RState::AwaitPadC { provide, len } => {
                    if self.buf.len() < *len + 2 {
                        return Ok(None);
                    }
                    let (provide, len) = (*provide, *len);
                    let (_, dec) = self.keys.as_mut().expect("keys made");
                    let f = take(&mut self.buf, len + 2, dec);
                    let ia = usize::from(u16::from_be_bytes([f[len], f[len + 1]]));
                    if ia > MAX_IA {
                        return Err(MseError::IaTooLong(ia));
                    }
                    self.state = RState::AwaitIa { provide, len: ia };
                }
                RState::AwaitIa { provide, len } => {
                    if self.buf.len() < *len {
                        return Ok(None);
                    }
                    let (provide, len) = (*provide, *len);
                    let both = provide & self.allowed;
                    // Plaintext when both sides allow it, as libtorrent answers (its
                    // `prefer_rc4` is off by default): the handshake has already hidden the
                    // protocol from a throttler, and RC4 would cost both sides CPU on every
                    // byte. RC4 when one side will take nothing else (`require`).
                    let select = if both & PLAINTEXT != 0 {
                        PLAINTEXT
                    } else if both & RC4 != 0 {
                        RC4
                    } else {
                        return Err(MseError::NoCommonMethod(provide, self.allowed));
                    };
                    let (mut enc, mut dec) = self.keys.take().expect("keys made");
                    let initial = take(&mut self.buf, len, &mut dec);
                    let mut reply = VC.to_vec();
                    reply.extend_from_slice(&select.to_be_bytes());
                    reply.extend_from_slice(&(self.pad_d.len() as u16).to_be_bytes());
                    reply.extend_from_slice(&self.pad_d);
                    enc.apply_keystream(&mut reply);
                    self.out.extend_from_slice(&reply);
                    self.state = RState::Done;
                    return Ok(Some(Established {
                        info_hash: self.info_hash,
                        cipher: (select == RC4).then_some(Cipher { enc, dec }),
                        initial,
                        rest: std::mem::take(&mut self.buf),
                    }));
                }
                RState::Done => return Ok(None),
            }
        }
    }
}
