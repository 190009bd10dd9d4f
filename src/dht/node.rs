//! A DHT node (BEP 5) as a sans-IO state machine, in the shape of `tracker/udp.rs` and
//! jech/dht's `dht_periodic`: datagrams and the clock go in ([`Node::handle_datagram`],
//! [`Node::handle_timeout`]); datagrams to send ([`Node::poll_transmit`]), events
//! ([`Node::poll_event`]) and the next deadline ([`Node::poll_timeout`]) come out. No
//! socket and no clock inside, so a network of a thousand nodes runs in a unit test.
//!
//! It answers every query (`ping`, `find_node`, `get_peers`, `announce_peer`), each with
//! one datagram of at most about 1 KB, and a malformed query with a KRPC error; a source
//! that sends more than [`MAX_PER_SECOND`] datagrams a second is ignored for the rest of
//! that second. Its own lookups are iterative: [`ALPHA`] queries in flight, converging on
//! the [`K`] closest nodes that answer; a `get_peers` lookup reports peers as they come and
//! can end with `announce_peer` to the closest nodes that gave a token. A reply is only
//! taken from the address the query went to, with the transaction id it carried.
//!
//! IPv4 and IPv6 (BEP 32) each have a routing table of their own around the same id; a
//! node's family is its address's. Lookups run in each family that knows nodes, a query
//! is answered with nodes of the families its `want` asks for (its own by default), and
//! a dual-stack node asks for both while one table is still small, so that it learns one
//! family's nodes through the other.

use super::bep42;
use super::krpc::{self, Body, Id, Msg, NodeInfo, Query, Response, Want};
use super::store::{PeerStore, Tokens};
use super::table::{Inserted, K, Table};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Queries in flight per lookup.
pub const ALPHA: usize = 3;
/// A query unanswered this long is sent once more, then counts as failed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Datagrams a second taken from one IP address; more are dropped.
pub const MAX_PER_SECOND: u32 = 50;
/// Candidates a lookup keeps (the closest ones).
const MAX_CANDIDATES: usize = K * 8;
/// Peers a lookup reports at most.
const MAX_FOUND: usize = 1_000;
/// Sources tracked by the rate limit at most (the map is cleared when it is full).
const MAX_SOURCES: usize = 10_000;
/// Queries of our own in flight at most; more wait.
const MAX_PENDING: usize = 256;
/// Reports of our address (replies' `ip` field) kept for the vote on our public address.
const VOTES: usize = 32;
/// Distinct nodes that must report the same public address before we take an id for it.
const VOTES_NEEDED: usize = 4;
/// A reply is trimmed to this many bytes (BEP 32: a payload over 1,024 bytes may not
/// cross every path).
pub const MAX_REPLY: usize = 1024;

/// Settings.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// BEP 43: ask, but tell others not to add us (a node behind a NAT).
    pub read_only: bool,
    /// The owner sends to both families: while one family's table has fewer than [`K`]
    /// nodes, queries to the other ask for nodes of both (BEP 32 `want`).
    pub dual_stack: bool,
}

