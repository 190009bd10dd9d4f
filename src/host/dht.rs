//! The host's DHT: one [`Node`] on the host's UDP socket (datagrams that start with `d`
//! are KRPC; UDP tracker replies start with a zero byte), bootstrapped from the routers
//! (host names resolved on the resolver thread) and from the nodes saved at the last run,
//! asked for each non-private torrent's peers when it starts and every few minutes after
//! (announcing our port), the peers it finds handed to the torrent like a tracker's.

use crate::dht::Id;
use crate::dht::krpc::NodeInfo;
use crate::dht::node::{Config, Event, Node};
use crate::tracker::io::{Lookup, Resolver};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The well-known routers, used when no `--dht-node` is given.
pub const ROUTERS: [&str; 4] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// A torrent asks the DHT for peers this often while it runs (BEP 5 announces expire
/// after 30 minutes at most nodes).
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_secs(15 * 60);

/// While a torrent has few peers, it asks this often.
pub(super) const ASK_EVERY_WHEN_SHORT: Duration = Duration::from_secs(60);

/// The DHT's settings.
#[derive(Debug, Clone, Default)]
pub struct DhtOptions {
    /// Bootstrap nodes, `HOST:PORT`; empty: [`ROUTERS`].
    pub bootstrap: Vec<String>,
    /// Where the node's id and good nodes are kept between runs.
    pub state: Option<PathBuf>,
}

/// The state file: a magic line, our id, then the good nodes, each as the length of its
/// compact address (6 for IPv4, 18 for IPv6), its id and that address.
const MAGIC: &[u8; 8] = b"BTMDHT2\n";
/// The first state file: a magic line, our id, then IPv4 nodes (id, address) only; read.
const MAGIC1: &[u8; 8] = b"BTMDHT1\n";
/// Nodes saved at most.
const SAVE_MAX: usize = 200;

/// How often the DHT's state is saved while running (and once at exit).
const SAVE_EVERY: Duration = Duration::from_secs(600);

/// The host's node and what goes with it.
pub(super) struct Dht {
    pub(super) node: Node,
    opts: DhtOptions,
    /// Resolved router addresses arrive here.
    answers: (mpsc::Sender<Lookup>, mpsc::Receiver<Lookup>),
    saved_at: Instant,
    /// Whether IPv4 and IPv6 datagrams can be sent.
    families: [bool; 2],
}

impl Dht {
    /// A node with the saved id (or a new one), bootstrapping from the saved nodes at once
    /// and from the routers once resolved.
    /// `families`: whether the host can send IPv4 and IPv6 datagrams.
    pub(super) fn start(
        opts: DhtOptions,
        resolver: &Resolver,
        families: [bool; 2],
        now: Instant,
    ) -> Self {
        let (id, saved) = opts
            .state
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| load(&b))
            .unwrap_or_else(|| (Id(random_id()), Vec::new()));
        let config = Config {
            dual_stack: families[0] && families[1],
            ..Config::default()
        };
        let mut node = Node::new(id, config, now, crate::util::random_u64());
        let answers = mpsc::channel();
        let can = move |a: &SocketAddr| families[usize::from(a.is_ipv6())];
        let mut direct: Vec<SocketAddr> = saved.iter().map(|n| n.addr).filter(can).collect();
        let names: Vec<String> = if opts.bootstrap.is_empty() {
            ROUTERS.iter().map(|r| r.to_string()).collect()
        } else {
            opts.bootstrap.clone()
        };
        for (i, name) in names.iter().enumerate() {
            if let Ok(a) = name.parse::<SocketAddr>() {
                if can(&a) {
                    direct.push(a);
                } else {
                    log::warn!("DHT node {a}: no socket of its address family");
                }
            } else if let Some((host, port)) = name.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    let req = (i as u64, host.to_string(), port, answers.0.clone());
                    if let Err(e) = resolver.lookup(req) {
                        log::debug!("DHT router {name}: {e}");
                    }
                }
            }
        }
        if !direct.is_empty() {
            node.bootstrap(&direct, now);
        }
        log::debug!(
            "DHT node {} ({} saved nodes)",
            crate::util::hex(&id.0),
            saved.len()
        );
        Self {
            node,
            opts,
            answers,
            saved_at: now,
            families,
        }
    }

    /// Router names resolved (the waker fired): bootstrap from them.
    pub(super) fn resolved(&mut self, now: Instant) {
        let found: Vec<SocketAddr> = self
            .answers
            .1
            .try_iter()
            .filter_map(|(_, r)| r.ok())
            .flatten()
            .filter(|a| self.families[usize::from(a.is_ipv6())])
            .collect();
        if !found.is_empty() {
            self.node.bootstrap(&found, now);
        }
    }

    /// Saves the id and good nodes every 10 minutes, and when `now_anyway`.
    /// When the state is saved next; `None` without a state file.
    pub(super) fn save_due(&self) -> Option<Instant> {
        self.opts.state.as_ref()?;
        Some(self.saved_at + SAVE_EVERY)
    }

    /// Saves the node's state when it is due (or `now_anyway`): on `disk`'s thread when
    /// given (the loop's periodic saves), else here (the last one, at exit).
    pub(super) fn save(
        &mut self,
        now: Instant,
        now_anyway: bool,
        disk: Option<&crate::storage::Disk>,
    ) {
        let Some(path) = &self.opts.state else {
            return;
        };
        if !now_anyway && now.duration_since(self.saved_at) < SAVE_EVERY {
            return;
        }
        self.saved_at = now;
        let nodes: Vec<NodeInfo> = [self.node.table(), self.node.table6()]
            .into_iter()
            .flat_map(|t| t.entries().filter(|e| e.is_good(now)).take(SAVE_MAX / 2))
            .map(|e| e.info)
            .collect();
        let b = store(self.node.id(), &nodes);
        match disk {
            Some(disk) => disk.save(path.clone(), b),
            None => {
                if let Err(e) = crate::storage::write_atomic(path, &b) {
                    log::debug!("DHT state: {e}");
                }
            }
        }
    }

    /// Events the node has: peers for torrents, lookups that ended.
    pub(super) fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.node.poll_event()).collect()
    }
}

