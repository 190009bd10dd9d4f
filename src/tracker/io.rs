//! The tracker I/O shell: announces carried out on nonblocking sockets registered with the
//! caller's mio poll. It only moves bytes and time; the protocols are in [`super::http`] and
//! [`super::udp`].
//!
//! Drive contract: register nothing yourself under tokens `token_base..token_base +
//! MAX_JOBS`; pass each event with such a token to [`TrackerIo::handle_event`], a wake-up of
//! the waker given at creation to [`TrackerIo::handle_wake`], and call
//! [`TrackerIo::handle_timeouts`] once [`TrackerIo::next_deadline`] has passed. Finished
//! announces come out of [`TrackerIo::poll_done`].
//!
//! Host names are resolved on one helper thread per process, the [`Resolver`] (the system
//! resolver blocks, and a slow DNS server must not freeze the peers); IP literals need no lookup. Every stage — resolving,
//! connecting, sending, waiting for the reply — has a time limit.

use super::http::{self, ResponseReader};
use super::response::{AnnounceResponse, parse_announce};
use super::udp::{Progress, RETRY_SCHEDULE, UdpExchange};
use super::url::{Scheme, TrackerUrl};
use super::{AnnounceParams, TrackerError};
use mio::net::{TcpStream, UdpSocket};
use mio::{Interest, Registry, Token, Waker};
use slab::Slab;
use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Announces in flight at once, and so tokens reserved.
pub const MAX_JOBS: usize = 64;
/// Redirects followed before giving up.
const MAX_REDIRECTS: u32 = 3;

/// Time limits of each stage.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Resolving the host name.
    pub resolve: Duration,
    /// Establishing the TCP connection.
    pub connect: Duration,
    /// Sending the request.
    pub send: Duration,
    /// Receiving the whole reply.
    pub receive: Duration,
    /// The wait of each UDP try.
    pub udp: &'static [Duration],
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            resolve: Duration::from_secs(10),
            connect: Duration::from_secs(10),
            send: Duration::from_secs(10),
            receive: Duration::from_secs(20),
            udp: &RETRY_SCHEDULE,
        }
    }
}

/// Identifies an announce started by [`TrackerIo::announce`].
pub type JobId = u64;

enum State {
    Resolving,
    Http {
        stream: TcpStream,
        connected: bool,
        request: Vec<u8>,
        sent: usize,
        reader: ResponseReader,
    },
    /// On a socket of its own, connected to the tracker (no shared socket of that family).
    Udp {
        socket: UdpSocket,
        exchange: UdpExchange,
    },
    /// On the host's shared socket: replies come in through [`TrackerIo::handle_datagram`].
    UdpShared {
        addr: SocketAddr,
        exchange: UdpExchange,
    },
}

struct Job {
    id: JobId,
    url: TrackerUrl,
    params: AnnounceParams,
    redirects: u32,
    /// After a redirect whose URL already holds the announce query, send it as it is.
    verbatim: bool,
    state: State,
    deadline: Instant,
    stage: &'static str,
}

/// What an HTTP reply leads to.
enum Reply {
    Done(Result<AnnounceResponse, TrackerError>),
    Redirect(TrackerUrl),
}

/// A resolver's answer: the request's id and the addresses found.
pub type Lookup = (JobId, io::Result<Vec<SocketAddr>>);

/// A lookup: an id of the asker's, the host and port, and where the answer goes.
pub type Request = (JobId, String, u16, mpsc::Sender<Lookup>);

/// The host-name resolver of a process: one helper thread, started on the first lookup and
/// shared by every torrent's trackers; each [`TrackerIo`] gets its answers on its own
/// channel, and the waker wakes the poll after each.
pub struct Resolver {
    waker: Arc<Waker>,
    requests: std::sync::Mutex<Option<mpsc::Sender<Request>>>,
}

impl Resolver {
    /// A resolver that wakes `waker`'s poll with each answer; no thread yet.
    pub fn new(waker: Arc<Waker>) -> Arc<Self> {
        Arc::new(Self {
            waker,
            requests: std::sync::Mutex::new(None),
        })
    }

