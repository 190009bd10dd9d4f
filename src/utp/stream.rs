//! One uTP connection without sockets or clocks: datagrams and the time in, datagrams,
//! received bytes and the next deadline out (the `tracker/udp.rs` shape).
//!
//! - Sequence and ack numbers are 16 bits and wrap; every comparison is modular.
//! - A STATE packet carries the next sequence number it has not used (libutp's habit): the
//!   side that sent the SYN takes the SYN-ACK's `seq_nr − 1` as acknowledged.
//! - Congestion control is LEDBAT: the window grows by up to 3,000 bytes a round trip while
//!   the one-way delay the peer measures (its `timestamp_difference`) is under the 100 ms
//!   target, above the lowest delay of the last two minutes, and shrinks past it; a slow
//!   start doubles it each round trip until the first loss or half the target. A loss (three
//!   duplicate ACKs, or three packets selectively acknowledged past a hole) halves it once per
//!   window; a timeout drops it to one packet and resends.
//! - Timeouts follow TCP's estimator (RFC 6298) with uTP's 500 ms floor; the SYN is sent 3
//!   times, a second apart, data up to 6 times, and then the connection is dead.
//! - Memory is bounded: the bytes written and not yet acknowledged by [`SEND_BUFFER`], the
//!   bytes received out of order by [`RECV_WINDOW`] (which is what we advertise).

use super::packet::{self, Header, MAX_SACK, Packet, Type};
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// Largest datagram we send (libutp's is 1,435; this stays under any path MTU of 1,500
/// with IPv6 and tunnel headers to spare).
pub const MAX_DATAGRAM: usize = 1400;
/// Largest payload of one packet.
pub(crate) const MAX_PAYLOAD: usize = MAX_DATAGRAM - packet::HEADER_LEN;
/// Bytes written and not yet acknowledged, at most.
pub const SEND_BUFFER: usize = 1 << 20;
/// Bytes we accept out of order (and advertise as our window).
pub const RECV_WINDOW: usize = 1 << 20;
/// LEDBAT's target queuing delay.
pub const TARGET_DELAY: Duration = Duration::from_millis(100);
/// Window growth per round trip at zero delay (libutp's `MAX_CWND_INCREASE_BYTES_PER_RTT`).
const GAIN: f64 = 3000.0;
/// The smallest timeout.
const MIN_RTO: Duration = Duration::from_millis(500);
/// SYN resends before the dial counts as failed (each a second apart).
const SYN_TRIES: u32 = 3;
const SYN_TIMEOUT: Duration = Duration::from_secs(1);
/// Timeouts in a row before the connection is dead.
const DATA_TRIES: u32 = 6;
/// Duplicate ACKs (or packets selectively acknowledged past a hole) that mean a loss.
const DUP_ACKS: u32 = 3;
/// How long a base delay is remembered (two one-minute halves).
const BASE_HALF: Duration = Duration::from_secs(60);

/// `a − b` in sequence space: positive when `a` is after `b`.
fn dist(a: u16, b: u16) -> i16 {
    a.wrapping_sub(b) as i16
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UtpError {
    /// The SYN was never answered.
    ConnectTimeout,
    /// Data went unacknowledged through every resend.
    Timeout,
    /// The peer reset the connection.
    Reset,
    /// The peer sent its FIN and everything before it arrived.
    Eof,
}

impl fmt::Display for UtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ConnectTimeout => "uTP: no answer to the SYN",
            Self::Timeout => "uTP: timed out",
            Self::Reset => "uTP: reset by the peer",
            Self::Eof => "uTP: closed by the peer",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SynSent,
    /// Answered a SYN; no data goes out until the dialler's first packet after it shows
    /// the SYN-ACK arrived (so a resent SYN-ACK carries the same sequence number).
    SynRecv,
    Connected,
    Closed(UtpError),
}

/// A packet sent and not yet acknowledged.
struct Sent {
    seq: u16,
    ty: Type,
    data: Vec<u8>,
    sent_at: Instant,
    /// Times sent.
    sends: u32,
    /// Acknowledged selectively (it stays until the cumulative ACK passes it).
    sacked: bool,
    /// To be sent again at the next chance.
    resend: bool,
}

