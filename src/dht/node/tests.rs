//! Nodes talking to each other through a simulated network: seeded latency and loss, some
//! nodes gone, simulated time. No sockets, no clock: every run is the same run.

use super::*;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A datagram on its way: when it arrives, a sequence number (the order of equal times),
/// from where, to which node, what.
type InFlight = Reverse<(Instant, u64, SocketAddr, usize, Vec<u8>)>;

struct Net {
    nodes: Vec<Node>,
    addrs: Vec<SocketAddr>,
    /// Each node's IPv6 address, in a dual-stack network.
    addrs6: Vec<SocketAddr>,
    by_addr: HashMap<SocketAddr, usize>,
    /// (delivery time, sequence, from, to node, bytes)
    queue: BinaryHeap<InFlight>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    gone: HashSet<usize>,
    events: Vec<(usize, Event, Instant)>,
    now: Instant,
    rng: u64,
    seq: u64,
    loss_per_mille: u64,
    sent: u64,
}

impl Net {
    fn new(n: usize, seed: u64, loss_per_mille: u64) -> Self {
        let start = Instant::now();
        let mut rng = seed | 1;
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        let mut by_addr = HashMap::new();
        for i in 0..n {
            let mut id = [0u8; 20];
            for c in id.chunks_mut(8) {
                rng = xorshift(rng);
                c.copy_from_slice(&rng.to_le_bytes()[..c.len()]);
            }
            let addr = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
            nodes.push(Node::new(Id(id), Config::default(), start, rng));
            by_addr.insert(addr, i);
            addrs.push(addr);
        }
        Self {
            nodes,
            addrs,
            addrs6: Vec::new(),
            by_addr,
            queue: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            gone: HashSet::new(),
            events: Vec::new(),
            now: start,
            rng,
            seq: 0,
            loss_per_mille,
            sent: 0,
        }
    }

    /// A network whose nodes also have an IPv6 address each (fd00::N) and know it.
    fn dual(n: usize, seed: u64) -> Self {
        let mut net = Self::new(n, seed, 0);
        for i in 0..n {
            let addr = SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::new(
                    0xfd00,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    i as u16 + 1,
                )),
                6881,
            );
            net.by_addr.insert(addr, i);
            net.addrs6.push(addr);
            net.nodes[i].config.dual_stack = true;
        }
        net
    }

    fn random(&mut self) -> u64 {
        self.rng = xorshift(self.rng);
        self.rng
    }

    /// Moves what node `i` wants sent into the network, its events out, its timer in.
    fn drain(&mut self, i: usize) {
        while let Some((to, bytes)) = self.nodes[i].poll_transmit() {
            self.sent += 1;
            assert!(bytes.len() <= 1024, "a datagram of {} bytes", bytes.len());
            if self.random() % 1000 < self.loss_per_mille {
                continue;
            }
            let Some(&j) = self.by_addr.get(&to) else {
                continue;
            };
            let latency = Duration::from_millis(5 + self.random() % 45);
            self.seq += 1;
            let from = if to.is_ipv6() {
                self.addrs6[i]
            } else {
                self.addrs[i]
            };
            self.queue
                .push(Reverse((self.now + latency, self.seq, from, j, bytes)));
        }
        while let Some(e) = self.nodes[i].poll_event() {
            self.events.push((i, e, self.now));
        }
        let t = self.nodes[i].poll_timeout();
        self.timers.push(Reverse((t, i)));
    }

    /// Runs until `until` in simulated time.
    fn run(&mut self, until: Instant) {
        loop {
            let next_msg = self.queue.peek().map(|Reverse(m)| m.0);
            let next_timer = self.timers.peek().map(|Reverse(t)| t.0);
            let next = match (next_msg, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_msg == Some(next) {
                let Reverse((_, _, from, to, bytes)) = self.queue.pop().unwrap();
                if self.gone.contains(&to) {
                    continue;
                }
                self.nodes[to].handle_datagram(self.now, from, &bytes);
                self.drain(to);
            } else {
                let Reverse((_, i)) = self.timers.pop().unwrap();
                if self.gone.contains(&i) || self.nodes[i].poll_timeout() > self.now {
                    continue;
                }
                self.nodes[i].handle_timeout(self.now);
                self.drain(i);
            }
        }
        self.now = self.now.max(until);
    }

    /// The true `k` closest live nodes to `target`, other than `asker`.
    fn truth(&self, target: &Id, asker: usize, k: usize) -> Vec<Id> {
        let mut ids: Vec<Id> = (0..self.nodes.len())
            .filter(|i| *i != asker && !self.gone.contains(i))
            .map(|i| self.nodes[i].id())
            .collect();
        ids.sort_by_key(|id| id.distance(target));
        ids.truncate(k);
        ids
    }
}