    /// Asks for `host`'s addresses: `(id, host, port, where the answer goes)`; the waker
    /// fires once it is there.
    pub fn lookup(&self, request: Request) -> io::Result<()> {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if requests.is_none() {
            let (tx, rx) = mpsc::channel::<Request>();
            let waker = self.waker.clone();
            std::thread::Builder::new()
                .name("btmini-resolver".into())
                .spawn(move || {
                    // Ends when the Resolver, holding the request sender, is dropped.
                    for (id, host, port, answer) in rx {
                        let found = (host.as_str(), port).to_socket_addrs().map(|a| a.collect());
                        // A TrackerIo that is gone no longer wants its answer.
                        if answer.send((id, found)).is_ok() {
                            let _ = waker.wake();
                        }
                    }
                })?;
            *requests = Some(tx);
        }
        let sender = requests.as_ref().expect("just set");
        sender
            .send(request)
            .map_err(|_| io::Error::other("resolver thread is gone"))
    }
}

/// Announces in flight, on sockets registered with the caller's poll.
pub struct TrackerIo {
    resolver: Arc<Resolver>,
    /// This TrackerIo's answers from the resolver.
    answers: (mpsc::Sender<Lookup>, mpsc::Receiver<Lookup>),
    token_base: usize,
    timeouts: Timeouts,
    jobs: Slab<Job>,
    next_id: JobId,
    /// BEP 15 connection ids by tracker address, reused for their minute.
    udp_connections: HashMap<SocketAddr, (u64, Instant)>,
    done: Vec<(JobId, Result<AnnounceResponse, TrackerError>)>,
    bind: Option<IpAddr>,
    /// The host's UDP socket, shared with the other torrents (and later the DHT).
    shared_udp: Option<Arc<UdpSocket>>,
}

impl TrackerIo {
    /// Uses tokens `token_base..token_base + MAX_JOBS`; host names go to `resolver`, whose
    /// waker wakes the caller's poll when one has been resolved.
    pub fn new(resolver: Arc<Resolver>, token_base: usize, timeouts: Timeouts) -> Self {
        Self {
            resolver,
            answers: mpsc::channel(),
            token_base,
            timeouts,
            jobs: Slab::new(),
            next_id: 1,
            udp_connections: HashMap::new(),
            done: Vec::new(),
            bind: None,
            shared_udp: None,
        }
    }

    /// Sends every request from this local address (`--bind`).
    pub fn set_bind(&mut self, ip: Option<IpAddr>) {
        self.bind = ip;
    }

    /// Sends UDP announces from `socket`, which the caller reads and passes each datagram
    /// to [`TrackerIo::handle_datagram`]; trackers of the other address family still get a
    /// socket each.
    pub fn set_udp(&mut self, socket: Arc<UdpSocket>) {
        self.shared_udp = Some(socket);
    }

