//! Announces over real sockets: to Debian's opentracker over HTTP and UDP, and to scripted
//! fake trackers that misbehave in every way the issue lists. Each ends in a clear error,
//! never a hang: every wait below has a deadline.

mod common;

use btmini::metainfo::InfoHash;
use btmini::tracker::io::{JobId, Resolver, Timeouts, TrackerIo};
use btmini::tracker::response::AnnounceResponse;
use btmini::tracker::{AnnounceEvent, AnnounceParams, TrackerError};
use common::*;
use mio::{Events, Poll, Token, Waker};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const WAKER: Token = Token(0);
const SHARED: Token = Token(7);
const BASE: usize = 100;
/// No test waits longer than this for anything.
const LIMIT: Duration = Duration::from_secs(30);

struct Driver {
    poll: Poll,
    io: TrackerIo,
    events: Events,
    shared: Option<Arc<mio::net::UdpSocket>>,
}

impl Driver {
    fn new(timeouts: Timeouts) -> Self {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        Self {
            io: TrackerIo::new(Resolver::new(waker), BASE, timeouts),
            poll,
            events: Events::with_capacity(64),
            shared: None,
        }
    }

    /// UDP announces on one socket this driver reads (as the host's), not one each.
    fn share_udp(&mut self) {
        let mut socket = mio::net::UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        self.poll
            .registry()
            .register(&mut socket, SHARED, mio::Interest::READABLE)
            .unwrap();
        let socket = Arc::new(socket);
        self.io.set_udp(socket.clone());
        self.shared = Some(socket);
    }

    fn announce(&mut self, url: &str, params: AnnounceParams) -> JobId {
        self.io
            .announce(self.poll.registry(), Instant::now(), url, params)
    }

    /// One pass of the loop: wait for events or the next deadline, dispatch them.
    /// `other` gets the events that are not the trackers'.
    fn turn(&mut self, mut other: impl FnMut(Token)) {
        let now = Instant::now();
        let timeout = self
            .io
            .next_deadline()
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(LIMIT)
            .min(LIMIT);
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        let now = Instant::now();
        let registry = self.poll.registry();
        for e in self.events.iter() {
            if e.token() == WAKER {
                self.io.handle_wake(registry, now);
            } else if e.token() == SHARED {
                let socket = self.shared.as_ref().unwrap();
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = socket.recv_from(&mut buf) {
                    assert!(
                        self.io.handle_datagram(registry, from, &buf[..n], now),
                        "a reply no announce claimed"
                    );
                }
            } else if self.io.owns(e.token()) {
                self.io.handle_event(registry, e.token(), now);
            } else {
                other(e.token());
            }
        }
        self.io.handle_timeouts(registry, Instant::now());
    }

    fn run(&mut self, id: JobId) -> Result<AnnounceResponse, TrackerError> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some((done, r)) = self.io.poll_done() {
                assert_eq!(done, id);
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "announce {id} did not end within {LIMIT:?}"
            );
            self.turn(|t| panic!("unexpected token {t:?}"));
        }
    }
}

fn params(hash: u8, port: u16) -> AnnounceParams {
    let mut peer_id = *b"-BM0100-000000000000";
    peer_id[19] = hash;
    peer_id[18] = (port % 251) as u8;
    AnnounceParams {
        info_hash: InfoHash([hash; 20]),
        peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left: 1000,
        event: AnnounceEvent::Started,
        numwant: 50,
        key: u32::from(port),
        tracker_id: None,
        ipv6: None,
    }
}