/// What a node tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `get_peers` lookup found these peers (new ones only; more may follow).
    Peers {
        /// The torrent.
        info_hash: Id,
        /// Its peers.
        peers: Vec<SocketAddr>,
    },
    /// A lookup ended.
    LookupDone {
        /// What was looked up.
        target: Id,
        /// The closest nodes that answered, closest first (at most [`K`]).
        closest: Vec<NodeInfo>,
        /// Queries it sent.
        queries: u32,
        /// `announce_peer` queries sent at the end.
        announced: usize,
        /// Rounds: the longest chain of replies that led to one of `closest` (1: a node
        /// we knew at the start).
        rounds: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CandState {
    Fresh,
    Asked,
    Replied,
    Failed,
}

#[derive(Debug, Clone)]
struct Cand {
    /// Unknown for a bootstrap address.
    id: Option<Id>,
    addr: SocketAddr,
    state: CandState,
    token: Option<Vec<u8>>,
    /// 1 for a node we started from; one more than the node that told us of it.
    hop: u32,
}

#[derive(Debug)]
struct Lookup {
    target: Id,
    /// `get_peers` (else `find_node`), and the port to announce at the end, if any.
    get_peers: bool,
    announce: Option<u16>,
    /// Joining the network: when it ends, every bucket is refreshed.
    joining: bool,
    /// The family it runs in (IPv6: BEP 32).
    v6: bool,
    cands: Vec<Cand>,
    in_flight: usize,
    queries: u32,
    found: HashSet<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Ping,
    Lookup(u64),
    Announce,
}

#[derive(Debug)]
struct Pending {
    addr: SocketAddr,
    id: Option<Id>,
    sent: Instant,
    purpose: Purpose,
    query: Query,
    retried: bool,
}

/// One DHT node.
pub struct Node {
    /// The IPv4 and the IPv6 routing table ([`fam`]).
    tables: [Table; 2],
    tokens: Tokens,
    store: PeerStore,
    config: Config,
    pending: HashMap<u16, Pending>,
    lookups: HashMap<u64, Lookup>,
    next_lookup: u64,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<Event>,
    rng: u64,
    next_t: u16,
    limiter: HashMap<IpAddr, (Instant, u32)>,
    last_maintenance: Instant,
    /// The bootstrap addresses, tried again while the table is empty.
    routers: Vec<SocketAddr>,
    /// Torrents we take part in, and the port we take peers on: a `get_peers` for one of
    /// them lists us too, so that in a small network a node that knows only us finds us.
    serving: HashMap<Id, u16>,
    /// Our address in each family as others see it: set by the owner (a bound address)
    /// or learnt from the `ip` field of replies (BEP 42).
    own_ip: [Option<IpAddr>; 2],
    /// Set by the owner: not replaced by what replies say.
    own_ip_fixed: [bool; 2],
    /// The last [`VOTES`] reports of our address: (the address reported, who reported it).
    votes: VecDeque<(IpAddr, IpAddr)>,
}

/// The index of `addr`'s family in the per-family arrays: 0 IPv4, 1 IPv6.
fn fam(ip: IpAddr) -> usize {
    usize::from(ip.is_ipv6())
}

/// Whether a node at `addr` can be queried in the family `v6` (a v4-mapped IPv6 address
/// cannot: IPv6 goes out on a v6-only socket).
fn usable(addr: &SocketAddr, v6: bool) -> bool {
    addr.port() != 0
        && match addr.ip() {
            IpAddr::V4(_) => !v6,
            IpAddr::V6(ip) => v6 && ip.to_ipv4_mapped().is_none() && !ip.is_unspecified(),
        }
}

impl Node {
    /// A node with id `id`; `seed` drives its randomness (transaction ids, token secrets,
    /// refresh targets).
    pub fn new(id: Id, config: Config, now: Instant, seed: u64) -> Self {
        let mut rng = seed | 1;
        let tokens = Tokens::new(now, || random_bytes(&mut rng));
        Self {
            tables: [Table::new(id, now), Table::new(id, now)],
            tokens,
            store: PeerStore::default(),
            config,
            pending: HashMap::new(),
            lookups: HashMap::new(),
            next_lookup: 1,
            out: VecDeque::new(),
            events: VecDeque::new(),
            next_t: (rng >> 16) as u16,
            rng,
            limiter: HashMap::new(),
            last_maintenance: now,
            routers: Vec::new(),
            serving: HashMap::new(),
            own_ip: [None; 2],
            own_ip_fixed: [false; 2],
            votes: VecDeque::new(),
        }
    }

    /// Our id.
    pub fn id(&self) -> Id {
        self.tables[0].own()
    }

    /// The IPv4 routing table.
    pub fn table(&self) -> &Table {
        &self.tables[0]
    }

    /// The IPv6 routing table (BEP 32).
    pub fn table6(&self) -> &Table {
        &self.tables[1]
    }

    /// Whether either table holds a node.
    pub fn knows_nodes(&self) -> bool {
        self.tables.iter().any(|t| !t.is_empty())
    }

    /// The families lookups run in: those whose table knows nodes (IPv4 when neither
    /// does, so that the lookup ends at once and says so).
    fn families(&self) -> Vec<bool> {
        let v: Vec<bool> = [false, true]
            .into_iter()
            .filter(|&v6| !self.tables[usize::from(v6)].is_empty())
            .collect();
        if v.is_empty() { vec![false] } else { v }
    }

    /// Peers announced to us, over all torrents.
    pub fn stored_peers(&self) -> usize {
        self.store.len()
    }

    /// Lookups under way.
    pub fn lookups(&self) -> usize {
        self.lookups.len()
    }

    /// Joins the network through these nodes (ids unknown): a lookup of our own id, which
    /// fills the table with the nodes around us.
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now: Instant) {
        for a in addrs {
            if !self.routers.contains(a) {
                self.routers.push(*a);
            }
        }
        for v6 in [false, true] {
            let these: Vec<SocketAddr> = addrs.iter().filter(|a| usable(a, v6)).copied().collect();
            if !these.is_empty() {
                self.join(&these, v6, now);
            }
        }
    }

    /// A lookup of our own id in one family, starting from `addrs` as well as the table.
    fn join(&mut self, addrs: &[SocketAddr], v6: bool, now: Instant) {
        let own = self.id();
        let id = self.start(own, false, None, v6);
        if let Some(l) = self.lookups.get_mut(&id) {
            l.joining = true;
            for &addr in addrs {
                if !l.cands.iter().any(|c| c.addr == addr) {
                    l.cands.insert(
                        0,
                        Cand {
                            id: None,
                            addr,
                            state: CandState::Fresh,
                            token: None,
                            hop: 1,
                        },
                    );
                }
            }
        }
        self.step(id, now);
    }

    /// Looks for peers of `info_hash`, reported as [`Event::Peers`]; with `announce`, ends
    /// by announcing that we download it on that port.
    pub fn get_peers(&mut self, info_hash: Id, announce: Option<u16>, now: Instant) {
        // Peers announced to this very node count too (in a small network the closest
        // node to the torrent may be us).
        let mine: Vec<SocketAddr> = [false, true]
            .into_iter()
            .flat_map(|v6| self.store.peers(&info_hash, v6, now))
            .collect();
        if !mine.is_empty() {
            self.events.push_back(Event::Peers {
                info_hash,
                peers: mine,
            });
        }
        for v6 in self.families() {
            self.lookup(info_hash, true, announce, v6, now);
        }
    }

    /// Looks up the nodes closest to `target` (in each family that knows nodes).
    pub fn find_node(&mut self, target: Id, now: Instant) {
        for v6 in self.families() {
            self.lookup(target, false, None, v6, now);
        }
    }

    fn lookup(
        &mut self,
        target: Id,
        get_peers: bool,
        announce: Option<u16>,
        v6: bool,
        now: Instant,
    ) {
        let id = self.start(target, get_peers, announce, v6);
        self.step(id, now);
    }

    /// We take part in `info_hash` on `port` (`None`: no longer): our `get_peers` replies
    /// for it list us, once our address is known.
    pub fn serve(&mut self, info_hash: Id, port: Option<u16>) {
        match port {
            Some(p) => self.serving.insert(info_hash, p),
            None => self.serving.remove(&info_hash),
        };
    }

    /// Whether our `get_peers` replies for `info_hash` list us.
    pub fn serves(&self, info_hash: Id) -> bool {
        self.serving.contains_key(&info_hash)
    }

    /// Our address, when the owner knows it (a bound address); otherwise it is learnt
    /// from replies' `ip` field.
    pub fn set_own_ip(&mut self, ip: IpAddr) {
        self.own_ip[fam(ip)] = Some(ip);
        self.own_ip_fixed[fam(ip)] = true;
        let now = self.last_maintenance;
        self.fit_id(ip, now);
    }

    /// Takes a BEP 42 id for our public address `ip` unless ours is one already.
    fn fit_id(&mut self, ip: IpAddr, now: Instant) {
        if bep42::valid(&self.id(), ip) {
            return;
        }
        let id = bep42::id_for(ip, random_bytes(&mut self.rng));
        log::debug!("DHT: our public address is {ip}: new node id {id:?} (BEP 42)");
        // The tables are sorted around our id: rebuilt around the new one. The nodes that
        // fit stay (with their record); a lookup of the new id fills the rest.
        for t in 0..2 {
            let old = std::mem::replace(&mut self.tables[t], Table::new(id, now));
            for e in old.entries() {
                self.tables[t].keep(e);
            }
            if !self.tables[t].is_empty() {
                self.join(&[], t == 1, now);
            }
        }
    }

    /// A reply says `from` sees us at `ip`: once [`VOTES_NEEDED`] distinct nodes agree on
    /// a public address, and more report it than any other, it is ours.
    fn vote(&mut self, ip: IpAddr, from: IpAddr, now: Instant) {
        if bep42::exempt(ip) || self.own_ip_fixed[fam(ip)] {
            return;
        }
        if self.votes.iter().any(|v| *v == (ip, from)) {
            return;
        }
        if self.votes.len() == VOTES {
            self.votes.pop_front();
        }
        self.votes.push_back((ip, from));
        let count = |ip: IpAddr| self.votes.iter().filter(|v| v.0 == ip).count();
        let n = count(ip);
        if n >= VOTES_NEEDED && self.votes.iter().all(|v| v.0 == ip || count(v.0) < n) {
            self.fit_id(ip, now);
        }
    }

    /// Pings `addr` (a `port` message from a peer): if it answers it joins the table.
    pub fn ping(&mut self, addr: SocketAddr, now: Instant) {
        if !self.pending.values().any(|p| p.addr == addr) {
            self.send_query(addr, None, Query::Ping, Purpose::Ping, now);
        }
    }

    fn start(&mut self, target: Id, get_peers: bool, announce: Option<u16>, v6: bool) -> u64 {
        let id = self.next_lookup;
        self.next_lookup += 1;
        let cands = self.tables[usize::from(v6)]
            .closest(&target, MAX_CANDIDATES)
            .into_iter()
            .map(|n| Cand {
                id: Some(n.id),
                addr: n.addr,
                state: CandState::Fresh,
                token: None,
                hop: 1,
            })
            .collect();
        self.lookups.insert(
            id,
            Lookup {
                target,
                get_peers,
                announce,
                joining: false,
                v6,
                cands,
                in_flight: 0,
                queries: 0,
                found: HashSet::new(),
            },
        );
        id
    }

    /// Sends the lookup's next queries, or ends it.
    fn step(&mut self, lookup: u64, now: Instant) {
        let Some(l) = self.lookups.get_mut(&lookup) else {
            return;
        };
        let target = l.target;
        l.cands
            .sort_by_key(|c| c.id.map_or([0; 20], |id| id.distance(&target)));
        let mut to_ask = Vec::new();
        let mut in_flight = l.in_flight;
        let mut live = 0;
        let mut all_replied = true;
        for c in l.cands.iter_mut() {
            if c.state == CandState::Failed {
                continue;
            }
            live += 1;
            if live > K {
                break;
            }
            match c.state {
                CandState::Replied => {}
                CandState::Asked => all_replied = false,
                CandState::Fresh => {
                    all_replied = false;
                    if in_flight < ALPHA {
                        c.state = CandState::Asked;
                        in_flight += 1;
                        to_ask.push((c.addr, c.id));
                    }
                }
                CandState::Failed => unreachable!(),
            }
        }
        let query = if l.get_peers {
            Query::GetPeers { info_hash: target }
        } else {
            Query::FindNode { target }
        };
        l.in_flight = in_flight;
        l.queries += to_ask.len() as u32;
        let done = all_replied || (to_ask.is_empty() && in_flight == 0);
        for (addr, id) in to_ask {
            self.send_query(addr, id, query.clone(), Purpose::Lookup(lookup), now);
        }
        if done {
            self.finish(lookup, now);
        }
    }

    fn finish(&mut self, lookup: u64, now: Instant) {
        let Some(l) = self.lookups.remove(&lookup) else {
            return;
        };
        let replied: Vec<&Cand> = l
            .cands
            .iter()
            .filter(|c| c.state == CandState::Replied && c.id.is_some())
            .take(K)
            .collect();
        let closest = replied
            .iter()
            .map(|c| NodeInfo {
                id: c.id.expect("filtered"),
                addr: c.addr,
            })
            .collect();
        let mut announced = 0;
        if let Some(port) = l.announce {
            for c in &replied {
                if let Some(token) = &c.token {
                    let q = Query::AnnouncePeer {
                        info_hash: l.target,
                        port,
                        implied_port: false,
                        token: token.clone(),
                    };
                    self.send_query(c.addr, c.id, q, Purpose::Announce, now);
                    announced += 1;
                }
            }
        }
        if l.joining {
            let rng = &mut self.rng;
            let targets = self.tables[usize::from(l.v6)].every_bucket(|| random_bytes(rng));
            for target in targets {
                self.lookup(target, false, None, l.v6, now);
            }
        }
        let rounds = replied.iter().map(|c| c.hop).max().unwrap_or(0);
        self.events.push_back(Event::LookupDone {
            target: l.target,
            closest,
            queries: l.queries,
            announced,
            rounds,
        });
    }

    fn send_query(
        &mut self,
        addr: SocketAddr,
        id: Option<Id>,
        query: Query,
        purpose: Purpose,
        now: Instant,
    ) {
        if self.pending.len() >= MAX_PENDING {
            // Too much in flight: it counts as failed at once and the lookup moves on, but
            // the node is not blamed (its table entry keeps its record).
            return self.query_failed(addr, None, purpose, now);
        }
        let t = self.new_t();
        self.transmit_query(t, addr, &query);
        self.pending.insert(
            t,
            Pending {
                addr,
                id,
                sent: now,
                purpose,
                query,
                retried: false,
            },
        );
    }

    fn new_t(&mut self) -> u16 {
        loop {
            self.next_t = self.next_t.wrapping_add(1);
            if !self.pending.contains_key(&self.next_t) {
                return self.next_t;
            }
        }
    }

    fn transmit_query(&mut self, t: u16, addr: SocketAddr, query: &Query) {
        // A dual-stack node whose other table is small asks for both families' nodes.
        let other = 1 - fam(addr.ip());
        let want = if self.config.dual_stack
            && self.tables[other].len() < K
            && matches!(query, Query::FindNode { .. } | Query::GetPeers { .. })
        {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        };
        let msg = Msg {
            t: t.to_be_bytes().to_vec(),
            body: Body::Query {
                id: self.id(),
                query: query.clone(),
                want,
                read_only: self.config.read_only,
            },
            ip: None,
        };
        self.out.push_back((addr, msg.encode()));
    }

    /// A datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if !self.allow(from.ip(), now) {
            return;
        }
        let msg = match Msg::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                if let (true, Some(t)) = (e.query, e.t) {
                    let code = if e.unknown_method {
                        krpc::code::METHOD_UNKNOWN
                    } else {
                        krpc::code::PROTOCOL
                    };
                    self.reply_error(from, t, code, &e.what);
                }
                return;
            }
        };
        match msg.body {
            Body::Query { .. } => self.on_query(from, msg, now),
            Body::Response(r) => {
                let f = fam(from.ip());
                if let (false, Some(ip)) = (self.own_ip_fixed[f], msg.ip) {
                    // BEP 42: how the replier sees us (the last word wins for our
                    // listing: a lie costs only that; our id follows a majority).
                    if fam(ip.ip()) == f && self.pending_from(from, &msg.t) {
                        self.own_ip[f] = Some(ip.ip());
                        self.vote(ip.ip(), from.ip(), now);
                    }
                }
                self.on_response(from, &msg.t, Some(r), now)
            }
            Body::Error { .. } => self.on_response(from, &msg.t, None, now),
        }
    }

    /// Whether another datagram from `ip` is taken this second.
    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.limiter.len() >= MAX_SOURCES && !self.limiter.contains_key(&ip) {
            self.limiter.clear();
        }
        let (since, n) = self.limiter.entry(ip).or_insert((now, 0));
        if now.duration_since(*since) >= Duration::from_secs(1) {
            *since = now;
            *n = 0;
        }
        *n += 1;
        *n <= MAX_PER_SECOND
    }

    /// Sends a response, trimmed to [`MAX_REPLY`] bytes: the other family's nodes go
    /// first, then values, then nodes (never an amplifier, and it crosses any path).
    fn reply(&mut self, to: SocketAddr, t: Vec<u8>, mut r: Response) {
        loop {
            let msg = Msg {
                t: t.clone(),
                body: Body::Response(r.clone()),
                ip: Some(to),
            };
            let bytes = msg.encode();
            let (own, other) = if to.is_ipv6() {
                (&mut r.nodes6, &mut r.nodes)
            } else {
                (&mut r.nodes, &mut r.nodes6)
            };
            if bytes.len() <= MAX_REPLY {
                return self.out.push_back((to, bytes));
            } else if !other.is_empty() {
                other.pop();
            } else if r.values.len() > 8 {
                r.values.truncate(r.values.len() * 3 / 4);
            } else if !own.is_empty() {
                own.pop();
            } else if !r.values.is_empty() {
                r.values.pop();
            } else {
                // Nothing left to trim (a huge transaction id): no reply.
                return;
            }
        }
    }

    fn reply_error(&mut self, to: SocketAddr, t: Vec<u8>, code: i64, what: &str) {
        let msg = Msg {
            t,
            body: Body::Error {
                code,
                message: what.chars().take(100).collect(),
            },
            ip: None,
        };
        self.out.push_back((to, msg.encode()));
    }

    /// A query: `msg.body` is a [`Body::Query`].
    fn on_query(&mut self, from: SocketAddr, msg: Msg, now: Instant) {
        let Body::Query {
            id,
            query,
            want,
            read_only,
        } = msg.body
        else {
            return;
        };
        let t = msg.t;
        // A node that queries us may be worth knowing: if there is room for it, ask it
        // something, and it joins the table when it answers (never on its word alone).
        if !read_only && self.tables[fam(from.ip())].has_room_for(&id) {
            self.ping(from, now);
        }
        let own = Some(self.id());
        // BEP 32: the families `want` names; without it, the querier's own.
        let want = if want.v4 || want.v6 {
            want
        } else {
            Want {
                v4: from.is_ipv4(),
                v6: from.is_ipv6(),
            }
        };
        let tables = &self.tables;
        let nodes_near = |target: &Id| -> (Vec<NodeInfo>, Vec<NodeInfo>) {
            let near = |v6: bool, wanted: bool| {
                if wanted {
                    tables[usize::from(v6)].closest(target, K)
                } else {
                    Vec::new()
                }
            };
            (near(false, want.v4), near(true, want.v6))
        };
        match query {
            Query::Ping => self.reply(
                from,
                t,
                Response {
                    id: own,
                    ..Response::default()
                },
            ),
            Query::FindNode { target } => {
                let (nodes, nodes6) = nodes_near(&target);
                self.reply(
                    from,
                    t,
                    Response {
                        id: own,
                        nodes,
                        nodes6,
                        ..Response::default()
                    },
                );
            }
            Query::GetPeers { info_hash } => {
                let mut values = self.store.peers(&info_hash, from.is_ipv6(), now);
                let me = self
                    .serving
                    .get(&info_hash)
                    .zip(self.own_ip[fam(from.ip())]);
                if let Some((&port, ip)) = me {
                    let me = SocketAddr::new(ip, port);
                    if !values.contains(&me) {
                        values.insert(0, me);
                        values.truncate(super::store::MAX_VALUES);
                    }
                }
                let (nodes, nodes6) = nodes_near(&info_hash);
                let token = Some(self.tokens.token(&from, &info_hash));
                self.reply(
                    from,
                    t,
                    Response {
                        id: own,
                        nodes,
                        nodes6,
                        values,
                        token,
                    },
                );
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.valid(&token, &from, &info_hash) {
                    return self.reply_error(from, t, krpc::code::PROTOCOL, "bad token");
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return self.reply_error(from, t, krpc::code::PROTOCOL, "port 0");
                }
                self.store
                    .announce(info_hash, SocketAddr::new(from.ip(), port), now);
                self.reply(
                    from,
                    t,
                    Response {
                        id: own,
                        ..Response::default()
                    },
                );
            }
        }
    }

    /// Whether `t` is a query of ours to `from`.
    fn pending_from(&self, from: SocketAddr, t: &[u8]) -> bool {
        <[u8; 2]>::try_from(t)
            .ok()
            .map(u16::from_be_bytes)
            .and_then(|t| self.pending.get(&t))
            .is_some_and(|p| p.addr == from)
    }

    fn on_response(&mut self, from: SocketAddr, t: &[u8], r: Option<Response>, now: Instant) {
        let Some(t) = <[u8; 2]>::try_from(t).ok().map(u16::from_be_bytes) else {
            return;
        };
        // Only the address we asked, with the id we gave it: anything else is stray or
        // spoofed.
        if self.pending.get(&t).is_none_or(|p| p.addr != from) {
            return;
        }
        let p = self.pending.remove(&t).expect("checked");
        let Some(r) = r else {
            // An error: it is alive, but gave nothing.
            return self.query_failed(p.addr, p.id, p.purpose, now);
        };
        let rid = r.id.expect("decode requires it");
        let table = &mut self.tables[fam(from.ip())];
        if p.id.is_some_and(|want| want != rid) {
            // Another node answers at that address now.
            table.failed(&p.id.expect("some"), p.addr);
        }
        if let Inserted::PingFirst(q) = table.insert(
            NodeInfo {
                id: rid,
                addr: from,
            },
            now,
        ) {
            self.ping(q.addr, now);
        }
        if let Purpose::Lookup(lookup) = p.purpose {
            self.lookup_reply(lookup, from, rid, r, now);
        }
    }

    fn lookup_reply(&mut self, lookup: u64, from: SocketAddr, rid: Id, r: Response, now: Instant) {
        let Some(l) = self.lookups.get_mut(&lookup) else {
            return;
        };
        l.in_flight = l.in_flight.saturating_sub(1);
        let mut hop = 1;
        if let Some(c) = l.cands.iter_mut().find(|c| c.addr == from) {
            c.state = CandState::Replied;
            c.id = Some(rid);
            c.token = r.token;
            hop = c.hop + 1;
        }
        let v6 = l.v6;
        let (nodes, others) = if v6 {
            (r.nodes6, r.nodes)
        } else {
            (r.nodes, r.nodes6)
        };
        let own = self.tables[0].own();
        for n in nodes.into_iter().filter(|n| usable(&n.addr, v6)) {
            if n.id == own
                || l.cands
                    .iter()
                    .any(|c| c.addr == n.addr || c.id == Some(n.id))
            {
                continue;
            }
            l.cands.push(Cand {
                id: Some(n.id),
                addr: n.addr,
                state: CandState::Fresh,
                token: None,
                hop,
            });
        }
        let target = l.target;
        l.cands
            .sort_by_key(|c| c.id.map_or([0; 20], |id| id.distance(&target)));
        l.cands.truncate(MAX_CANDIDATES);
        if l.get_peers && !r.values.is_empty() {
            let mut new = Vec::new();
            for v in r.values {
                if l.found.len() < MAX_FOUND && l.found.insert(v) {
                    new.push(v);
                }
            }
            if !new.is_empty() {
                self.events.push_back(Event::Peers {
                    info_hash: target,
                    peers: new,
                });
            }
        }
        // The other family's nodes, asked for while its table is small: each one with
        // room for it is pinged, and joins that table if it answers.
        let other = usize::from(!v6);
        if self.config.dual_stack && self.tables[other].len() < K {
            for n in others.into_iter().filter(|n| usable(&n.addr, !v6)).take(K) {
                if n.id != own && self.tables[other].has_room_for(&n.id) {
                    self.ping(n.addr, now);
                }
            }
        }
        self.step(lookup, now);
    }

    fn query_failed(&mut self, addr: SocketAddr, id: Option<Id>, purpose: Purpose, now: Instant) {
        if let Some(id) = id {
            self.tables[fam(addr.ip())].failed(&id, addr);
        }
        if let Purpose::Lookup(lookup) = purpose {
            if let Some(l) = self.lookups.get_mut(&lookup) {
                l.in_flight = l.in_flight.saturating_sub(1);
                if let Some(c) = l.cands.iter_mut().find(|c| c.addr == addr) {
                    c.state = CandState::Failed;
                }
                self.step(lookup, now);
            }
        }
    }

    /// Time passed: unanswered queries are sent once more, then fail; stale buckets are
    /// refreshed, token secrets rotated and old announces forgotten.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut late: Vec<(Instant, u16)> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.sent) >= QUERY_TIMEOUT)
            .map(|(t, p)| (p.sent, *t))
            .collect();
        // In the order they were sent, not the map's: the same inputs, the same outputs.
        late.sort_unstable();
        let late = late.into_iter().map(|(_, t)| t);
        for t in late {
            let mut p = self.pending.remove(&t).expect("listed");
            if p.retried {
                self.query_failed(p.addr, p.id, p.purpose, now);
            } else {
                p.retried = true;
                p.sent = now;
                let t = self.new_t();
                self.transmit_query(t, p.addr, &p.query);
                self.pending.insert(t, p);
            }
        }
        if now.duration_since(self.last_maintenance) >= Duration::from_secs(60) {
            self.last_maintenance = now;
            for v6 in [false, true] {
                let rng = &mut self.rng;
                let table = &mut self.tables[usize::from(v6)];
                let empty = table.is_empty();
                let targets = if empty {
                    Vec::new()
                } else {
                    table.stale(now, || random_bytes(rng))
                };
                for target in targets {
                    self.lookup(target, false, None, v6, now);
                }
                // Nobody answered the bootstrap (lost, or the routers were down), or too
                // few did (we joined a network of a handful): join again, through the
                // routers and the nodes we know.
                let routers: Vec<SocketAddr> = self
                    .routers
                    .iter()
                    .filter(|a| usable(a, v6))
                    .copied()
                    .collect();
                let thin = self.tables[usize::from(v6)].len() < K;
                if thin && !(empty && routers.is_empty()) {
                    self.join(&routers, v6, now);
                }
            }
            let rng = &mut self.rng;
            self.tokens.rotate(now, || random_bytes(rng));
            self.store.expire(now);
        }
    }

    /// When [`Node::handle_timeout`] has something to do next.
    pub fn poll_timeout(&self) -> Instant {
        let maintenance = self.last_maintenance + Duration::from_secs(60);
        self.pending
            .values()
            .map(|p| p.sent + QUERY_TIMEOUT)
            .min()
            .map_or(maintenance, |t| t.min(maintenance))
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A random id, from the node's own randomness (for a new node id, say).
    pub fn random_target(&mut self) -> Id {
        Id(random_bytes(&mut self.rng))
    }
}

/// `N` bytes from the xorshift state `rng` (ids, refresh targets, token secrets).
fn random_bytes<const N: usize>(rng: &mut u64) -> [u8; N] {
    let mut b = [0u8; N];
    for c in b.chunks_mut(8) {
        *rng = xorshift(*rng);
        c.copy_from_slice(&rng.to_le_bytes()[..c.len()]);
    }
    b
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests;