    /// A datagram from `from` on the shared socket: whether it was one of our replies.
    pub fn handle_datagram(
        &mut self,
        registry: &Registry,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> bool {
        let found = self.jobs.iter().find_map(|(k, j)| match &j.state {
            State::UdpShared { addr, exchange } if *addr == from && exchange.expects(bytes) => {
                Some(k)
            }
            _ => None,
        });
        let Some(key) = found else {
            return false;
        };
        if let State::UdpShared { exchange, .. } = &mut self.jobs[key].state {
            let progress = exchange.handle_datagram(now, bytes);
            self.udp_progress(registry, key, progress);
        }
        true
    }

    /// After a UDP exchange moved: what it wants sent goes out, or the job is done.
    fn udp_progress(&mut self, registry: &Registry, key: usize, progress: Progress) {
        let shared = self.shared_udp.clone();
        let job = &mut self.jobs[key];
        match (progress, &mut job.state) {
            (Progress::Pending, State::Udp { socket, exchange }) => {
                while let Some(d) = exchange.poll_transmit() {
                    // A lost datagram is sent again at the next deadline.
                    let _ = socket.send(&d);
                }
                job.deadline = exchange.deadline();
            }
            (Progress::Pending, State::UdpShared { addr, exchange }) => {
                while let Some(d) = exchange.poll_transmit() {
                    if let Some(s) = &shared {
                        let _ = s.send_to(&d, *addr);
                    }
                }
                job.deadline = exchange.deadline();
            }
            (Progress::Pending, _) => {}
            (Progress::Done(r), _) => self.finish(registry, key, r),
        }
    }

    /// Whether `token` belongs to a tracker socket.
    pub fn owns(&self, token: Token) -> bool {
        (self.token_base..self.token_base + MAX_JOBS).contains(&token.0)
    }

    /// Starts an announce to `url`. Errors that need no network (a bad or https URL, too
    /// many announces at once) come out of [`TrackerIo::poll_done`] like any other.
    pub fn announce(
        &mut self,
        registry: &Registry,
        now: Instant,
        url: &str,
        params: AnnounceParams,
    ) -> JobId {
        let id = self.next_id;
        self.next_id += 1;
        let url = match TrackerUrl::parse(url) {
            Ok(u) => u,
            Err(e) => {
                self.done.push((id, Err(e)));
                return id;
            }
        };
        if self.jobs.len() >= MAX_JOBS {
            self.done.push((
                id,
                Err(TrackerError::Network("too many announces at once".into())),
            ));
            return id;
        }
        let key = self.jobs.insert(Job {
            id,
            url,
            params,
            redirects: 0,
            verbatim: false,
            state: State::Resolving,
            deadline: now,
            stage: "resolving the host name",
        });
        self.begin(registry, key, now);
        id
    }

    /// Looks up the job's host (or skips that for an IP literal) and connects.
    fn begin(&mut self, registry: &Registry, key: usize, now: Instant) {
        let job = &mut self.jobs[key];
        if let Ok(ip) = job.url.host.parse::<IpAddr>() {
            let addr = SocketAddr::new(ip, job.url.port);
            return self.connect(registry, key, addr, now);
        }
        job.state = State::Resolving;
        job.stage = "resolving the host name";
        job.deadline = now + self.timeouts.resolve;
        let request = (
            job.id,
            job.url.host.clone(),
            job.url.port,
            self.answers.0.clone(),
        );
        if let Err(e) = self.resolver.lookup(request) {
            self.finish(registry, key, Err(TrackerError::Resolve(e.to_string())));
        }
    }

    fn connect(&mut self, registry: &Registry, key: usize, addr: SocketAddr, now: Instant) {
        let token = Token(self.token_base + key);
        let job = &mut self.jobs[key];
        let started = match job.url.scheme {
            Scheme::Http => crate::net::connect(addr, self.bind).and_then(|mut stream| {
                registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
                let target = if job.verbatim {
                    job.url.path.clone()
                } else {
                    job.url.announce_target(&job.params)
                };
                job.state = State::Http {
                    stream,
                    connected: false,
                    request: http::request(&job.url.host, job.url.port, &target),
                    sent: 0,
                    reader: ResponseReader::new(),
                };
                job.stage = "connecting";
                job.deadline = now + self.timeouts.connect;
                Ok(())
            }),
            Scheme::Udp
                if self
                    .shared_udp
                    .as_ref()
                    .and_then(|s| s.local_addr().ok())
                    .is_some_and(|l| l.is_ipv4() == addr.is_ipv4()) =>
            {
                let exchange = udp_exchange(
                    &job.params,
                    addr,
                    self.udp_connections.get(&addr).copied(),
                    self.timeouts.udp,
                    now,
                );
                job.deadline = exchange.deadline();
                job.stage = "waiting for the UDP tracker";
                job.state = State::UdpShared { addr, exchange };
                return self.udp_progress(registry, key, Progress::Pending);
            }
            Scheme::Udp => crate::net::udp(addr, self.bind).and_then(|mut socket| {
                socket.connect(addr)?;
                registry.register(&mut socket, token, Interest::READABLE)?;
                let exchange = udp_exchange(
                    &job.params,
                    addr,
                    self.udp_connections.get(&addr).copied(),
                    self.timeouts.udp,
                    now,
                );
                job.deadline = exchange.deadline();
                job.stage = "waiting for the UDP tracker";
                job.state = State::Udp { socket, exchange };
                Ok(())
            }),
        };
        match started {
            Ok(()) => self.pump(registry, key, now),
            Err(e) => self.finish(
                registry,
                key,
                Err(TrackerError::Network(format!("{addr}: {e}"))),
            ),
        }
    }

    /// Resolver answers arrived (the waker fired).
    pub fn handle_wake(&mut self, registry: &Registry, now: Instant) {
        let answers: Vec<Lookup> = self.answers.1.try_iter().collect();
        for (id, found) in answers {
            // The job may have timed out meanwhile.
            let Some(key) = self.key_of(id) else { continue };
            if !matches!(self.jobs[key].state, State::Resolving) {
                continue;
            }
            match found {
                Ok(addrs) => match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
                    Some(&addr) => self.connect(registry, key, addr, now),
                    None => self.finish(
                        registry,
                        key,
                        Err(TrackerError::Resolve("no address".into())),
                    ),
                },
                Err(e) => self.finish(registry, key, Err(TrackerError::Resolve(e.to_string()))),
            }
        }
    }