fn has_port(r: &AnnounceResponse, port: u16) -> bool {
    r.peers
        .iter()
        .any(|p| *p == SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn udp_announces_of_two_torrents_at_once_share_one_socket() {
    let tracker = OpenTracker::start(&[InfoHash([1; 20]).to_hex(), InfoHash([2; 20]).to_hex()]);
    let udp = format!("udp://127.0.0.1:{}", tracker.port);
    let mut d = Driver::new(Timeouts::default());
    d.share_udp();
    let id = d.announce(&udp, params(1, 1111));
    d.run(id).unwrap();
    // Two exchanges in flight on the one socket, told apart by transaction id.
    let a = d.announce(&udp, params(1, 2222));
    let b = d.announce(&udp, params(2, 3333));
    let mut done = std::collections::HashMap::new();
    let deadline = Instant::now() + LIMIT;
    while done.len() < 2 {
        assert!(Instant::now() < deadline, "announces did not end: {done:?}");
        d.turn(|t| panic!("unexpected token {t:?}"));
        while let Some((id, r)) = d.io.poll_done() {
            done.insert(id, r.unwrap());
        }
    }
    assert!(has_port(&done[&a], 1111), "{:?}", done[&a].peers);
    assert!(
        !has_port(&done[&b], 1111),
        "the other torrent's reply: {:?}",
        done[&b].peers
    );
    assert_eq!(d.io.in_flight(), 0);
}

#[test]
fn announces_to_opentracker_over_http_and_udp_return_the_other_peers() {
    let tracker = OpenTracker::start(&[InfoHash([1; 20]).to_hex(), InfoHash([2; 20]).to_hex()]);
    let http = format!("http://127.0.0.1:{}/announce", tracker.port);
    let udp = format!("udp://127.0.0.1:{}", tracker.port);
    let mut d = Driver::new(Timeouts::default());

    let id = d.announce(&http, params(1, 1111));
    let first = d.run(id).unwrap();
    assert!(first.interval.is_some());
    let id = d.announce(&http, params(1, 2222));
    let second = d.run(id).unwrap();
    assert!(has_port(&second, 1111), "HTTP: {:?}", second.peers);
    let id = d.announce(&udp, params(1, 3333));
    let third = d.run(id).unwrap();
    assert!(
        has_port(&third, 1111) && has_port(&third, 2222),
        "UDP: {:?}",
        third.peers
    );
    assert_eq!(third.incomplete, Some(3));

    // UDP registers a peer that HTTP then sees, on the other torrent.
    let id = d.announce(&udp, params(2, 4444));
    d.run(id).unwrap();
    let id = d.announce(&udp, params(2, 5555));
    let udp_again = d.run(id).unwrap();
    assert!(
        has_port(&udp_again, 4444),
        "the connection id is reused: {:?}",
        udp_again.peers
    );
    let id = d.announce(&http, params(2, 6666));
    let r = d.run(id).unwrap();
    assert!(has_port(&r, 4444) && has_port(&r, 5555), "{:?}", r.peers);
}

#[test]
fn opentracker_refuses_an_unlisted_torrent_over_both() {
    let tracker = OpenTracker::start(&[InfoHash([1; 20]).to_hex()]);
    let mut d = Driver::new(Timeouts::default());
    let id = d.announce(
        &format!("http://127.0.0.1:{}/announce", tracker.port),
        params(9, 1111),
    );
    let e = d.run(id).unwrap_err();
    assert!(
        matches!(&e, TrackerError::Failure(m) if m.contains("not authorized")),
        "{e}"
    );
    assert!(e.to_string().starts_with("tracker says: "));
    // Over UDP, opentracker answers with an announce reply cut to its 8-byte header.
    let id = d.announce(
        &format!("udp://127.0.0.1:{}", tracker.port),
        params(9, 1111),
    );
    let e = d.run(id).unwrap_err().to_string();
    assert_eq!(
        e,
        "bad response: reply of only 8 bytes (does the tracker serve this torrent?)"
    );
}

/// A scripted HTTP tracker: accepts one connection, reads the request, then writes
/// `response` (in two parts) and closes, or with `hold` keeps the connection open silently.
fn fake_http(response: Vec<u8>, hold: bool) -> (u16, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(LIMIT)).unwrap();
        let req = read_http_head(&mut s);
        let mut buf = [0u8; 4096];
        let half = response.len() / 2;
        let _ = s.write_all(&response[..half]);
        let _ = s.flush();
        let _ = s.write_all(&response[half..]);
        if hold {
            // Silent until the client gives up and closes.
            let _ = s.read(&mut buf);
        }
        String::from_utf8_lossy(&req).into_owned()
    });
    (port, handle)
}

fn ok_body() -> Vec<u8> {
    b"d8:intervali900e5:peers6:\x7f\x00\x00\x05\x1a\xe1e".to_vec()
}

fn response(head: &str, body: &[u8]) -> Vec<u8> {
    [head.as_bytes(), body].concat()
}

fn announce_to_fake(
    resp: Vec<u8>,
    timeouts: Timeouts,
) -> (Result<AnnounceResponse, TrackerError>, String) {
    let (port, server) = fake_http(resp, false);
    let mut d = Driver::new(timeouts);
    let id = d.announce(
        &format!("http://127.0.0.1:{port}/announce?passkey=k"),
        params(3, 7000),
    );
    let r = d.run(id);
    (r, server.join().unwrap())
}

