//! One connection's protocol, sans I/O: the handshake and both sides' reserved bits, the
//! codec and its buffers, the BEP 10 registry, the four choke/interest flags, and the
//! accounting of requests both ways (ours to the peer, its to us, with `reqq` and BEP 6's
//! rejects). Bytes come in through [`Connection::decode`], which yields [`Input`]s; bytes
//! to send collect in `tx`. What the messages mean for the torrent (pieces, choking
//! policy, the swarm) is the session's.

use super::close::{CloseReason, Violation};
use crate::ext::metadata::MetadataMsg;
use crate::ext::pex::Pex;
use crate::ext::{self, ExtHandshake, Registry};
use crate::picker::BlockRef;
use crate::wire::{self, Handshake, Message};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Our outgoing TCP connect is under way.
    Connecting,
    /// Waiting for the peer's handshake.
    Handshake,
    /// Handshakes exchanged: messages flow.
    Active,
}

/// The reserved bits btmini sets: the extension protocol (BEP 10) and Fast (BEP 6).
pub const OUR_RESERVED: [u8; 8] = {
    let mut r = [0u8; 8];
    r[wire::RESERVED_LTEP.0] |= wire::RESERVED_LTEP.1;
    r[wire::RESERVED_FAST.0] |= wire::RESERVED_FAST.1;
    r
};

/// A peer is dropped when this many times its queue (`reqq`) of requests arrive in a row,
/// each refused for being past the queue: a client that honours `reqq`, or one pipelining
/// deeper than it was told while it reads what we send, never comes near it (libtorrent
/// keeps at most 500 out, Transmission its peer's `reqq`). Refusing costs no memory; this
/// bounds what a peer that never stops asking makes us write (a 17-byte reject each, with
/// Fast).
pub const FLOOD_FACTOR: u32 = 4;

/// PEX messages allowed from a peer in any 60 s: one a minute, with room for a first one
/// sent early and a late timer (libtorrent drops a peer at its seventh in 60 s, too).
pub const PEX_BURST: usize = 3;

/// Pieces a peer may allow us to fetch while it chokes us that we keep (BEP 6 suggests 10;
/// libtorrent grants 5).
const MAX_ALLOWED_IN: usize = 32;

/// Blocks not asked for that a peer may send before it is dropped.
const MAX_UNASKED: u32 = 64;

/// The time limits a connection's deadline is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timers {
    /// For the TCP connect and the handshake.
    pub(crate) handshake: Duration,
    /// A keep-alive goes out after this long without sending.
    pub(crate) keepalive: Duration,
    /// A request unanswered this long is withdrawn.
    pub(crate) request: Duration,
    /// A peer silent this long is not alive.
    pub(crate) dead_after: Duration,
}

/// What a peer sent, once decoded and checked against what was negotiated.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// Its handshake: the session checks the torrent and calls [`Connection::established`].
    Handshake(Handshake),
    /// A BEP 3 or BEP 6 message.
    Message(Message<'a>),
    /// An extended handshake, already taken into [`Connection::ext`].
    ExtHandshake,
    /// A PEX message.
    Pex(Pex),
    /// A `ut_metadata` message (BEP 9).
    Metadata(MetadataMsg<'a>),
    /// Nothing to act on (a `ut_metadata` type btmini does not know).
    Nothing,
}

/// What became of a request from the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queued {
    /// Queued, to be read and sent.
    Yes,
    /// Refused: past its queue (rejected if it speaks Fast).
    Refused,
}