#[test]
fn a_thousand_nodes_find_the_true_k_closest_and_each_others_peers() {
    let mut net = Net::new(1000, 0x5eed, 10);
    // Everyone joins through node 0, a few at a time.
    let boot = net.addrs[0];
    for i in 1..net.nodes.len() {
        let at = net.now;
        net.nodes[i].bootstrap(&[boot], at);
        net.drain(i);
        let t = net.now + Duration::from_millis(20);
        net.run(t);
    }
    // Long enough for a node whose bootstrap was lost to try again (once a minute).
    let t = net.now + Duration::from_secs(70);
    net.run(t);
    net.events.clear();
    let sizes: Vec<usize> = net.nodes.iter().map(|n| n.table().len()).collect();
    let avg = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
    let least = *sizes.iter().min().unwrap();
    eprintln!("routing tables: {avg:.1} nodes on average, {least} at least");
    assert!(least >= K, "a node with {least} nodes in its table");

    // 5% of the nodes leave without a word.
    for i in (1..net.nodes.len()).step_by(20) {
        net.gone.insert(i);
    }

    // Lookups of random targets from random nodes converge on the true K closest.
    let mut queries = Vec::new();
    let mut times = Vec::new();
    let mut rounds = Vec::new();
    let mut exact = 0;
    for _ in 0..20 {
        let asker = (net.random() % 999 + 1) as usize;
        if net.gone.contains(&asker) {
            continue;
        }
        let target = Id(net.nodes[asker].random_target().0);
        let started = net.now;
        net.nodes[asker].find_node(target, started);
        net.drain(asker);
        let t = net.now + Duration::from_secs(30);
        net.run(t);
        let (closest, q, r, ended) = net
            .events
            .drain(..)
            .find_map(|(i, e, at)| match e {
                Event::LookupDone {
                    target: got,
                    closest,
                    queries,
                    rounds,
                    ..
                } if i == asker && got == target => Some((closest, queries, rounds, at)),
                _ => None,
            })
            .expect("the lookup ended");
        let found: Vec<Id> = closest.iter().map(|n| n.id).collect();
        let truth = net.truth(&target, asker, K);
        // The closest node always; of the K, all but at most one. Over 5 seeds x 100
        // lookups, 473 of 475 found all 8; of the other two, one lost both tries of its
        // query to the 8th node, and in the other the departed nodes still in the
        // answering nodes' tables crowded the 8th out of every reply.
        assert_eq!(found.first(), truth.first(), "lookup from node {asker}");
        let hits = truth.iter().filter(|id| found.contains(id)).count();
        assert!(
            hits >= K - 1,
            "lookup from node {asker}: {found:?}, truly {truth:?}"
        );
        exact += usize::from(hits == K);
        queries.push(q);
        rounds.push(r);
        times.push(ended.duration_since(started));
    }
    queries.sort_unstable();
    rounds.sort_unstable();
    times.sort_unstable();
    eprintln!(
        "find_node over 1,000 nodes (5% gone, 1% loss, 10-100 ms round trips): {} lookups, \
         {exact} found exactly the true {K} closest; queries each: median {}, max {}; \
         rounds each: median {}, max {}; simulated time each: median {:?}, max {:?}",
        queries.len(),
        queries[queries.len() / 2],
        queries[queries.len() - 1],
        rounds[rounds.len() / 2],
        rounds[rounds.len() - 1],
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // A peer announced by one node is found by get_peers from any other.
    let info_hash = Id([0x42; 20]);
    let (a, b) = (7usize, 555usize);
    let at = net.now;
    net.nodes[a].get_peers(info_hash, Some(51413), at);
    net.drain(a);
    let t = net.now + Duration::from_secs(30);
    net.run(t);
    let announced = net
        .events
        .iter()
        .find_map(|(i, e, _)| match e {
            Event::LookupDone {
                target, announced, ..
            } if *i == a && *target == info_hash => Some(*announced),
            _ => None,
        })
        .expect("a's lookup ended");
    assert!(announced >= K / 2, "announced to {announced} nodes");
    net.events.clear();
    let at = net.now;
    net.nodes[b].get_peers(info_hash, None, at);
    net.drain(b);
    let t = net.now + Duration::from_secs(30);
    net.run(t);
    let want = SocketAddr::new(net.addrs[a].ip(), 51413);
    let found = net.events.iter().any(|(i, e, _)| {
        matches!(e, Event::Peers { info_hash: h, peers } if *i == b && *h == info_hash && peers.contains(&want))
    });
    assert!(found, "b did not find a's announce: {:?}", net.events);
    eprintln!("datagrams sent in all: {}", net.sent);
}

#[test]
fn a_dual_stack_node_learns_ipv6_nodes_through_ipv4_and_finds_a_peer_announced_over_ipv6() {
    let mut net = Net::dual(40, 7);
    let start = net.now;
    // Nodes 1..39 join through node 0's two addresses; node 39 through its IPv4 one only.
    let (boot4, boot6) = (net.addrs[0], net.addrs6[0]);
    for i in 1..39 {
        net.nodes[i].bootstrap(&[boot4, boot6], start);
        net.drain(i);
    }
    net.run(start + Duration::from_secs(10));
    let late = net.now;
    net.nodes[39].bootstrap(&[boot4], late);
    net.drain(39);
    net.run(late + Duration::from_secs(10));
    let n = &net.nodes[39];
    assert!(
        n.table6().len() >= K,
        "IPv6 nodes learnt through IPv4: {}",
        n.table6().len()
    );
    assert!(n.table6().entries().all(|e| e.info.addr.is_ipv6()));
    assert!(n.table().entries().all(|e| e.info.addr.is_ipv4()));
    // Node 5 announces a torrent; node 39 finds it in both families.
    let ih = Id([0x5a; 20]);
    let t = net.now;
    net.nodes[5].get_peers(ih, Some(7000), t);
    net.drain(5);
    net.run(t + Duration::from_secs(10));
    let t = net.now;
    net.nodes[39].get_peers(ih, None, t);
    net.drain(39);
    net.run(t + Duration::from_secs(10));
    let found: Vec<SocketAddr> = net
        .events
        .iter()
        .filter(|(i, _, at)| *i == 39 && *at >= t)
        .filter_map(|(_, e, _)| match e {
            Event::Peers { info_hash, peers } if *info_hash == ih => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let v6 = SocketAddr::new(net.addrs6[5].ip(), 7000);
    let v4 = SocketAddr::new(net.addrs[5].ip(), 7000);
    assert!(found.contains(&v6) && found.contains(&v4), "{found:?}");
}

#[test]
fn a_reply_stays_under_1024_bytes_whatever_it_is_asked_for() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let ih = Id([9; 20]);
    for i in 0..200u16 {
        let v6 = SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 1, i)),
            7000,
        );
        let v4 = SocketAddr::from(([10, 1, (i >> 8) as u8, i as u8], 7000));
        n.store.announce(ih, v6, now);
        n.store.announce(ih, v4, now);
        for (t, a) in [(0, v4), (1, v6)] {
            let mut id = [0u8; 20];
            id[..2].copy_from_slice(&i.to_be_bytes());
            id[2] = t;
            n.tables[t as usize].insert(
                NodeInfo {
                    id: Id(id),
                    addr: SocketAddr::new(a.ip(), 6881),
                },
                now,
            );
        }
    }
    let from: SocketAddr = "[fd00::2]:40000".parse().unwrap();
    let ask = Msg {
        t: b"g1".to_vec(),
        body: Body::Query {
            id: Id([5; 20]),
            query: Query::GetPeers { info_hash: ih },
            want: Want { v4: true, v6: true },
            read_only: true,
        },
        ip: None,
    }
    .encode();
    n.handle_datagram(now, from, &ask);
    let (_, bytes) = n.poll_transmit().unwrap();
    assert!(bytes.len() <= MAX_REPLY, "{} bytes", bytes.len());
    let Body::Response(r) = Msg::decode(&bytes).unwrap().body else {
        panic!("a response");
    };
    assert!(r.token.is_some());
    assert!(!r.values.is_empty() && r.values.iter().all(SocketAddr::is_ipv6));
    assert!(!r.nodes6.is_empty(), "its own family's nodes stay");
    // Without `want`, an IPv6 querier gets IPv6 nodes only, in `nodes6`.
    let ask = Msg {
        t: b"f1".to_vec(),
        body: Body::Query {
            id: Id([5; 20]),
            query: Query::FindNode { target: ih },
            want: Want::default(),
            read_only: true,
        },
        ip: None,
    }
    .encode();
    n.handle_datagram(now, from, &ask);
    let Body::Response(r) = Msg::decode(&n.poll_transmit().unwrap().1).unwrap().body else {
        panic!("a response");
    };
    assert!(r.nodes.is_empty() && r.nodes6.len() == K);
}

