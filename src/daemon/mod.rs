//! `btmini daemon`: many torrents in one host, driven through the Transmission RPC, kept in
//! a state folder across restarts. One loop: the host's poll also carries the RPC's
//! listener and connections (tokens from [`EXTERNAL_BASE`]); the RPC's HTTP and JSON are
//! sans-IO (`crate::rpc`), and this module carries calls out on the torrents.

pub mod fields;
pub mod state;
mod torrents;

use crate::engine::DownloadError;
use crate::host::{DhtOptions, EXTERNAL_BASE, Host, HostOptions};
use crate::rpc::call::{self, Call};
use crate::rpc::http::{HttpError, RequestReader};
use crate::rpc::server::{Route, Server, refuse};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Token};
use slab::Slab;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// RPC connections open at once at most; more are refused.
const MAX_CONNS: usize = 32;
/// How often the torrents are looked at (statuses, completions, seed limits).
const TEND_EVERY: Duration = Duration::from_millis(250);
/// The RPC listener's token; connections follow it.
const RPC_LISTENER: usize = EXTERNAL_BASE;

/// The daemon's settings (`btmini daemon …`).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Default download folder (`-o`).
    pub output: PathBuf,
    /// The RPC's address (`--rpc-bind`, default 127.0.0.1) and port (`--rpc-port`, 9091).
    pub rpc: SocketAddr,
    /// `user:password` required by the RPC (`--rpc-auth`).
    pub rpc_auth: Option<String>,
    /// Peer port (`--port`).
    pub port: u16,
    /// Local address for peers (`--bind`).
    pub bind: Option<IpAddr>,
    /// Where the torrents' records live (`--state-dir`, default `OUTPUT/.btmini`).
    pub state_dir: PathBuf,
    /// A Transmission-compatible web client's files (`--web-ui`).
    pub web_ui: Option<PathBuf>,
    /// The DHT (on unless `--no-dht`), bootstrapped from these nodes (or the routers).
    pub dht: Option<Vec<String>>,
    /// Encryption (MSE) both ways (`--encryption`).
    pub encryption: crate::mse::Policy,
    /// uTP both ways (not `--no-utp`).
    pub utp: bool,
}