/// One uTP connection.
pub struct Stream {
    state: State,
    epoch: Instant,
    recv_id: u16,
    send_id: u16,
    /// The next sequence number to use.
    seq_nr: u16,
    /// The last sequence number received in order.
    ack_nr: u16,
    // Sending.
    unsent: VecDeque<u8>,
    inflight: VecDeque<Sent>,
    inflight_bytes: usize,
    cwnd: f64,
    slow_start: bool,
    peer_wnd: usize,
    /// No more window halving until this sequence number is acknowledged.
    loss_recovery_until: Option<u16>,
    /// After a timeout, the last packet sent before it: until it is acknowledged, each ACK
    /// that moves on resends the next packets sent before the timeout (two for each one
    /// acknowledged, as a slow start would), so a burst lost whole comes back in a few
    /// round trips rather than one packet a timeout.
    timeout_recovery: Option<u16>,
    dup_acks: u32,
    rtt: Option<(Duration, Duration)>,
    rto: Duration,
    /// When the oldest unacknowledged packet times out.
    deadline: Option<Instant>,
    timeouts: u32,
    /// [`Stream::close`] was called.
    fin_queued: bool,
    /// The FIN is queued after the data.
    fin_sent: bool,
    // Delay (LEDBAT): the peer's measurements of our packets.
    base_now: u32,
    base_prev: u32,
    base_since: Instant,
    our_delay: u32,
    // Receiving.
    /// Packets past a hole, by `seq − ack_nr − 2`.
    reorder: VecDeque<Option<Vec<u8>>>,
    reorder_bytes: usize,
    received: Vec<u8>,
    /// Our last measurement of the peer's packets' delay, for `timestamp_diff`.
    reply_micro: u32,
    ack_due: bool,
    /// The peer's FIN's sequence number.
    eof: Option<u16>,
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Stream({}/{}, {:?}, seq {} ack {}, cwnd {:.0}, peer window {}, {} B in {} packets \
             in flight (first {:?}), {} B unsent, {} held in {} slots, timeouts {}, deadline {})",
            self.recv_id,
            self.send_id,
            self.state,
            self.seq_nr,
            self.ack_nr,
            self.cwnd,
            self.peer_wnd,
            self.inflight_bytes,
            self.inflight.len(),
            self.inflight
                .front()
                .map(|p| (p.seq, p.sends, p.sacked, p.resend)),
            self.unsent.len(),
            self.reorder_bytes,
            self.reorder.len(),
            self.timeouts,
            self.deadline.is_some(),
        )
    }
}

impl Stream {
    fn new(recv_id: u16, send_id: u16, seq_nr: u16, now: Instant) -> Self {
        Self {
            state: State::SynSent,
            epoch: now,
            recv_id,
            send_id,
            seq_nr,
            ack_nr: 0,
            unsent: VecDeque::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            cwnd: (2 * MAX_PAYLOAD) as f64,
            slow_start: true,
            peer_wnd: MAX_PAYLOAD,
            loss_recovery_until: None,
            timeout_recovery: None,
            dup_acks: 0,
            rtt: None,
            rto: Duration::from_secs(1),
            deadline: None,
            timeouts: 0,
            fin_queued: false,
            fin_sent: false,
            base_now: u32::MAX,
            base_prev: u32::MAX,
            base_since: now,
            our_delay: 0,
            reorder: VecDeque::new(),
            reorder_bytes: 0,
            received: Vec::new(),
            reply_micro: 0,
            ack_due: false,
            eof: None,
        }
    }

    /// Dials: the SYN is ready to send. `recv_id` is ours (the peer sends to it); `seq` the
    /// first sequence number, random.
    pub fn connect(recv_id: u16, seq: u16, now: Instant) -> Self {
        let mut s = Self::new(recv_id, recv_id.wrapping_add(1), seq, now);
        s.queue(Type::Syn, Vec::new(), now);
        s
    }

