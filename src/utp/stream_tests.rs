use super::*;
use crate::utp::packet::decode;

/// A simulated path between two streams: a propagation delay, a bottleneck of `rate` bytes a
/// millisecond with its queue, and a loss pattern (every `loss_every`-th datagram dropped).
struct Net {
    delay: Duration,
    rate: usize,
    loss_every: usize,
    /// Datagrams sent in this time are all lost (a burst).
    burst: std::ops::Range<Instant>,
    sent: usize,
    /// Delivery time, to b?, datagram.
    flying: Vec<(Instant, bool, Vec<u8>)>,
    link_free: [Instant; 2],
    max_queue: Duration,
    lost: usize,
}

impl Net {
    fn new(delay_ms: u64, rate: usize, loss_every: usize, t0: Instant) -> Self {
        Self {
            delay: Duration::from_millis(delay_ms),
            rate,
            loss_every,
            burst: t0..t0,
            sent: 0,
            flying: Vec::new(),
            link_free: [t0; 2],
            max_queue: Duration::ZERO,
            lost: 0,
        }
    }

    fn send(&mut self, now: Instant, to_b: bool, d: Vec<u8>) {
        self.sent += 1;
        if self.loss_every > 0 && self.sent % self.loss_every == 0 || self.burst.contains(&now) {
            self.lost += 1;
            return;
        }
        let lane = usize::from(to_b);
        let start = self.link_free[lane].max(now);
        let serialise = Duration::from_micros((d.len() * 1000 / self.rate.max(1)) as u64);
        self.link_free[lane] = start + serialise;
        self.max_queue = self.max_queue.max(start - now);
        self.flying.push((start + serialise + self.delay, to_b, d));
    }
}