#[test]
fn a_node_with_a_thin_table_joins_again_every_minute() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let router: SocketAddr = "10.0.0.2:6881".parse().unwrap();
    n.bootstrap(&[router], now);
    // The router answers with itself only: one node in the table.
    let (to, q) = n.poll_transmit().unwrap();
    assert_eq!(to, router);
    let reply = Msg {
        t: Msg::decode(&q).unwrap().t,
        body: Body::Response(Response {
            id: Some(Id([2; 20])),
            ..Response::default()
        }),
        ip: None,
    };
    n.handle_datagram(now, router, &reply.encode());
    while n.poll_transmit().is_some() {}
    assert_eq!(n.table().len(), 1);
    // A minute later it looks itself up again through the router.
    let later = now + Duration::from_secs(61);
    n.handle_timeout(later);
    let again: Vec<Query> = std::iter::from_fn(|| n.poll_transmit())
        .filter(|(to, _)| *to == router)
        .filter_map(|(_, b)| match Msg::decode(&b).unwrap().body {
            Body::Query { query, .. } => Some(query),
            _ => None,
        })
        .collect();
    assert!(
        again.contains(&Query::FindNode { target: n.id() }),
        "{again:?}"
    );
}

#[test]
fn a_node_takes_a_bep_42_id_once_four_nodes_agree_on_its_public_address() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let public: IpAddr = "81.2.69.160".parse().unwrap();
    // Node i answers our ping and says it sees us at `seen`.
    let answer = |n: &mut Node, i: u8, seen: IpAddr| {
        let node = SocketAddr::from(([62, 1, 1, i], 6881));
        n.ping(node, now);
        let (_, q) = n.poll_transmit().unwrap();
        let reply = Msg {
            t: Msg::decode(&q).unwrap().t,
            body: Body::Response(Response {
                id: Some(Id([i; 20])),
                ..Response::default()
            }),
            ip: Some(SocketAddr::new(seen, 6881)),
        };
        n.handle_datagram(now, node, &reply.encode());
        while n.poll_transmit().is_some() {}
    };
    // Loopback and private addresses never change the id.
    for i in 2..8 {
        answer(&mut n, i, "192.168.1.5".parse().unwrap());
    }
    assert_eq!(n.id(), Id([1; 20]));
    // Three nodes are not enough, and a node saying it twice counts once.
    for i in 10..13 {
        answer(&mut n, i, public);
    }
    answer(&mut n, 10, public);
    assert_eq!(n.id(), Id([1; 20]));
    let known = n.table().len();
    answer(&mut n, 13, public);
    assert!(bep42::valid(&n.id(), public), "{:?}", n.id());
    assert!(!bep42::valid(&Id([1; 20]), public));
    // The table was rebuilt around the new id with the nodes it knew (those that fit:
    // they may all fall in one bucket of 8 now).
    assert_eq!(n.table().own(), n.id());
    assert!(n.table().len() >= K.min(known + 1), "{}", n.table().len());
    // As many saying otherwise (a tie) do not move it.
    let id = n.id();
    for i in 20..24 {
        answer(&mut n, i, "81.2.69.161".parse().unwrap());
    }
    assert_eq!(n.id(), id);
}