/// One connection's protocol state.
#[derive(Debug)]
pub(crate) struct Connection {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// We dialled it.
    pub(crate) outgoing: bool,
    /// Handshake progress.
    pub(crate) stage: Stage,
    /// Its peer id, once the handshake arrived.
    pub(crate) peer_id: Option<[u8; 20]>,
    /// Bytes received and not yet parsed (only a message split across reads).
    pub(crate) rx: Vec<u8>,
    /// Bytes to send, from `tx_at` on (what is before it was sent: dropping it at once
    /// would shift the rest after every partial write).
    tx: Vec<u8>,
    /// RC4 for what is queued, after an MSE handshake that chose it.
    enc: Option<crate::mse::Half>,
    tx_at: usize,
    /// When it connected (or we started connecting).
    pub(crate) since: Instant,
    /// Last bytes from it.
    pub(crate) last_heard: Instant,
    /// Last bytes to it.
    pub(crate) last_sent: Instant,
    /// Both sides set the Fast bit (BEP 6).
    pub(crate) fast: bool,
    /// Both sides set the extension protocol bit (BEP 10).
    pub(crate) ltep: bool,
    /// It set the DHT bit (BEP 5): it runs a node, and wants our `port` message.
    pub(crate) dht: bool,
    /// It sent its `port` message already (one is taken per connection).
    pub(crate) told_dht_port: bool,
    /// What it offers through BEP 10.
    pub(crate) ext: Registry,
    /// We offered it `ut_pex` (not for a private torrent).
    offered_pex: bool,
    /// We choke it (it may not download from us).
    pub(crate) am_choking: bool,
    /// We want something it has.
    pub(crate) am_interested: bool,
    /// It chokes us.
    pub(crate) peer_choking: bool,
    /// It wants something we have.
    pub(crate) peer_interested: bool,
    /// Our requests to it, with when they were sent, oldest first (kept in that order: the
    /// oldest is the next to time out, and blocks come back mostly in order, so the one
    /// answered is found near the front).
    pub(crate) requests: VecDeque<(BlockRef, Instant)>,
    /// Requests we withdrew (cancelled, timed out, discarded by its choke) whose block or
    /// reject may still arrive: that many are not held against it.
    withdrawn: u32,
    /// Blocks it sent that were not asked for.
    unasked: u32,
    /// Rejects of our outstanding requests since it last unchoked us.
    pub(crate) rejects: u32,
    /// Its requests to us, waiting to be read and sent.
    pub(crate) upload_queue: VecDeque<BlockRef>,
    /// Reads asked of the shell for it and not yet answered.
    pub(crate) reading: usize,
    /// Requests refused in a row for being past its queue.
    over_queue: u32,
    /// Pieces it lets us request while it chokes us (BEP 6).
    pub(crate) allowed_in: Vec<u32>,
    /// Pieces we let it request while we choke it (BEP 6).
    pub(crate) allowed_out: Vec<u32>,
    /// When its last PEX messages came (at most [`PEX_BURST`]).
    pex_heard: VecDeque<Instant>,
    /// When we may send it the next PEX message; `None` until it offers `ut_pex`.
    pub(crate) pex_due: Option<Instant>,
    /// The addresses our PEX messages told it of and did not drop since.
    pub(crate) pex_told: Vec<SocketAddr>,
    /// What the shell knows of how it connects (the PEX flags for encryption and uTP).
    pub(crate) transport_flags: u8,
}

impl Connection {
    /// A connection to (`outgoing`) or from `addr`.
    pub(crate) fn new(addr: SocketAddr, outgoing: bool, now: Instant) -> Self {
        Self {
            addr,
            outgoing,
            stage: if outgoing {
                Stage::Connecting
            } else {
                Stage::Handshake
            },
            peer_id: None,
            rx: Vec::new(),
            tx: Vec::new(),
            enc: None,
            tx_at: 0,
            since: now,
            last_heard: now,
            last_sent: now,
            fast: false,
            ltep: false,
            dht: false,
            told_dht_port: false,
            ext: Registry::default(),
            offered_pex: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            requests: VecDeque::new(),
            withdrawn: 0,
            unasked: 0,
            rejects: 0,
            upload_queue: VecDeque::new(),
            reading: 0,
            over_queue: 0,
            allowed_in: Vec::new(),
            allowed_out: Vec::new(),
            pex_heard: VecDeque::new(),
            pex_due: None,
            pex_told: Vec::new(),
            transport_flags: 0,
        }
    }

    /// Queues `msg`.
    pub(crate) fn send(&mut self, msg: &Message<'_>) {
        let at = self.tx.len();
        wire::encode(msg, &mut self.tx);
        self.seal(at);
    }