#[test]
fn http_request_and_content_length_reply() {
    let body = ok_body();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let (r, request) = announce_to_fake(response(&head, &body), Timeouts::default());
    assert_eq!(r.unwrap().peers, vec!["127.0.0.5:6881".parse().unwrap()]);
    let line = request.lines().next().unwrap();
    assert!(
        line.starts_with("GET /announce?passkey=k&info_hash=%03%03"),
        "{line}"
    );
    for part in [
        "&port=7000",
        "&left=1000",
        "&compact=1",
        "&event=started",
        "&key=00001b58",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert!(request.contains("\r\nHost: 127.0.0.1:"), "{request}");
}

#[test]
fn chunked_reply() {
    let body = ok_body();
    let chunked = [
        format!("{:x}\r\n", 5).into_bytes(),
        body[..5].to_vec(),
        format!("\r\n{:x}\r\n", body.len() - 5).into_bytes(),
        body[5..].to_vec(),
        b"\r\n0\r\n\r\n".to_vec(),
    ]
    .concat();
    let (r, _) = announce_to_fake(
        response(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked,
        ),
        Timeouts::default(),
    );
    assert_eq!(r.unwrap().peers.len(), 1);
}

#[test]
fn failure_reason_garbage_truncated_oversized_and_status() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            response(
                "HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n",
                b"d14:failure reason7:go awaye",
            ),
            "tracker says: go away",
        ),
        (
            response("HTTP/1.1 200 OK\r\n\r\n", b"<html>oops</html>"),
            "bad response: not bencode",
        ),
        (
            response(
                "HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n",
                b"d8:interval",
            ),
            "network error: connection closed before the response was complete",
        ),
        (
            response("HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n", b""),
            "response larger than 1048576 bytes",
        ),
        (
            response("HTTP/1.1 200 OK\r\n\r\n", &vec![b'x'; 2 << 20]),
            "response larger than 1048576 bytes",
        ),
        (
            response("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", b""),
            "HTTP: status 404",
        ),
        (
            b"\x00\x01garbage\r\n\r\n".to_vec(),
            "HTTP: malformed response",
        ),
    ];
    for (resp, expected) in cases {
        let (r, _) = announce_to_fake(resp, Timeouts::default());
        let e = r.unwrap_err().to_string();
        assert!(e.starts_with(expected), "expected '{expected}', got '{e}'");
    }
}

#[test]
fn a_redirect_is_followed_and_sent_as_given() {
    let body = ok_body();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let (final_port, final_server) = fake_http(response(&head, &body), false);
    let location = format!("http://127.0.0.1:{final_port}/real?info_hash=%03&port=7000");
    let redirect =
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
    let (first_port, first_server) = fake_http(redirect.into_bytes(), false);
    let mut d = Driver::new(Timeouts::default());
    let id = d.announce(
        &format!("http://127.0.0.1:{first_port}/announce"),
        params(3, 7000),
    );
    assert_eq!(d.run(id).unwrap().peers.len(), 1);
    assert!(
        first_server
            .join()
            .unwrap()
            .starts_with("GET /announce?info_hash=")
    );
    let second = final_server.join().unwrap();
    assert!(
        second.starts_with("GET /real?info_hash=%03&port=7000 HTTP/1.1"),
        "{second}"
    );
}

#[test]
fn redirect_loops_end() {
    // Four servers each redirecting to the next: more than the client follows.
    let mut next = String::from("http://127.0.0.1:9/never");
    let mut servers = Vec::new();
    for _ in 0..4 {
        let resp = format!("HTTP/1.1 301 Moved\r\nLocation: {next}\r\nContent-Length: 0\r\n\r\n");
        let (port, h) = fake_http(resp.into_bytes(), false);
        next = format!("http://127.0.0.1:{port}/a");
        servers.push(h);
    }
    let mut d = Driver::new(Timeouts::default());
    let id = d.announce(&next, params(3, 7000));
    assert_eq!(
        d.run(id).unwrap_err(),
        TrackerError::Http("too many redirects".into())
    );
}