#[test]
fn malformed_queries_get_krpc_errors_and_a_flood_is_cut() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let from: SocketAddr = "10.0.0.2:1".parse().unwrap();
    n.handle_datagram(
        now,
        from,
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe",
    );
    let (to, reply) = n.poll_transmit().unwrap();
    assert_eq!(to, from);
    let Body::Error { code, .. } = Msg::decode(&reply).unwrap().body else {
        panic!("an error");
    };
    assert_eq!(code, krpc::code::METHOD_UNKNOWN);
    n.handle_datagram(now, from, b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe");
    let (_, reply) = n.poll_transmit().unwrap();
    assert!(matches!(
        Msg::decode(&reply).unwrap().body,
        Body::Error { code: 203, .. }
    ));
    // Garbage without a transaction id, and responses nobody asked for: silence.
    n.handle_datagram(now, from, b"garbage");
    n.handle_datagram(
        now,
        from,
        b"d1:rd2:id20:abcdefghij0123456789e1:t2:zz1:y1:re",
    );
    assert!(n.poll_transmit().is_none());
    // A flood from one address: MAX_PER_SECOND answered, then nothing until a second passed.
    let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    let src: SocketAddr = "10.0.0.3:1".parse().unwrap();
    let mut answered = 0;
    for _ in 0..200 {
        n.handle_datagram(now, src, ping);
        while let Some((to, bytes)) = n.poll_transmit() {
            if to == src && matches!(Msg::decode(&bytes).unwrap().body, Body::Response(_)) {
                answered += 1;
            }
        }
    }
    assert_eq!(answered, MAX_PER_SECOND as usize);
    let later = now + Duration::from_secs(1);
    n.handle_datagram(later, src, ping);
    assert!(
        n.poll_transmit().is_some(),
        "a second later it is heard again"
    );
}