    fn key_of(&self, id: JobId) -> Option<usize> {
        self.jobs.iter().find(|(_, j)| j.id == id).map(|(k, _)| k)
    }

    /// A readiness event for one of our tokens.
    pub fn handle_event(&mut self, registry: &Registry, token: Token, now: Instant) {
        let key = token.0.wrapping_sub(self.token_base);
        if self.jobs.contains(key) {
            self.pump(registry, key, now);
        }
    }

    /// Moves whatever bytes can move now; finishes the job when it is done.
    fn pump(&mut self, registry: &Registry, key: usize, now: Instant) {
        let timeouts = self.timeouts;
        let job = &mut self.jobs[key];
        let result = match &mut job.state {
            State::Resolving | State::UdpShared { .. } => return,
            State::Http {
                stream,
                connected,
                request,
                sent,
                reader,
            } => {
                match pump_http(stream, connected, request, sent, reader) {
                    Ok(None) => {
                        // Stage changes restart the clock.
                        let stage = if !*connected {
                            "connecting"
                        } else if *sent < request.len() {
                            "sending the request"
                        } else {
                            "waiting for the response"
                        };
                        if stage != job.stage {
                            job.stage = stage;
                            job.deadline = now
                                + match stage {
                                    "sending the request" => timeouts.send,
                                    _ => timeouts.receive,
                                };
                        }
                        return;
                    }
                    Ok(Some(resp)) => match http_reply(job, resp) {
                        Reply::Done(r) => r,
                        Reply::Redirect(url) => {
                            self.deregister(registry, key);
                            let job = &mut self.jobs[key];
                            job.redirects += 1;
                            job.verbatim = url.path.contains("info_hash=");
                            job.url = url;
                            return self.begin(registry, key, now);
                        }
                    },
                    Err(e) => Err(e),
                }
            }
            State::Udp { socket, exchange } => {
                let mut buf = [0u8; 2048];
                let mut progress = Progress::Pending;
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            progress = exchange.handle_datagram(now, &buf[..n]);
                            if progress != Progress::Pending {
                                break;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // ICMP port unreachable shows up here: the tracker is not listening.
                        Err(e) => {
                            progress = Progress::Done(Err(TrackerError::Network(e.to_string())));
                            break;
                        }
                    }
                }
                return self.udp_progress(registry, key, progress);
            }
        };
        self.finish(registry, key, result);
    }

    fn deregister(&mut self, registry: &Registry, key: usize) {
        let job = &mut self.jobs[key];
        match std::mem::replace(&mut job.state, State::Resolving) {
            State::Http { mut stream, .. } => {
                let _ = registry.deregister(&mut stream);
            }
            State::Udp {
                mut socket,
                exchange,
            } => {
                if let (Ok(addr), Some(c)) = (socket.peer_addr(), exchange.connection()) {
                    self.udp_connections.insert(addr, c);
                }
                let _ = registry.deregister(&mut socket);
            }
            State::UdpShared { addr, exchange } => {
                if let Some(c) = exchange.connection() {
                    self.udp_connections.insert(addr, c);
                }
            }
            State::Resolving => {}
        }
    }

    fn finish(
        &mut self,
        registry: &Registry,
        key: usize,
        result: Result<AnnounceResponse, TrackerError>,
    ) {
        self.deregister(registry, key);
        let job = self.jobs.remove(key);
        self.done.push((job.id, result));
    }

    /// Deadlines that passed: UDP tries are sent again, other stages fail.
    pub fn handle_timeouts(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<usize> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.deadline <= now)
            .map(|(k, _)| k)
            .collect();
        for key in due {
            let job = &mut self.jobs[key];
            if let State::Udp { exchange, .. } | State::UdpShared { exchange, .. } = &mut job.state
            {
                let progress = exchange.handle_timeout(now);
                self.udp_progress(registry, key, progress);
            } else {
                let stage = job.stage;
                self.finish(registry, key, Err(TrackerError::Timeout(stage)));
            }
        }
    }

    /// The earliest deadline of the announces in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs.iter().map(|(_, j)| j.deadline).min()
    }

    /// Number of announces in flight.
    pub fn in_flight(&self) -> usize {
        self.jobs.len()
    }

    /// A finished announce.
    pub fn poll_done(&mut self) -> Option<(JobId, Result<AnnounceResponse, TrackerError>)> {
        if self.done.is_empty() {
            None
        } else {
            Some(self.done.remove(0))
        }
    }

    /// Abandons an announce (at exit, past the wait for `stopped`).
    pub fn cancel(&mut self, registry: &Registry, id: JobId) {
        if let Some(key) = self.key_of(id) {
            self.deregister(registry, key);
            self.jobs.remove(key);
        }
    }
}