#[test]
fn a_tracker_that_never_answers_times_out() {
    let (port, server) = fake_http(Vec::new(), true);
    let timeouts = Timeouts {
        receive: Duration::from_millis(300),
        ..Timeouts::default()
    };
    let mut d = Driver::new(timeouts);
    let id = d.announce(
        &format!("http://127.0.0.1:{port}/announce"),
        params(3, 7000),
    );
    let e = d.run(id).unwrap_err();
    assert_eq!(e, TrackerError::Timeout("waiting for the response"));
    assert_eq!(e.to_string(), "timed out while waiting for the response");
    drop(d); // closes the socket, which ends the server
    server.join().unwrap();
}

#[test]
fn https_refused_closed_port_and_host_names() {
    let mut d = Driver::new(Timeouts::default());
    let id = d.announce("https://tracker.example/announce", params(3, 1));
    assert_eq!(d.run(id).unwrap_err(), TrackerError::Https);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = d.announce(&format!("http://127.0.0.1:{closed}/a"), params(3, 1));
    assert!(matches!(d.run(id), Err(TrackerError::Network(m)) if m.contains("refused")));

    // A host name goes through the resolver thread.
    let body = ok_body();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
    let (port, server) = fake_http(response(&head, &body), false);
    let id = d.announce(&format!("http://localhost:{port}/announce"), params(3, 1));
    assert_eq!(d.run(id).unwrap().peers.len(), 1);
    assert!(
        server
            .join()
            .unwrap()
            .contains(&format!("Host: localhost:{port}\r\n"))
    );
}

static FAST_UDP: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

#[test]
fn udp_tracker_that_never_answers_or_answers_an_error() {
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let timeouts = Timeouts {
        udp: &FAST_UDP,
        ..Timeouts::default()
    };
    let mut d = Driver::new(timeouts);
    let id = d.announce(
        &format!("udp://{}", silent.local_addr().unwrap()),
        params(3, 1),
    );
    assert!(matches!(d.run(id), Err(TrackerError::Timeout(m)) if m.contains("connect")));
    // Both tries reached the tracker.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 100];
    let mut got = 0;
    while silent.recv(&mut buf).is_ok() {
        got += 1;
    }
    assert_eq!(got, FAST_UDP.len());

    let erring = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = erring.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        erring.set_read_timeout(Some(LIMIT)).unwrap();
        let (n, from) = erring.recv_from(&mut buf).unwrap();
        assert_eq!(n, 16);
        let mut reply = vec![0, 0, 0, 3];
        reply.extend_from_slice(&buf[12..16]);
        reply.extend_from_slice(b"banned");
        erring.send_to(&reply, from).unwrap();
    });
    let id = d.announce(&format!("udp://{addr}"), params(3, 1));
    assert_eq!(
        d.run(id).unwrap_err(),
        TrackerError::Failure("banned".into())
    );
    server.join().unwrap();
}