    /// Answers `syn` (a SYN whose connection id is free): connected at once, the SYN-ACK
    /// ready to send. `seq` is our first sequence number, random.
    pub fn accept(syn: &Packet<'_>, seq: u16, now: Instant) -> Self {
        let id = syn.header.conn_id;
        let mut s = Self::new(id.wrapping_add(1), id, seq, now);
        s.state = State::SynRecv;
        s.ack_nr = syn.header.seq_nr;
        s.peer_wnd = syn.header.wnd_size as usize;
        s.reply_micro = s.micros(now).wrapping_sub(syn.header.timestamp);
        s.ack_due = true;
        s
    }

    /// The id the peer's packets carry.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// The smoothed round trip, once one was measured (the SYN's answer is the first).
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt.map(|(rtt, _)| rtt)
    }

    /// The handshake is done (for the dialler, the SYN-ACK came; for the side dialled, a
    /// packet after the SYN).
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// Why it ended, once it has.
    pub fn error(&self) -> Option<UtpError> {
        match self.state {
            State::Closed(e) => Some(e),
            _ => None,
        }
    }

    /// The congestion window, bytes.
    pub fn window(&self) -> usize {
        self.cwnd as usize
    }

    fn micros(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// Takes what it can of `data` to send (none once closed): the bytes taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if matches!(self.state, State::Closed(_)) || self.fin_queued {
            return 0;
        }
        let room = SEND_BUFFER.saturating_sub(self.unsent.len() + self.inflight_bytes);
        let n = room.min(data.len());
        self.unsent.extend(&data[..n]);
        n
    }

    /// Bytes written and not yet acknowledged.
    pub fn buffered(&self) -> usize {
        self.unsent.len() + self.inflight_bytes
    }

    /// A RESET for the peer (when the connection is dropped without a FIN); `false` once
    /// closed or before the peer answered.
    pub fn reset_packet(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if matches!(self.state, State::Closed(_) | State::SynSent) {
            return false;
        }
        let h = self.header(Type::Reset, self.seq_nr, now);
        packet::encode(&h, None, &[], out);
        self.state = State::Closed(UtpError::Reset);
        true
    }

    /// Whether everything written, and the FIN after [`Stream::close`], was acknowledged.
    pub fn is_flushed(&self) -> bool {
        self.unsent.is_empty() && self.inflight.is_empty()
    }

    /// The FIN after [`Stream::close`] went out and was acknowledged: the close is done.
    pub fn fin_acked(&self) -> bool {
        self.fin_sent && self.inflight.is_empty()
    }

    /// Bytes received out of order, held until the hole before them fills.
    pub fn held(&self) -> usize {
        self.reorder_bytes
    }

    /// Moves the bytes received in order into `into`.
    pub fn read(&mut self, into: &mut Vec<u8>) {
        into.append(&mut self.received);
    }

    /// Sends a FIN once what is written has gone out.
    pub fn close(&mut self) {
        if matches!(self.state, State::Connected | State::SynRecv) {
            self.fin_queued = true;
        }
    }

    fn queue(&mut self, ty: Type, data: Vec<u8>, now: Instant) {
        self.inflight_bytes += data.len();
        self.inflight.push_back(Sent {
            seq: self.seq_nr,
            ty,
            data,
            sent_at: now,
            sends: 0,
            sacked: false,
            resend: true,
        });
        self.seq_nr = self.seq_nr.wrapping_add(1);
    }

    /// Cuts unsent bytes into packets while the window (or `limit`) has room.
    fn flush_unsent(&mut self, now: Instant, limit: usize) {
        let window = (self.cwnd as usize).min(self.peer_wnd).min(limit);
        while !self.unsent.is_empty() && self.inflight.len() < 0x4000 {
            let n = self.unsent.len().min(MAX_PAYLOAD);
            // One packet may always be in flight, so a window below a packet still moves.
            if self.inflight_bytes > 0 && self.inflight_bytes + n > window {
                break;
            }
            let data: Vec<u8> = self.unsent.drain(..n).collect();
            self.queue(Type::Data, data, now);
        }
        if self.fin_queued && !self.fin_sent && self.unsent.is_empty() {
            self.fin_sent = true;
            self.queue(Type::Fin, Vec::new(), now);
        }
    }

    fn our_wnd(&self) -> u32 {
        RECV_WINDOW.saturating_sub(self.reorder_bytes + self.received.len()) as u32
    }

    fn header(&self, ty: Type, seq: u16, now: Instant) -> Header {
        Header {
            ty,
            conn_id: if ty == Type::Syn {
                self.recv_id
            } else {
                self.send_id
            },
            timestamp: self.micros(now),
            timestamp_diff: self.reply_micro,
            wnd_size: self.our_wnd(),
            seq_nr: seq,
            ack_nr: self.ack_nr,
        }
    }

    /// The selective ACK: a bit for each packet held past the hole.
    fn sack(&self) -> Option<[u8; MAX_SACK]> {
        if self.reorder.is_empty() {
            return None;
        }
        let mut bits = [0u8; MAX_SACK];
        for (i, p) in self.reorder.iter().enumerate().take(MAX_SACK * 8) {
            if p.is_some() {
                bits[i / 8] |= 1 << (i % 8);
            }
        }
        Some(bits)
    }

    /// The next datagram to send, appended to `out` (cleared first); `false` when there is
    /// none. Call until `false` after anything that may have made one.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut Vec<u8>) -> bool {
        out.clear();
        if self.state == State::Closed(UtpError::Eof) && self.ack_due {
            // The ACK of the peer's FIN.
            self.ack_due = false;
            let h = self.header(Type::State, self.seq_nr, now);
            packet::encode(&h, None, &[], out);
            return true;
        }
        if matches!(self.state, State::Closed(_)) {
            return false;
        }
        if self.state == State::Connected {
            self.flush_unsent(now, usize::MAX);
        }
        if let Some(i) = self.inflight.iter().position(|p| p.resend) {
            let h = self.header(self.inflight[i].ty, self.inflight[i].seq, now);
            let p = &mut self.inflight[i];
            p.resend = false;
            p.sends += 1;
            p.sent_at = now;
            packet::encode(&h, None, &p.data, out);
            self.ack_due = false;
            if self.deadline.is_none() {
                self.deadline = Some(now + self.timeout());
            }
            return true;
        }
        if self.ack_due && matches!(self.state, State::Connected | State::SynRecv) {
            self.ack_due = false;
            let h = self.header(Type::State, self.seq_nr, now);
            let sack = self.sack();
            let len = self.reorder.len().min(MAX_SACK * 8).div_ceil(32) * 4;
            packet::encode(&h, sack.as_ref().map(|s| &s[..len]), &[], out);
            return true;
        }
        false
    }

    fn timeout(&self) -> Duration {
        if self.state == State::SynSent {
            SYN_TIMEOUT
        } else {
            self.rto
        }
    }

    /// When [`Stream::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed(_) => None,
            _ => self.deadline,
        }
    }

    /// The oldest packet was not acknowledged in time: resend it with a window of one
    /// packet, the timeout doubled; the connection is dead after too many.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(d) = self.deadline else {
            return;
        };
        if now < d || matches!(self.state, State::Closed(_)) {
            return;
        }
        self.timeouts += 1;
        if self.state == State::SynSent && self.timeouts >= SYN_TRIES {
            self.state = State::Closed(UtpError::ConnectTimeout);
            return;
        }
        if self.timeouts >= DATA_TRIES {
            self.state = State::Closed(UtpError::Timeout);
            return;
        }
        self.rto = (self.rto * 2).min(Duration::from_secs(60));
        self.cwnd = MAX_PAYLOAD as f64;
        // Grow back quickly: the delay measure says whether the path is really loaded.
        self.slow_start = true;
        self.timeout_recovery = Some(self.seq_nr.wrapping_sub(1));
        if let Some(p) = self.inflight.iter_mut().find(|p| !p.sacked) {
            p.resend = true;
        }
        self.deadline = Some(now + self.timeout());
    }

    /// A packet for this connection (its id already matched).
    pub fn handle(&mut self, now: Instant, p: &Packet<'_>) {
        let h = &p.header;
        if matches!(self.state, State::Closed(_)) {
            return;
        }
        if h.ty == Type::Reset {
            self.state = State::Closed(UtpError::Reset);
            return;
        }
        if h.ty == Type::Syn {
            // The dialler did not hear our SYN-ACK: say it again.
            if h.seq_nr == self.ack_nr {
                self.ack_due = true;
            }
            return;
        }
        match self.state {
            State::SynSent if h.ty != Type::State => return,
            State::SynSent => {
                self.state = State::Connected;
                self.ack_nr = h.seq_nr.wrapping_sub(1);
            }
            State::SynRecv => self.state = State::Connected,
            _ => {}
        }
        // An ACK of something never sent is a lie or a stray: ignore the packet.
        let last_sent = self.seq_nr.wrapping_sub(1);
        if dist(h.ack_nr, last_sent) > 0 {
            return;
        }
        self.peer_wnd = h.wnd_size as usize;
        self.reply_micro = self.micros(now).wrapping_sub(h.timestamp);
        if h.timestamp_diff != 0 {
            self.delay_sample(h.timestamp_diff, now);
        }
        self.acked(now, h.ack_nr, p.sack, h.ty == Type::State);
        match h.ty {
            Type::Data | Type::Fin => self.data(h.seq_nr, h.ty, p.payload),
            _ => {}
        }
    }

    fn delay_sample(&mut self, d: u32, now: Instant) {
        if now.duration_since(self.base_since) >= BASE_HALF {
            self.base_prev = self.base_now;
            self.base_now = u32::MAX;
            self.base_since = now;
        }
        let base = self.base_now.min(self.base_prev);
        if base == u32::MAX || (d.wrapping_sub(base) as i32) < 0 {
            self.base_now = d;
            self.our_delay = 0;
            return;
        }
        if (d.wrapping_sub(self.base_now) as i32) < 0 {
            self.base_now = d;
        }
        self.our_delay = d.wrapping_sub(base);
    }

    /// `ack_nr` (and `sack`) of a packet; `pure`: a STATE, which alone counts as a
    /// duplicate ACK when it acknowledges nothing new.
    fn acked(&mut self, now: Instant, ack_nr: u16, sack: Option<&[u8]>, pure: bool) {
        let mut bytes = 0usize;
        let mut progressed = false;
        let mut popped = 0usize;
        while let Some(p) = self.inflight.front() {
            if dist(p.seq, ack_nr) > 0 {
                break;
            }
            let p = self.inflight.pop_front().expect("front");
            progressed = true;
            popped += 1;
            self.inflight_bytes -= p.data.len();
            if !p.sacked {
                bytes += p.data.len();
                if p.sends == 1 {
                    self.rtt_sample(now.duration_since(p.sent_at));
                }
            }
        }
        let mut past_hole = 0;
        if let Some(bits) = sack {
            for p in self.inflight.iter_mut() {
                let i = dist(p.seq, ack_nr.wrapping_add(2));
                if i < 0 || i as usize >= bits.len() * 8 {
                    continue;
                }
                let i = i as usize;
                if bits[i / 8] & (1 << (i % 8)) != 0 {
                    if !p.sacked {
                        p.sacked = true;
                        bytes += p.data.len();
                    }
                    past_hole += 1;
                }
            }
        }
        if let (true, Some(until)) = (progressed, self.timeout_recovery) {
            if dist(ack_nr, until) >= 0 {
                self.timeout_recovery = None;
            } else {
                let mut n = 2 * popped;
                for p in self.inflight.iter_mut() {
                    if n == 0 || dist(p.seq, until) > 0 {
                        break;
                    }
                    if p.sends > 0 && !p.sacked && !p.resend {
                        p.resend = true;
                        n -= 1;
                    }
                }
            }
        }
        if progressed {
            self.dup_acks = 0;
            self.timeouts = 0;
            if let Some(until) = self.loss_recovery_until {
                if dist(ack_nr, until) >= 0 {
                    self.loss_recovery_until = None;
                }
            }
        } else if pure && !self.inflight.is_empty() {
            self.dup_acks += 1;
        }
        if bytes > 0 {
            self.grow(bytes);
        }
        // A loss: the first unacknowledged packet, resent once, and the window halved once
        // per window.
        if (self.dup_acks >= DUP_ACKS || past_hole >= DUP_ACKS as usize)
            && let Some(first) = self.inflight.front_mut()
            && first.sends == 1
            && !first.resend
        {
            first.resend = true;
            if self.loss_recovery_until.is_none() {
                self.cwnd = (self.cwnd / 2.0).max(MAX_PAYLOAD as f64);
                self.slow_start = false;
                self.loss_recovery_until = Some(self.seq_nr.wrapping_sub(1));
            }
        }
        self.deadline = if self.inflight.iter().any(|p| p.sends > 0 && !p.sacked) {
            if progressed {
                Some(now + self.timeout())
            } else {
                self.deadline
            }
        } else {
            None
        };
    }

    fn rtt_sample(&mut self, r: Duration) {
        let (rtt, var) = match self.rtt {
            None => (r, r / 2),
            Some((rtt, var)) => {
                let diff = rtt.abs_diff(r);
                ((rtt * 7 + r) / 8, (var * 3 + diff) / 4)
            }
        };
        self.rtt = Some((rtt, var));
        self.rto = (rtt + var * 4).max(MIN_RTO);
    }

    /// LEDBAT: grows (or shrinks) the window for `bytes` newly acknowledged.
    fn grow(&mut self, bytes: usize) {
        let target = TARGET_DELAY.as_micros() as f64;
        let delay = f64::from(self.our_delay);
        if self.slow_start && delay < target / 2.0 {
            self.cwnd += bytes as f64;
        } else {
            self.slow_start = false;
            let off_target = ((target - delay) / target).clamp(-1.0, 1.0);
            let window_factor = bytes as f64 / self.cwnd.max(bytes as f64);
            self.cwnd += GAIN * off_target * window_factor;
        }
        self.cwnd = self
            .cwnd
            .clamp(MAX_PAYLOAD as f64, (SEND_BUFFER + MAX_PAYLOAD) as f64);
    }

    fn data(&mut self, seq: u16, ty: Type, payload: &[u8]) {
        let d = dist(seq, self.ack_nr);
        if d <= 0 {
            // Already had it: the peer missed our ACK.
            self.ack_due = true;
            return;
        }
        let at = (d - 1) as usize;
        // Past what the window allows: dropped (the peer resends it). The packet next in
        // order is always taken: it holds nothing back, and it may be the one that frees
        // all the rest.
        if at > 0
            && (at > 4 * RECV_WINDOW / MAX_PAYLOAD
                || self.reorder_bytes + payload.len() > RECV_WINDOW)
            || self.eof.is_some_and(|e| dist(seq, e) > 0)
        {
            return;
        }
        if ty == Type::Fin {
            self.eof = Some(seq);
        }
        self.ack_due = true;
        if at > 0 {
            if self.reorder.len() < at {
                self.reorder.resize(at, None);
            }
            if self.reorder[at - 1].is_none() {
                self.reorder_bytes += payload.len();
                self.reorder[at - 1] = Some(payload.to_vec());
            }
            return;
        }
        self.received.extend_from_slice(payload);
        self.ack_nr = seq;
        // Slot i holds `ack_nr + 2 + i`: each step forward takes the front slot, a packet
        // to deliver or the next hole.
        while let Some(slot) = self.reorder.pop_front() {
            let Some(p) = slot else {
                break;
            };
            self.reorder_bytes -= p.len();
            self.received.extend_from_slice(&p);
            self.ack_nr = self.ack_nr.wrapping_add(1);
        }
        if self.eof == Some(self.ack_nr) {
            self.state = State::Closed(UtpError::Eof);
        }
    }
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