#[test]
fn announce_needs_our_token_and_implied_port_uses_the_source_port() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let from: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let ih = Id([9; 20]);
    let ask = |t: &[u8], q: Query| {
        Msg {
            t: t.to_vec(),
            body: Body::Query {
                id: Id([5; 20]),
                query: q,
                want: Want::default(),
                read_only: true,
            },
            ip: None,
        }
        .encode()
    };
    n.handle_datagram(now, from, &ask(b"g1", Query::GetPeers { info_hash: ih }));
    let Body::Response(r) = Msg::decode(&n.poll_transmit().unwrap().1).unwrap().body else {
        panic!("a response");
    };
    let token = r.token.unwrap();
    let bad = Query::AnnouncePeer {
        info_hash: ih,
        port: 1,
        implied_port: false,
        token: b"forged".to_vec(),
    };
    n.handle_datagram(now, from, &ask(b"a1", bad));
    assert!(matches!(
        Msg::decode(&n.poll_transmit().unwrap().1).unwrap().body,
        Body::Error { code: 203, .. }
    ));
    let good = Query::AnnouncePeer {
        info_hash: ih,
        port: 1,
        implied_port: true,
        token,
    };
    n.handle_datagram(now, from, &ask(b"a2", good));
    assert!(matches!(
        Msg::decode(&n.poll_transmit().unwrap().1).unwrap().body,
        Body::Response(_)
    ));
    assert_eq!(
        n.store.peers(&ih, false, now),
        [from],
        "the source port, not 1"
    );
}