/// While a tracker sits on a request, the same loop keeps serving another socket: a hundred
/// echo round trips complete and the announce is still pending.
#[test]
fn the_loop_keeps_serving_other_sockets_while_a_tracker_is_slow() {
    let (port, server) = fake_http(Vec::new(), true);
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    let echo_server = std::thread::spawn(move || {
        let (mut s, _) = echo.accept().unwrap();
        let mut buf = [0u8; 64];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => s.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let mut d = Driver::new(Timeouts {
        receive: LIMIT * 10,
        ..Timeouts::default()
    });
    let id = d.announce(
        &format!("http://127.0.0.1:{port}/announce"),
        params(3, 7000),
    );
    const ECHO: Token = Token(1);
    let mut client = mio::net::TcpStream::connect(echo_addr).unwrap();
    d.poll
        .registry()
        .register(
            &mut client,
            ECHO,
            mio::Interest::READABLE | mio::Interest::WRITABLE,
        )
        .unwrap();
    let (mut round_trips, mut sent, mut got) = (0, false, 0usize);
    let deadline = Instant::now() + LIMIT;
    while round_trips < 100 {
        assert!(
            Instant::now() < deadline,
            "echo stalled after {round_trips} round trips"
        );
        let mut ready = false;
        d.turn(|t| ready |= t == ECHO);
        if !ready && !sent {
            continue;
        }
        if !sent && client.write(b"ping").is_ok() {
            sent = true;
        }
        let mut buf = [0u8; 64];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
        if got >= 4 {
            got -= 4;
            round_trips += 1;
            sent = client.write(b"ping").is_ok();
        }
    }
    assert!(
        d.io.poll_done().is_none(),
        "the announce must still be pending"
    );
    assert_eq!(d.io.in_flight(), 1);
    d.io.cancel(d.poll.registry(), id);
    drop(client);
    drop(d);
    echo_server.join().unwrap();
    server.join().unwrap();
}

/// The schedule and the sockets together: a dead tracker in the first tier is backed off,
/// the round moves on to opentracker over UDP, and `started`, `completed` and `stopped` go
/// to the tracker that answered.
#[test]
fn tiers_move_past_a_dead_tracker_to_a_live_one() {
    use btmini::tracker::announcer::Announcer;
    let tracker = OpenTracker::start(&[InfoHash([4; 20]).to_hex()]);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{closed}/announce");
    let live = format!("udp://127.0.0.1:{}", tracker.port);
    let t0 = Instant::now();
    // u64::MAX keeps the two-tracker tier in its given order (see the unit tests).
    let mut a = Announcer::new(vec![vec![dead.clone(), live.clone()]], t0, || u64::MAX);
    let mut d = Driver::new(Timeouts::default());
    let announce = |d: &mut Driver, a: &mut Announcer, now: Instant| {
        let job = a.poll(now).expect("an announce is due");
        let mut p = params(4, 1234);
        p.event = job.event;
        let id = d.announce(&job.url, p);
        let out = a.handle_result(now, d.run(id));
        (job, out)
    };
    let (job, out) = announce(&mut d, &mut a, t0);
    assert_eq!(
        (job.url.as_str(), job.event),
        (dead.as_str(), AnnounceEvent::Started)
    );
    assert!(out.error.unwrap().contains("refused"));
    let (job, out) = announce(&mut d, &mut a, t0);
    assert_eq!(
        (job.url.as_str(), job.event),
        (live.as_str(), AnnounceEvent::Started)
    );
    assert!(out.error.is_none() && a.status().ever_answered, "{out:?}");
    a.completed(t0);
    let (job, out) = announce(&mut d, &mut a, t0);
    assert_eq!(
        (job.url.as_str(), job.event),
        (live.as_str(), AnnounceEvent::Completed)
    );
    assert!(out.error.is_none());
    let stop = a.stop().unwrap();
    assert_eq!(
        (stop.url.as_str(), stop.event),
        (live.as_str(), AnnounceEvent::Stopped)
    );
}

/// `Trackers` as the engine drives it: `started` registers us with opentracker, `stopped` at
/// exit removes us, within the bounded wait.
#[test]
fn stopped_at_exit_removes_us_from_the_tracker() {
    use btmini::tracker::Trackers;
    let tracker = OpenTracker::start(&[InfoHash([5; 20]).to_hex()]);
    let url = format!("http://127.0.0.1:{}/announce", tracker.port);
    let poll = Poll::new().unwrap();
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
    let mut poll = poll;
    let now = Instant::now();
    let mut t = Trackers::new(
        vec![vec![url.clone()]],
        Resolver::new(waker),
        BASE,
        Timeouts::default(),
        now,
    );
    let mut events = Events::with_capacity(16);
    let deadline = Instant::now() + LIMIT;
    let mut step = |t: &mut Trackers, poll: &mut Poll| {
        assert!(Instant::now() < deadline, "no progress within {LIMIT:?}");
        let timeout = t
            .next_deadline()
            .map(|d| d.saturating_duration_since(Instant::now()));
        poll.poll(&mut events, timeout.or(Some(LIMIT))).unwrap();
        for e in events.iter() {
            if t.owns(e.token()) {
                t.handle_event(poll.registry(), e.token(), Instant::now());
            } else if e.token() == WAKER {
                t.handle_wake(poll.registry(), Instant::now());
            }
        }
        t.poll(poll.registry(), Instant::now(), |_| params(5, 4321))
    };
    let outcome = loop {
        if let Some(o) = step(&mut t, &mut poll).pop() {
            break o;
        }
    };
    assert!(outcome.error.is_none(), "{outcome:?}");
    let mut d = Driver::new(Timeouts::default());
    let id = d.announce(&url, params(5, 1000));
    assert!(has_port(&d.run(id).unwrap(), 4321), "started registered us");

    t.stop(poll.registry(), Instant::now(), params(5, 4321));
    while !t.stop_finished(Instant::now()) {
        step(&mut t, &mut poll);
    }
    let id = d.announce(&url, params(5, 1001));
    let after = d.run(id).unwrap();
    assert!(
        !has_port(&after, 4321),
        "stopped removed us: {:?}",
        after.peers
    );
    assert!(has_port(&after, 1000));
}