/// Why the daemon could not run.
#[derive(Debug)]
pub enum DaemonError {
    /// The RPC address could not be listened on.
    Rpc(SocketAddr, std::io::Error),
    /// The state folder could not be made.
    State(PathBuf, std::io::Error),
    /// The host failed (its poll, its listener).
    Host(DownloadError),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rpc(a, e) => write!(f, "cannot serve the RPC on {a}: {e}"),
            Self::State(p, e) => write!(f, "state folder {}: {e}", p.display()),
            Self::Host(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DaemonError {}

impl From<DownloadError> for DaemonError {
    fn from(e: DownloadError) -> Self {
        Self::Host(e)
    }
}

struct Conn {
    stream: TcpStream,
    reader: RequestReader,
    /// Bytes to send, and how many are sent.
    out: Vec<u8>,
    sent: usize,
    /// Close once `out` is sent.
    closing: bool,
    /// The current request's route, once its head passed the checks.
    route: Option<Route>,
}

/// The daemon: the host, the RPC and the torrents' records.
pub struct Daemon {
    host: Host,
    server: Server,
    listener: TcpListener,
    conns: Slab<Conn>,
    items: torrents::Items,
    opts: DaemonOptions,
    /// `session-close` was called.
    closing: bool,
    /// When the torrents are next looked at.
    next_tend: Instant,
}

impl Daemon {
    /// Opens the host, the RPC listener and the state folder, and starts every torrent
    /// the records name that is not paused.
    pub fn new(opts: DaemonOptions) -> Result<Self, DaemonError> {
        std::fs::create_dir_all(&opts.state_dir)
            .map_err(|e| DaemonError::State(opts.state_dir.clone(), e))?;
        let host_opts = HostOptions {
            port: opts.port,
            bind: opts.bind,
            handle_signals: true,
            dht: opts.dht.clone().map(|nodes| DhtOptions {
                bootstrap: nodes,
                state: Some(opts.state_dir.join("dht.dat")),
            }),
            encryption: opts.encryption,
            utp: opts.utp,
            ..HostOptions::default()
        };
        let host = Host::new(host_opts)?;
        let mut listener =
            TcpListener::bind(opts.rpc).map_err(|e| DaemonError::Rpc(opts.rpc, e))?;
        host.registry()
            .register(&mut listener, Token(RPC_LISTENER), Interest::READABLE)
            .map_err(|e| DaemonError::Rpc(opts.rpc, e))?;
        let session_id = format!(
            "{:016x}{:016x}",
            crate::util::random_u64(),
            crate::util::random_u64()
        );
        let server = Server::new(session_id, opts.rpc_auth.clone(), opts.web_ui.is_some());
        let items = torrents::Items::load(&opts.state_dir);
        let mut d = Self {
            host,
            server,
            listener,
            conns: Slab::new(),
            items,
            opts,
            closing: false,
            next_tend: Instant::now(),
        };
        log::info!(
            "RPC on http://{}/transmission/rpc, peers on port {}, {} torrents",
            d.opts.rpc,
            d.host.port(),
            d.items.len()
        );
        d.items.start_all(&mut d.host, &d.opts);
        Ok(d)
    }

    /// The RPC's address (its port when 0 was asked).
    pub fn rpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until SIGINT/SIGTERM (or `session-close`): the first stops every torrent
    /// cleanly, the second at once.
    pub fn run(&mut self) -> Result<(), DaemonError> {
        loop {
            self.host.step(Some(Duration::from_millis(500)))?;
            for (token, readable, writable) in self.host.take_external() {
                match token.0 {
                    RPC_LISTENER => self.accept(),
                    t => self.conn_event(t - RPC_LISTENER - 1, readable, writable),
                }
            }
            let now = Instant::now();
            // Stopping (a signal, or session-close): the host stops every torrent, and none
            // may start again meanwhile (each stays as the user left it, for the next run).
            self.items.stopping = self.host.signals() > 0 || self.closing;
            // The torrents' statuses are read a few times a second, not on every pass (a
            // busy download makes thousands of passes a second).
            if now >= self.next_tend || self.items.stopping {
                self.next_tend = now + TEND_EVERY;
                self.items.tend(&mut self.host, &self.opts, now);
            }
            if self.host.signals() > 0 || self.closing {
                if self.closing && self.host.signals() == 0 {
                    self.host.stop();
                }
                if self.host.all_finished() {
                    self.items.save_totals(Instant::now(), None);
                    log::info!("stopped");
                    return Ok(());
                }
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, addr)) => {
                    if self.conns.len() >= MAX_CONNS {
                        log::debug!("RPC: {addr}: too many connections");
                        continue;
                    }
                    let entry = self.conns.vacant_entry();
                    let token = Token(RPC_LISTENER + 1 + entry.key());
                    if self
                        .host
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        entry.insert(Conn {
                            stream,
                            reader: RequestReader::new(),
                            out: Vec::new(),
                            sent: 0,
                            closing: false,
                            route: None,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::warn!("RPC accept: {e}");
                    return;
                }
            }
        }
    }

    fn conn_event(&mut self, key: usize, readable: bool, writable: bool) {
        if !self.conns.contains(key) {
            return;
        }
        let mut open = true;
        if readable {
            open = self.read(key);
        }
        if open && (writable || !self.conns[key].out.is_empty()) {
            open = self.write(key);
        }
        if !open {
            let mut c = self.conns.remove(key);
            let _ = self.host.registry().deregister(&mut c.stream);
        }
    }

    /// Reads what arrived and answers every complete request; false: close.
    fn read(&mut self, key: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let c = &mut self.conns[key];
            match c.stream.read(&mut buf) {
                Ok(0) => return false,
                // Once refused, what the client still sends is dropped, never held, and
                // not read on: the connection closes once the refusal is out.
                Ok(_) if c.closing => return true,
                Ok(n) => c.reader.feed(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            if !self.serve(key) {
                return true;
            }
        }
        true
    }

    /// Answers the requests read so far; false once the connection is to close.
    fn serve(&mut self, key: usize) -> bool {
        loop {
            let c = &mut self.conns[key];
            if c.route.is_none() {
                match c.reader.head() {
                    Ok(None) => return true,
                    Ok(Some(head)) => match self.server.vet(head) {
                        Ok(route) => c.route = Some(route),
                        Err(refusal) => {
                            c.out.extend_from_slice(&refusal);
                            c.closing = true;
                            return false;
                        }
                    },
                    Err(e) => return self.fail(key, &e),
                }
            }
            let c = &mut self.conns[key];
            let req = match c.reader.take() {
                Ok(Some(r)) => r,
                Ok(None) => return true,
                Err(e) => return self.fail(key, &e),
            };
            let route = c.route.take().expect("vetted above");
            let keep_alive = req.head.keep_alive;
            let reply = match route {
                Route::Rpc => {
                    let r = call::parse(&req.body);
                    let result = match r.call {
                        Ok(call) => self.call(call),
                        Err(e) => Err(e),
                    };
                    self.server.json(&call::reply(result, r.tag), keep_alive)
                }
                Route::Web(file) => self.web_file(&file, req.head.method == "HEAD", keep_alive),
            };
            let c = &mut self.conns[key];
            c.out.extend_from_slice(&reply);
            if !keep_alive {
                c.closing = true;
                return false;
            }
        }
    }

    fn fail(&mut self, key: usize, e: &HttpError) -> bool {
        let c = &mut self.conns[key];
        c.out.extend_from_slice(&refuse(e.status(), &e.to_string()));
        c.closing = true;
        false
    }

    /// Sends what is queued; false: close (sent all of a closing connection, or failed).
    fn write(&mut self, key: usize) -> bool {
        let c = &mut self.conns[key];
        while c.sent < c.out.len() {
            match c.stream.write(&c.out[c.sent..]) {
                Ok(0) => return false,
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let token = Token(RPC_LISTENER + 1 + key);
                    let _ = self.host.registry().reregister(
                        &mut c.stream,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    return true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.out.clear();
        c.sent = 0;
        !c.closing
    }

    /// A file of the web client, or 404.
    fn web_file(&self, file: &str, head_only: bool, keep_alive: bool) -> Vec<u8> {
        let Some(root) = &self.opts.web_ui else {
            return refuse(404, "no web client");
        };
        let path = root.join(file);
        let Ok(body) = std::fs::read(&path) else {
            return refuse(404, "no such file");
        };
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=UTF-8",
            Some("js") => "application/javascript",
            Some("css") => "text/css",
            Some("png") => "image/png",
            Some("svg") => "image/svg+xml",
            Some("ico") => "image/x-icon",
            Some("json") => "application/json",
            _ => "application/octet-stream",
        };
        let body = if head_only { &[][..] } else { &body[..] };
        crate::rpc::http::response(200, &[("Content-Type", kind)], body, keep_alive)
    }

    /// Carries out one call.
    fn call(&mut self, call: Call) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        if let Call::SessionClose = call {
            log::info!("session-close: stopping");
            self.closing = true;
            return Ok(serde_json::Map::new());
        }
        self.items
            .call(call, &mut self.host, &self.opts, Instant::now())
    }
}

/// Runs the daemon until it is stopped.
pub fn run(opts: DaemonOptions) -> Result<(), DaemonError> {
    Daemon::new(opts)?.run()
}