/// Runs `a` (dialler) and `b` until each has received `want_b` / `want_a` bytes (what the
/// other wrote), or `limit` simulated seconds; returns what each received and the time.
fn exchange(
    net: &mut Net,
    a_data: &[u8],
    b_data: &[u8],
    t0: Instant,
    a_seq: u16,
    b_seq: u16,
    limit: u64,
) -> (Vec<u8>, Vec<u8>, Duration) {
    let mut a = Stream::connect(1000, a_seq, t0);
    let mut b: Option<Stream> = None;
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    let (mut wa, mut wb) = (0, 0);
    let mut buf = Vec::new();
    let mut now = t0;
    let end = t0 + Duration::from_secs(limit);
    while now < end {
        wa += a.write(&a_data[wa..]);
        if let Some(b) = &mut b {
            wb += b.write(&b_data[wb..]);
        }
        while a.poll_transmit(now, &mut buf) {
            net.send(now, true, buf.clone());
        }
        if let Some(b) = &mut b {
            while b.poll_transmit(now, &mut buf) {
                net.send(now, false, buf.clone());
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = net.flying.drain(..).partition(|f| f.0 <= now);
        net.flying = later;
        for (_, to_b, d) in due {
            let p = decode(&d).unwrap();
            if to_b {
                match &mut b {
                    None if p.header.ty == packet::Type::Syn => {
                        b = Some(Stream::accept(&p, b_seq, now));
                    }
                    None => {}
                    Some(b) => b.handle(now, &p),
                }
            } else {
                a.handle(now, &p);
            }
        }
        a.handle_timeout(now);
        a.read(&mut got_a);
        if let Some(b) = &mut b {
            b.handle_timeout(now);
            b.read(&mut got_b);
        }
        if got_b.len() == a_data.len() && got_a.len() == b_data.len() {
            return (got_a, got_b, now - t0);
        }
        assert!(a.error().is_none(), "a failed: {:?}", a.error());
        now += Duration::from_micros(500);
    }
    panic!(
        "not done in {limit} s: b got {} of {}, a got {} of {}; {a:?}, {b:?}",
        got_b.len(),
        a_data.len(),
        got_a.len(),
        b_data.len()
    );
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn a_handshake_then_bytes_both_ways() {
    let t0 = Instant::now();
    let mut net = Net::new(5, 10_000, 0, t0);
    let (x, y) = (bytes(1_000_003, 1), bytes(300_001, 2));
    let (got_a, got_b, _) = exchange(&mut net, &x, &y, t0, 7, 40_000, 60);
    assert!(got_b == x && got_a == y);
}

#[test]
fn sequence_numbers_wrap() {
    let t0 = Instant::now();
    let mut net = Net::new(1, 50_000, 0, t0);
    let (x, y) = (bytes(400_000, 3), bytes(400_000, 4));
    // About 290 packets each way, starting 100 below the wrap.
    let (got_a, got_b, _) = exchange(&mut net, &x, &y, t0, 65_436, 65_500, 60);
    assert!(got_b == x && got_a == y);
}

#[test]
fn a_lossy_path_still_delivers_every_byte_in_order() {
    for loss_every in [100, 13, 5] {
        let t0 = Instant::now();
        let mut net = Net::new(20, 5_000, loss_every, t0);
        let (x, y) = (bytes(500_000, 5), bytes(50_000, 6));
        let (got_a, got_b, _) = exchange(&mut net, &x, &y, t0, 1, 2, 300);
        assert!(got_b == x && got_a == y, "loss 1/{loss_every}");
    }
}

#[test]
fn ledbat_keeps_the_bottleneck_queue_near_the_target() {
    // 1 MB/s through a bottleneck with 10 ms of propagation, for 12 s: a window that grew
    // without regard to delay would fill the 1 MiB send buffer, a queue of a second.
    let t0 = Instant::now();
    let mut net = Net::new(10, 1_000, 0, t0);
    let x = bytes(12_000_000, 7);
    let (_, got_b, took) = exchange(&mut net, &x, &[], t0, 1, 2, 120);
    assert!(got_b == x);
    assert!(
        net.max_queue < Duration::from_millis(200),
        "queue {:?}",
        net.max_queue
    );
    // And the link was used: 12 MB at 1 MB/s is 12 s.
    assert!(took < Duration::from_secs(14), "{took:?}");
}

#[test]
fn an_unanswered_syn_is_sent_three_times_then_fails() {
    let t0 = Instant::now();
    let mut a = Stream::connect(5, 1, t0);
    let mut buf = Vec::new();
    let mut sent = 0;
    let mut now = t0;
    while a.error().is_none() {
        while a.poll_transmit(now, &mut buf) {
            assert_eq!(decode(&buf).unwrap().header.ty, packet::Type::Syn);
            sent += 1;
        }
        now = a.poll_timeout().expect("a deadline while the SYN waits");
        a.handle_timeout(now);
    }
    assert_eq!(sent, 3);
    assert_eq!(a.error(), Some(UtpError::ConnectTimeout));
    assert_eq!(now - t0, Duration::from_secs(3));
}

/// Dials, answers, and returns the connected pair.
fn pair(t0: Instant) -> (Stream, Stream) {
    let mut a = Stream::connect(100, 10, t0);
    let mut buf = Vec::new();
    assert!(a.poll_transmit(t0, &mut buf));
    let mut b = Stream::accept(&decode(&buf).unwrap(), 500, t0);
    assert!(b.poll_transmit(t0, &mut buf));
    a.handle(t0, &decode(&buf).unwrap());
    assert!(a.is_connected() && !b.is_connected());
    // The dialler's first packet (here an empty one) connects the side dialled.
    a.ack_due = true;
    assert!(a.poll_transmit(t0, &mut buf));
    b.handle(t0, &decode(&buf).unwrap());
    assert!(b.is_connected());
    (a, b)
}

#[test]
fn an_ack_of_unsent_data_and_a_reset() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let mut buf = Vec::new();
    a.write(b"hello");
    assert!(a.poll_transmit(t0, &mut buf));
    // b acknowledges 1,000 packets a never sent: ignored, a's packet stays in flight.
    let mut lie = Vec::new();
    let h = Header {
        ty: packet::Type::State,
        conn_id: a.recv_id(),
        timestamp: 0,
        timestamp_diff: 0,
        wnd_size: 1 << 20,
        seq_nr: 500,
        ack_nr: 11 + 1000,
    };
    packet::encode(&h, None, &[], &mut lie);
    a.handle(t0, &decode(&lie).unwrap());
    assert!(!a.is_flushed());
    b.handle(t0, &decode(&buf).unwrap());
    let mut got = Vec::new();
    b.read(&mut got);
    assert_eq!(got, b"hello");
    lie.clear();
    packet::encode(
        &Header {
            ty: packet::Type::Reset,
            ..h
        },
        None,
        &[],
        &mut lie,
    );
    a.handle(t0, &decode(&lie).unwrap());
    assert_eq!(a.error(), Some(UtpError::Reset));
    assert_eq!(a.write(b"more"), 0);
}

#[test]
fn a_fin_after_the_data_ends_the_peer_s_stream() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let mut buf = Vec::new();
    let data = bytes(20_000, 9);
    a.write(&data);
    a.close();
    let mut got = Vec::new();
    let mut last = None;
    for _ in 0..100 {
        let mut batch = Vec::new();
        while a.poll_transmit(t0, &mut buf) {
            batch.push(buf.clone());
        }
        if batch.is_empty() {
            break;
        }
        last = batch.last().map(|d| decode(d).unwrap().header.ty);
        // Each window delivered backwards: held until the hole before it fills.
        for d in batch.iter().rev() {
            assert!(b.error().is_none());
            b.handle(t0, &decode(d).unwrap());
        }
        b.read(&mut got);
        while b.poll_transmit(t0, &mut buf) {
            a.handle(t0, &decode(&buf).unwrap());
        }
    }
    assert_eq!(last, Some(packet::Type::Fin));
    assert_eq!(got, data);
    assert_eq!(b.error(), Some(UtpError::Eof));
    assert!(a.is_flushed());
}

#[test]
fn packets_far_ahead_are_dropped_and_memory_stays_bounded() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let _ = &mut a;
    let mut d = Vec::new();
    let payload = vec![0u8; MAX_PAYLOAD];
    for i in 0..30_000u16 {
        d.clear();
        let h = Header {
            ty: packet::Type::Data,
            conn_id: b.recv_id(),
            timestamp: 0,
            timestamp_diff: 0,
            wnd_size: 1 << 20,
            seq_nr: 12u16.wrapping_add(i),
            ack_nr: 10,
        };
        packet::encode(&h, None, &payload, &mut d);
        b.handle(t0, &decode(&d).unwrap());
    }
    assert!(b.reorder_bytes <= RECV_WINDOW);
    assert!(b.reorder.len() <= 4 * RECV_WINDOW / MAX_PAYLOAD + 1);
    // Its ACKs carry a selective ACK for what it holds.
    let mut buf = Vec::new();
    assert!(b.poll_transmit(t0, &mut buf));
    let p = decode(&buf).unwrap();
    assert_eq!(p.header.ack_nr, 10);
    assert_eq!(p.sack.map(|s| s[0]), Some(0xff));
}