fn random_id() -> [u8; 20] {
    let mut id = [0u8; 20];
    for c in id.chunks_mut(8) {
        c.copy_from_slice(&crate::util::random_u64().to_le_bytes()[..c.len()]);
    }
    id
}

/// A state file's bytes.
fn store(id: Id, nodes: &[NodeInfo]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.extend_from_slice(&id.0);
    for n in nodes {
        b.push(if n.addr.is_ipv4() { 6 } else { 18 });
        b.extend_from_slice(&n.id.0);
        crate::dht::krpc::encode_addr(&n.addr, &mut b);
    }
    b
}

/// Reads a state file (either format): our id and the nodes saved; `None` if it is not
/// one.
fn load(b: &[u8]) -> Option<(Id, Vec<NodeInfo>)> {
    let node = |c: &[u8]| {
        Some(NodeInfo {
            id: Id(c.get(..20)?.try_into().ok()?),
            addr: crate::dht::krpc::compact_addr(&c[20..])?,
        })
    };
    if let Some(rest) = b.strip_prefix(&MAGIC1[..]) {
        let (id, nodes) = rest.split_at_checked(20)?;
        if nodes.len() % 26 != 0 {
            return None;
        }
        let nodes = nodes.chunks_exact(26).take(SAVE_MAX).filter_map(node);
        return Some((Id(id.try_into().ok()?), nodes.collect()));
    }
    let (id, mut rest) = b.strip_prefix(&MAGIC[..])?.split_at_checked(20)?;
    let mut nodes = Vec::new();
    while let Some((&len, tail)) = rest.split_first() {
        let (c, tail) = tail.split_at_checked(20 + usize::from(len))?;
        nodes.extend(node(c).filter(|_| nodes.len() < SAVE_MAX));
        rest = tail;
    }
    Some((Id(id.try_into().ok()?), nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_reads_back_and_garbage_is_not_one() {
        let nodes = [
            NodeInfo {
                id: Id([9; 20]),
                addr: "10.0.0.1:6881".parse().unwrap(),
            },
            NodeInfo {
                id: Id([8; 20]),
                addr: "[fd00::7]:6882".parse().unwrap(),
            },
        ];
        let b = store(Id([7; 20]), &nodes);
        assert_eq!(load(&b).unwrap(), (Id([7; 20]), nodes.to_vec()));
        assert!(load(&b[..b.len() - 1]).is_none());
        let mut odd = b.clone();
        odd[28] = 200; // a length past the end
        assert!(load(&odd).is_none());
        assert!(load(b"BTMDHT3\n").is_none());
        // The first format still reads.
        let mut b = MAGIC1.to_vec();
        b.extend_from_slice(&[7; 20]);
        b.extend_from_slice(&[9; 20]);
        b.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1]);
        let (id, nodes) = load(&b).unwrap();
        assert_eq!(id, Id([7; 20]));
        assert_eq!(nodes[0].addr, "10.0.0.1:6881".parse().unwrap());
        assert!(load(&b[..b.len() - 1]).is_none());
        assert!(load(b"BTMDHT2\n").is_none());
        assert!(load(&[]).is_none());
    }
}