/// A BEP 15 exchange with the tracker at `addr`, reusing its connection id (`cached`)
/// while valid.
fn udp_exchange(
    params: &AnnounceParams,
    addr: SocketAddr,
    cached: Option<(u64, Instant)>,
    schedule: &'static [Duration],
    now: Instant,
) -> UdpExchange {
    UdpExchange::new(
        now,
        params.clone(),
        addr.is_ipv6(),
        cached,
        Box::new(|| crate::util::random_u64() as u32),
        schedule,
    )
}

/// What a complete HTTP response means for the announce.
fn http_reply(job: &Job, resp: http::Response) -> Reply {
    match resp.status {
        200 => Reply::Done(parse_announce(&resp.body)),
        301 | 302 | 303 | 307 | 308 => {
            let Some(location) = resp.location else {
                return Reply::Done(Err(TrackerError::Http(format!(
                    "{} without Location",
                    resp.status
                ))));
            };
            if job.redirects >= MAX_REDIRECTS {
                return Reply::Done(Err(TrackerError::Http("too many redirects".into())));
            }
            // Location may be relative to the tracker.
            let absolute = if location.starts_with('/') {
                format!("http://{}:{}{location}", job.url.host, job.url.port)
            } else {
                location
            };
            match TrackerUrl::parse(&absolute) {
                Ok(url) if url.scheme == Scheme::Http => Reply::Redirect(url),
                Ok(_) => Reply::Done(Err(TrackerError::Http(format!("redirect to '{absolute}'")))),
                Err(e) => Reply::Done(Err(e)),
            }
        }
        s => Reply::Done(Err(TrackerError::Http(format!("status {s}")))),
    }
}

/// One pass over an HTTP connection: finish connecting, write what is left of the request,
/// read what has arrived. `Ok(Some)` when the response is complete.
fn pump_http(
    stream: &mut TcpStream,
    connected: &mut bool,
    request: &[u8],
    sent: &mut usize,
    reader: &mut ResponseReader,
) -> Result<Option<http::Response>, TrackerError> {
    let net = |e: io::Error| TrackerError::Network(e.to_string());
    if !*connected {
        // A nonblocking connect is done when the socket is writable and has no error.
        if let Some(e) = stream.take_error().map_err(net)? {
            return Err(net(e));
        }
        match stream.peer_addr() {
            Ok(_) => *connected = true,
            Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(None),
            Err(e) => return Err(net(e)),
        }
    }
    while *sent < request.len() {
        match stream.write(&request[*sent..]) {
            Ok(0) => {
                return Err(TrackerError::Network(
                    "connection closed while sending".into(),
                ));
            }
            Ok(n) => *sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(net(e)),
        }
    }
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return reader.eof().map(Some),
            Ok(n) => {
                if let Some(resp) = reader.feed(&buf[..n])? {
                    return Ok(Some(resp));
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(net(e)),
        }
    }
}