#[test]
fn with_the_reorder_buffer_full_the_packet_that_fills_the_hole_still_gets_in() {
    let t0 = Instant::now();
    let (_a, mut b) = pair(t0);
    let id = b.recv_id();
    let data = |seq: u16, len: usize| {
        let mut d = Vec::new();
        let h = Header {
            ty: packet::Type::Data,
            conn_id: id,
            timestamp: 0,
            timestamp_diff: 0,
            wnd_size: 1 << 20,
            seq_nr: seq,
            ack_nr: 10,
        };
        packet::encode(&h, None, &vec![seq as u8; len], &mut d);
        d
    };
    // Packet 11 is missing; 12 onwards fill the window.
    let mut seq = 12u16;
    while b.held() + MAX_PAYLOAD <= RECV_WINDOW {
        b.handle(t0, &decode(&data(seq, MAX_PAYLOAD)).unwrap());
        seq += 1;
    }
    let last = RECV_WINDOW - b.held();
    b.handle(t0, &decode(&data(seq, last)).unwrap());
    assert_eq!(b.held(), RECV_WINDOW);
    b.handle(t0, &decode(&data(11, MAX_PAYLOAD)).unwrap());
    assert_eq!(b.held(), 0);
    let mut got = Vec::new();
    b.read(&mut got);
    assert_eq!(got.len(), MAX_PAYLOAD + RECV_WINDOW);
}

#[test]
fn a_burst_lost_whole_comes_back_in_a_few_round_trips() {
    // Everything sent for 20 ms lost (a receiver's full socket buffer): hundreds of
    // packets. Each timeout must not bring back only one of them, or this takes hundreds of
    // timeouts, minutes.
    let t0 = Instant::now();
    let mut net = Net::new(5, 20_000, 0, t0);
    net.burst = t0 + Duration::from_millis(100)..t0 + Duration::from_millis(120);
    let x = bytes(8_000_000, 8);
    let (_, got_b, took) = exchange(&mut net, &x, &[], t0, 1, 2, 300);
    assert!(got_b == x);
    let lost = net.lost;
    assert!(lost > 100, "{lost} lost");
    assert!(took < Duration::from_secs(5), "{took:?}, {lost} lost");
}