#[test]
fn a_node_lists_itself_for_the_torrents_it_serves_once_it_knows_its_address() {
    let now = Instant::now();
    let mut n = Node::new(Id([1; 20]), Config::default(), now, 9);
    let ih = Id([9; 20]);
    n.serve(ih, Some(51413));
    let from: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let ask = Msg {
        t: b"g1".to_vec(),
        body: Body::Query {
            id: Id([5; 20]),
            query: Query::GetPeers { info_hash: ih },
            want: Want::default(),
            read_only: true,
        },
        ip: None,
    }
    .encode();
    let values = |n: &mut Node| {
        n.handle_datagram(now, from, &ask);
        let Body::Response(r) = Msg::decode(&n.poll_transmit().unwrap().1).unwrap().body else {
            panic!("a response");
        };
        r.values
    };
    assert!(values(&mut n).is_empty(), "our address is not known yet");
    // A reply to our ping says how it sees us (BEP 42's ip).
    let node: SocketAddr = "10.0.0.7:6881".parse().unwrap();
    n.ping(node, now);
    let (_, q) = n.poll_transmit().unwrap();
    let reply = Msg {
        t: Msg::decode(&q).unwrap().t,
        body: Body::Response(Response {
            id: Some(Id([7; 20])),
            ..Response::default()
        }),
        ip: Some("10.0.0.1:6881".parse().unwrap()),
    };
    n.handle_datagram(now, node, &reply.encode());
    assert_eq!(
        values(&mut n),
        ["10.0.0.1:51413".parse::<SocketAddr>().unwrap()]
    );
    n.serve(ih, None);
    assert!(values(&mut n).is_empty());
}

/// The memory of a node with every bucket full (160 × 8 nodes) and a full peer store
/// (`MAX_PEERS` announces): `cargo test --lib dht_memory -- --ignored --nocapture`
/// (alone: it reads the process's anonymous memory before and after).
#[test]
#[ignore]
fn dht_memory_of_a_full_table_and_a_full_peer_store() {
    fn rss_anon_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("RssAnon:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
    let now = Instant::now();
    let before = rss_anon_kb();
    let own = Id([0; 20]);
    let mut n = Node::new(own, Config::default(), now, 1);
    // Nodes sharing exactly `depth` leading bits with us, 8 for every depth: every bucket.
    let mut count = 0u32;
    for depth in 0..160usize {
        for k in 0..8u32 {
            let mut id = [0u8; 20];
            id[depth / 8] |= 0x80 >> (depth % 8);
            id[16..].copy_from_slice(&(k + 1).to_be_bytes());
            let addr = SocketAddr::from((
                [10, (count >> 16) as u8, (count >> 8) as u8, count as u8],
                6881,
            ));
            count += 1;
            n.tables[0].insert(NodeInfo { id: Id(id), addr }, now);
        }
    }
    for i in 0..super::super::store::MAX_PEERS as u32 {
        let mut ih = [0u8; 20];
        ih[..4].copy_from_slice(&(i / 10).to_be_bytes());
        let peer = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1));
        n.store.announce(Id(ih), peer, now);
    }
    let after = rss_anon_kb();
    eprintln!(
        "table: {} nodes in {} buckets; peer store: {} peers; RssAnon {} kB -> {} kB (+{} kB)",
        n.table().len(),
        n.table().buckets(),
        n.stored_peers(),
        before,
        after,
        after.saturating_sub(before)
    );
    assert!(n.table().len() > 1000);
}