    /// Queues bytes as they are (a handshake).
    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        let at = self.tx.len();
        self.tx.extend_from_slice(bytes);
        self.seal(at);
    }

    /// Encrypts what was just queued from `at` on, once, in the queue itself (MSE).
    fn seal(&mut self, at: usize) {
        if let Some(enc) = &mut self.enc {
            enc.apply(&mut self.tx[at..]);
        }
    }

    /// From now on, everything queued is encrypted with `enc` (an MSE handshake ended in
    /// RC4; the shell decrypts what it reads with the other half).
    pub(crate) fn set_encryptor(&mut self, enc: crate::mse::Half) {
        self.enc = Some(enc);
    }

    /// The bytes waiting to be sent.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.tx[self.tx_at..]
    }

    /// `n` bytes of [`Connection::pending`] were sent. The buffer is compacted only once it
    /// is empty or mostly sent, so a partial write costs no copy of what is left.
    pub(crate) fn consume(&mut self, n: usize) {
        self.tx_at = (self.tx_at + n).min(self.tx.len());
        if self.tx_at == self.tx.len() {
            self.tx.clear();
            self.tx_at = 0;
        } else if self.tx_at >= 64 * 1024 && self.tx_at * 2 >= self.tx.len() {
            self.tx.drain(..self.tx_at);
            self.tx_at = 0;
        }
    }

    /// Our TCP connect finished: our handshake goes first.
    pub(crate) fn connected(&mut self, handshake: &[u8], now: Instant) {
        self.stage = Stage::Handshake;
        self.since = now;
        self.last_heard = now;
        self.send_raw(handshake);
    }

    /// The peer's handshake was accepted: what both sides set decides the extensions.
    pub(crate) fn established(&mut self, theirs: &Handshake) {
        self.peer_id = Some(theirs.peer_id);
        self.stage = Stage::Active;
        let both = |bit| wire::has_bit(&OUR_RESERVED, bit) && wire::has_bit(&theirs.reserved, bit);
        self.fast = both(wire::RESERVED_FAST);
        self.ltep = both(wire::RESERVED_LTEP);
        self.dht = wire::has_bit(&theirs.reserved, wire::RESERVED_DHT);
    }

    /// How many more bytes complete the first message in `rx` (see [`wire::missing`]).
    pub(crate) fn missing(&self) -> usize {
        wire::missing(&self.rx, self.stage == Stage::Handshake)
    }

    /// Decodes one input from the start of `buf`: the input and the bytes it used, or
    /// `Ok(None)` when more are needed. Checks what the codec cannot: Fast messages need
    /// the Fast bit, extended ones the BEP 10 bit and an id we offered.
    pub(crate) fn decode<'a>(
        &mut self,
        buf: &'a [u8],
        max_msg: u32,
        now: Instant,
    ) -> Result<Option<(Input<'a>, usize)>, CloseReason> {
        if self.stage == Stage::Handshake {
            return Ok(Handshake::decode(buf)?.map(|h| (Input::Handshake(h), wire::HANDSHAKE_LEN)));
        }
        let Some((msg, n)) = wire::decode(buf, max_msg)? else {
            return Ok(None);
        };
        let fast_only = match msg {
            Message::Suggest(_) => Some("suggest_piece"),
            Message::HaveAll => Some("have_all"),
            Message::HaveNone => Some("have_none"),
            Message::Reject { .. } => Some("reject_request"),
            Message::AllowedFast(_) => Some("allowed_fast"),
            _ => None,
        };
        if let Some(name) = fast_only.filter(|_| !self.fast) {
            return Err(Violation::FastWithoutBit(name).into());
        }
        let input = match msg {
            Message::Extended { id, payload } => self.extended(id, payload, now)?,
            m => Input::Message(m),
        };
        Ok(Some((input, n)))
    }

    fn extended<'a>(
        &mut self,
        id: u8,
        payload: &'a [u8],
        now: Instant,
    ) -> Result<Input<'a>, CloseReason> {
        if !self.ltep {
            return Err(Violation::ExtendedWithoutBit.into());
        }
        match id {
            0 => {
                self.ext.apply(ExtHandshake::decode(payload)?);
                Ok(Input::ExtHandshake)
            }
            ext::UT_PEX if self.offered_pex => {
                while self
                    .pex_heard
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
                {
                    self.pex_heard.pop_front();
                }
                if self.pex_heard.len() >= PEX_BURST {
                    return Err(Violation::PexFlood.into());
                }
                self.pex_heard.push_back(now);
                Ok(Input::Pex(Pex::decode(payload)?))
            }
            ext::UT_METADATA => Ok(match MetadataMsg::decode(payload)? {
                Some(m) => Input::Metadata(m),
                None => Input::Nothing,
            }),
            other => Err(Violation::UnknownExtension(other).into()),
        }
    }

    /// Sends a `ut_metadata` message, if it offered the extension; whether it did.
    pub(crate) fn send_metadata(&mut self, msg: &MetadataMsg<'_>) -> bool {
        if self.ext.ut_metadata == 0 {
            return false;
        }
        let payload = msg.encode();
        self.send(&Message::Extended {
            id: self.ext.ut_metadata,
            payload: &payload,
        });
        true
    }

    /// Sends our extended handshake.
    pub(crate) fn send_ext_handshake(&mut self, ours: &ExtHandshake) {
        self.offered_pex = ours.ut_pex.is_some();
        let payload = ours.encode();
        self.send(&Message::Extended {
            id: 0,
            payload: &payload,
        });
    }

    /// Chokes it: its queued requests are void (rejected, if it speaks Fast, except those
    /// for pieces it may fetch while choked). Returns whether anything changed.
    pub(crate) fn choke(&mut self) -> bool {
        if self.am_choking {
            return false;
        }
        self.am_choking = true;
        self.send(&Message::Choke);
        let queue = std::mem::take(&mut self.upload_queue);
        for r in queue {
            if self.allowed_out.contains(&r.index) {
                self.upload_queue.push_back(r);
            } else {
                self.refuse(r);
            }
        }
        true
    }

    /// Unchokes it. Returns whether anything changed.
    pub(crate) fn unchoke(&mut self) -> bool {
        if !self.am_choking || self.stage != Stage::Active {
            return false;
        }
        self.am_choking = false;
        self.send(&Message::Unchoke);
        true
    }

    /// Tells it whether we are interested, if that changed.
    pub(crate) fn set_interested(&mut self, want: bool) {
        if want != self.am_interested {
            self.am_interested = want;
            self.send(&if want {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    /// How many requests to keep in flight: enough for about two seconds at `rate` bytes
    /// per second, at least 8 and at most 250, and never past the queue it stated.
    pub(crate) fn pipeline(&self, rate: f64) -> usize {
        let per_two_secs = rate * 2.0 / f64::from(wire::BLOCK);
        let cap = self.ext.reqq.map_or(250, |q| q.clamp(1, 250) as usize);
        (per_two_secs as usize).clamp(8, 250).min(cap)
    }

    /// Whether we have a request out for `r`.
    pub(crate) fn asked(&self, r: BlockRef) -> bool {
        self.requests.iter().any(|(q, _)| *q == r)
    }

    /// Sends a request for `r`.
    pub(crate) fn request(&mut self, r: BlockRef, now: Instant) {
        self.send(&Message::Request {
            index: r.index,
            begin: r.begin,
            length: r.len,
        });
        self.requests.push_back((r, now));
    }

    /// Block `r` arrived: whether we had asked for it. Late blocks after a choke, a cancel
    /// or a timeout are normal; a stream of blocks nobody asked for is not.
    pub(crate) fn block_arrived(&mut self, r: BlockRef) -> Result<bool, CloseReason> {
        if let Some(asked) = self.answer(r) {
            return Ok(asked);
        }
        self.unasked += 1;
        if self.unasked > MAX_UNASKED {
            return Err(Violation::UnaskedBlocks.into());
        }
        Ok(false)
    }

    /// A BEP 6 reject for `r`: whether it was still outstanding (and now is not). A reject
    /// for a request we withdrew is the normal answer to a cancel; one for a request we
    /// never made breaks the protocol.
    pub(crate) fn rejected(&mut self, r: BlockRef) -> Result<bool, CloseReason> {
        let outstanding = self
            .answer(r)
            .ok_or(CloseReason::Protocol(Violation::UnexpectedReject))?;
        self.rejects += u32::from(outstanding);
        Ok(outstanding)
    }

    /// An answer (block or reject) to `r`: `Some(true)` if it was outstanding (and now is
    /// not), `Some(false)` if it answers a request we withdrew, `None` if it answers nothing.
    fn answer(&mut self, r: BlockRef) -> Option<bool> {
        if let Some(pos) = self.requests.iter().position(|(q, _)| *q == r) {
            self.requests.remove(pos);
            return Some(true);
        }
        if self.withdrawn > 0 {
            self.withdrawn -= 1;
            return Some(false);
        }
        None
    }

    /// Endgame: `r` came from elsewhere, so its request here is cancelled. Whether there was
    /// one.
    pub(crate) fn cancel(&mut self, r: BlockRef) -> bool {
        let Some(pos) = self.requests.iter().position(|(q, _)| *q == r) else {
            return false;
        };
        self.requests.remove(pos);
        self.withdrawn += 1;
        self.send(&Message::Cancel {
            index: r.index,
            begin: r.begin,
            length: r.len,
        });
        true
    }

    /// It choked us: without Fast that discards every request (returned, to be asked
    /// again elsewhere); with Fast they stand until served or rejected.
    pub(crate) fn choked_us(&mut self) -> Vec<(BlockRef, Instant)> {
        self.peer_choking = true;
        if self.fast {
            return Vec::new();
        }
        self.withdrawn += self.requests.len() as u32;
        std::mem::take(&mut self.requests).into()
    }

    /// Requests sent before `now - timeout` are withdrawn and returned.
    pub(crate) fn expire(&mut self, now: Instant, timeout: Duration) -> Vec<BlockRef> {
        let mut late = Vec::new();
        self.requests.retain(|(r, sent)| {
            let keep = now.duration_since(*sent) < timeout;
            if !keep {
                late.push(*r);
            }
            keep
        });
        self.withdrawn += late.len() as u32;
        late
    }

    /// Refuses its request `r`: a reject if it speaks Fast, silence otherwise (BEP 3).
    pub(crate) fn refuse(&mut self, r: BlockRef) {
        if self.fast {
            self.send(&Message::Reject {
                index: r.index,
                begin: r.begin,
                length: r.len,
            });
        }
    }

    /// Queues its (valid) request `r` if its queue of `limit` has room; refuses it
    /// otherwise, and drops a peer that goes on asking far past it.
    pub(crate) fn enqueue(&mut self, r: BlockRef, limit: usize) -> Result<Queued, CloseReason> {
        if self.upload_queue.len() + self.reading < limit {
            self.over_queue = 0;
            self.upload_queue.push_back(r);
            return Ok(Queued::Yes);
        }
        self.over_queue += 1;
        if self.over_queue >= FLOOD_FACTOR * limit as u32 {
            return Err(Violation::RequestFlood(self.over_queue).into());
        }
        self.refuse(r);
        Ok(Queued::Refused)
    }

    /// Its cancel of `r`: the request leaves the queue, answered with a reject if it speaks
    /// Fast (BEP 6: every request gets exactly one answer).
    pub(crate) fn cancelled(&mut self, r: BlockRef) {
        let before = self.upload_queue.len();
        self.upload_queue.retain(|q| *q != r);
        if self.upload_queue.len() < before {
            self.refuse(r);
        }
    }

    /// It is no longer interested: its queued requests are void.
    pub(crate) fn not_interested(&mut self) {
        self.peer_interested = false;
        for r in std::mem::take(&mut self.upload_queue) {
            self.refuse(r);
        }
    }

    /// A piece it allows us to fetch while it chokes us (kept up to a bound).
    pub(crate) fn allow_in(&mut self, index: u32) -> bool {
        if self.allowed_in.len() >= MAX_ALLOWED_IN || self.allowed_in.contains(&index) {
            return false;
        }
        self.allowed_in.push(index);
        true
    }

    /// The address others can dial it at: where we dialled it, or its IP with the listen
    /// port it stated. `None` for a peer that dialled us and stated none.
    pub(crate) fn reachable_addr(&self) -> Option<SocketAddr> {
        if self.outgoing {
            Some(self.addr)
        } else {
            self.ext.port.map(|p| SocketAddr::new(self.addr.ip(), p))
        }
    }

    /// The next moment something is due on this connection, later than `after` (what was
    /// due by then was handled, or deliberately left: a keep-alive behind queued bytes, a
    /// silent peer kept): the handshake's time limit before it is active; then the next
    /// keep-alive, the oldest request's time limit, the next PEX message and the moment it
    /// counts as silent.
    pub(crate) fn deadline(&self, t: &Timers, after: Option<Instant>) -> Option<Instant> {
        let later = |d: &Instant| after.is_none_or(|a| *d > a);
        if self.stage != Stage::Active {
            return Some(self.since + t.handshake).filter(later);
        }
        // The oldest is first; after a handle_timeout every one left is due later.
        let oldest = self.requests.front().map(|(_, sent)| *sent + t.request);
        [
            Some(self.last_sent + t.keepalive),
            Some(self.last_heard + t.dead_after),
            oldest,
            self.pex_due,
        ]
        .into_iter()
        .flatten()
        .filter(later)
        .min()
    }

    /// Whether it has been heard from within `window`.
    pub(crate) fn alive(&self, now: Instant, window: Duration) -> bool {
        now.duration_since(self.last_heard) < window
    }
}

/// BEP 6's allowed-fast set: `k` pieces of `count` for a peer at IPv4 address `ip`, from
/// the SHA-1 chain over its /24 and the info-hash. Fewer when the torrent has fewer pieces.
pub fn allowed_fast_set(ip: [u8; 4], info_hash: &[u8; 20], count: u32, k: usize) -> Vec<u32> {
    let k = k.min(count as usize);
    let mut set = Vec::with_capacity(k);
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&[ip[0], ip[1], ip[2], 0]);
    x.extend_from_slice(info_hash);
    while set.len() < k {
        let h = crate::hash::sha1(&x);
        for word in h.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let index = u32::from_be_bytes(word.try_into().expect("4 bytes")) % count;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x = h.to_vec();
    }
    set
}

#[cfg(test)]
mod tests;
