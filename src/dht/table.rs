//! The routing table (BEP 5): buckets of at most [`K`] nodes, each holding the nodes whose
//! ids share a given number of leading bits with ours; the last bucket, the one our own id
//! falls in, splits when it is full, so the table knows many nodes near us and few far away.
//!
//! Only nodes that answered one of our queries are added (a query from a stranger proves
//! nothing about its address); a public IP address has at most one entry (a host running
//! many nodes cannot fill our buckets); loopback and private addresses, a LAN's and the
//! tests', are exempt. A node is good if it answered in the last 15 minutes, questionable
//! after that, and bad after two queries in a row went unanswered; a full bucket takes a
//! newcomer in place of a bad node, and otherwise asks the caller to ping its most
//! questionable one first.

use super::krpc::{Id, NodeInfo};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Nodes per bucket.
pub const K: usize = 8;

/// A node that answered within this is good; a bucket untouched this long is refreshed.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);

/// Unanswered queries in a row that make a node bad.
pub const BAD_AFTER: u32 = 2;

/// One node in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Id and address.
    pub info: NodeInfo,
    /// When it last answered us.
    pub replied: Instant,
    /// Queries to it that went unanswered since.
    pub failures: u32,
}

impl Entry {
    /// Answered in the last 15 minutes, and no query failed since.
    pub fn is_good(&self, now: Instant) -> bool {
        self.failures == 0 && now.duration_since(self.replied) < GOOD_FOR
    }

    /// Failed [`BAD_AFTER`] queries in a row.
    pub fn is_bad(&self) -> bool {
        self.failures >= BAD_AFTER
    }
}

#[derive(Debug, Clone)]
struct Bucket {
    nodes: Vec<Entry>,
    /// When a node in it last answered or was added.
    changed: Instant,
}

/// What [`Table::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new entry (perhaps in place of a bad node).
    Added,
    /// It was there: marked as having answered now.
    Refreshed,
    /// The bucket is full of nodes that are not bad: ping this questionable one, and try
    /// again once it has failed.
    PingFirst(NodeInfo),
    /// Full of good nodes, our own id, or another entry has its public IP: not added.
    Rejected,
}

/// The routing table of one node.
#[derive(Debug, Clone)]
pub struct Table {
    own: Id,
    buckets: Vec<Bucket>,
}

/// Addresses that may hold several entries: loopback, private and link-local ones.
fn is_local(ip: IpAddr) -> bool {
    crate::util::on_local_network(ip)
}

impl Table {
    /// An empty table around `own`.
    pub fn new(own: Id, now: Instant) -> Self {
        Self {
            own,
            buckets: vec![Bucket {
                nodes: Vec::new(),
                changed: now,
            }],
        }
    }

    /// Our id.
    pub fn own(&self) -> Id {
        self.own
    }

    fn index(&self, id: &Id) -> usize {
        (self.own.common_prefix(id) as usize).min(self.buckets.len() - 1)
    }

    /// Nodes in the table.
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether the table has no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Buckets so far.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Every entry.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    /// The entry of `id`, if any.
    pub fn get(&self, id: &Id) -> Option<&Entry> {
        self.buckets[self.index(id)]
            .nodes
            .iter()
            .find(|e| e.info.id == *id)
    }

    /// `info` answered one of our queries at `now`.
    pub fn insert(&mut self, info: NodeInfo, now: Instant) -> Inserted {
        if info.id == self.own || info.addr.port() == 0 {
            return Inserted::Rejected;
        }
        loop {
            let i = self.index(&info.id);
            let last = i == self.buckets.len() - 1;
            let b = &mut self.buckets[i];
            if let Some(e) = b.nodes.iter_mut().find(|e| e.info.id == info.id) {
                if e.info.addr != info.addr {
                    // Same id, another address: keep the one we know until it goes bad.
                    if !e.is_bad() {
                        return Inserted::Rejected;
                    }
                    e.info.addr = info.addr;
                }
                e.replied = now;
                e.failures = 0;
                b.changed = now;
                return Inserted::Refreshed;
            }
            if !is_local(info.addr.ip()) && self.has_ip(info.addr.ip()) {
                return Inserted::Rejected;
            }
            let b = &mut self.buckets[i];
            let entry = Entry {
                info,
                replied: now,
                failures: 0,
            };
            if b.nodes.len() < K {
                b.nodes.push(entry);
                b.changed = now;
                return Inserted::Added;
            }
            if let Some(bad) = b.nodes.iter_mut().find(|e| e.is_bad()) {
                *bad = entry;
                b.changed = now;
                return Inserted::Added;
            }
            if last && self.buckets.len() < 160 {
                self.split();
                continue;
            }
            let b = &self.buckets[i];
            return match b
                .nodes
                .iter()
                .filter(|e| !e.is_good(now))
                .min_by_key(|e| e.replied)
            {
                Some(q) => Inserted::PingFirst(q.info),
                None => Inserted::Rejected,
            };
        }
    }

    /// Puts `e` in the table (rebuilt around a new id) with its record, if there is room.
    pub fn keep(&mut self, e: &Entry) {
        if let Inserted::Added = self.insert(e.info, e.replied) {
            let i = self.index(&e.info.id);
            if let Some(x) = self.buckets[i]
                .nodes
                .iter_mut()
                .find(|x| x.info.id == e.info.id)
            {
                x.failures = e.failures;
            }
        }
    }

    /// Whether a node `id` that answers would find room at once (a free place, a bad node
    /// to replace, or a split to come), without evicting anyone good.
    pub fn has_room_for(&self, id: &Id) -> bool {
        if *id == self.own || self.get(id).is_some() {
            return false;
        }
        let i = self.index(id);
        let b = &self.buckets[i];
        b.nodes.len() < K
            || b.nodes.iter().any(Entry::is_bad)
            || (i == self.buckets.len() - 1 && self.buckets.len() < 160)
    }

    fn has_ip(&self, ip: IpAddr) -> bool {
        self.entries().any(|e| e.info.addr.ip() == ip)
    }

    /// The last bucket becomes two: those that share one more bit with us move on.
    fn split(&mut self) {
        let depth = self.buckets.len() as u32;
        let own = self.own;
        let last = self.buckets.last_mut().expect("at least one bucket");
        let changed = last.changed;
        let (near, far): (Vec<Entry>, Vec<Entry>) = last
            .nodes
            .drain(..)
            .partition(|e| own.common_prefix(&e.info.id) >= depth);
        last.nodes = far;
        self.buckets.push(Bucket {
            nodes: near,
            changed,
        });
    }

    /// A query to the node at `addr` went unanswered.
    pub fn failed(&mut self, id: &Id, addr: SocketAddr) {
        let i = self.index(id);
        if let Some(e) = self.buckets[i]
            .nodes
            .iter_mut()
            .find(|e| e.info.id == *id && e.info.addr == addr)
        {
            e.failures += 1;
        }
    }

    /// The `n` entries closest to `target`, good ones and questionable ones (not bad), the
    /// closest first.
    pub fn closest(&self, target: &Id, n: usize) -> Vec<NodeInfo> {
        let mut all: Vec<NodeInfo> = self
            .entries()
            .filter(|e| !e.is_bad())
            .map(|e| e.info)
            .collect();
        all.sort_by_key(|i| i.id.distance(target));
        all.truncate(n);
        all
    }

    /// A random id in every bucket's range but our own's: looked up once the node has
    /// joined, they fill the far buckets that a lookup of our own id passes by.
    pub fn every_bucket(&self, mut random: impl FnMut() -> [u8; 20]) -> Vec<Id> {
        let count = self.buckets.len();
        (0..count.saturating_sub(1))
            .map(|i| id_in_bucket(&self.own, i, false, random()))
            .collect()
    }

    /// For each bucket nobody answered in for [`GOOD_FOR`]: a random id in its range, to
    /// look up (BEP 5's refresh). `random` gives 20 random bytes.
    pub fn stale(&mut self, now: Instant, mut random: impl FnMut() -> [u8; 20]) -> Vec<Id> {
        let count = self.buckets.len();
        let own = self.own;
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if now.duration_since(b.changed) < GOOD_FOR {
                continue;
            }
            b.changed = now;
            out.push(id_in_bucket(&own, i, i == count - 1, random()));
        }
        out
    }
}

/// A random id that shares exactly `depth` leading bits with `own` (at least `depth` for
/// the last bucket).
fn id_in_bucket(own: &Id, depth: usize, last: bool, mut random: [u8; 20]) -> Id {
    for bit in 0..depth.min(160) {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        random[byte] = (random[byte] & !mask) | (own.0[byte] & mask);
    }
    if !last && depth < 160 {
        let (byte, mask) = (depth / 8, 0x80u8 >> (depth % 8));
        random[byte] = (random[byte] & !mask) | (!own.0[byte] & mask);
    }
    Id(random)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: u8, ip: [u8; 4]) -> NodeInfo {
        let mut id = [0x11; 20];
        id[0] = first;
        NodeInfo {
            id: Id(id),
            addr: SocketAddr::from((ip, 6881)),
        }
    }

    fn id_with(bits: &[u8]) -> Id {
        let mut id = [0u8; 20];
        id[..bits.len()].copy_from_slice(bits);
        Id(id)
    }

    #[test]
    fn the_bucket_of_our_own_id_splits_and_far_buckets_stay_at_k() {
        let now = Instant::now();
        let mut t = Table::new(Id([0; 20]), now);
        // 20 nodes far away (first bit 1): one bucket of K, the rest need a ping.
        for i in 0..20u8 {
            let r = t.insert(node(0x80 | i, [10, 0, 0, i]), now);
            if i < K as u8 {
                assert_eq!(r, Inserted::Added);
            } else {
                assert!(
                    matches!(r, Inserted::Rejected | Inserted::PingFirst(_)),
                    "{r:?}"
                );
            }
        }
        // Nodes near us go to new buckets, split off as they fill.
        for i in 0..40u8 {
            let mut id = [0u8; 20];
            id[1] = i + 1;
            id[19] = i;
            let info = NodeInfo {
                id: Id(id),
                addr: SocketAddr::from(([10, 0, 1, i], 6881)),
            };
            t.insert(info, now);
        }
        assert!(t.buckets() > 2, "split: {} buckets", t.buckets());
        assert!(t.buckets.iter().all(|b| b.nodes.len() <= K));
        assert_eq!(
            t.buckets[0].nodes.len(),
            K,
            "the far half keeps K nodes and no more"
        );
    }

    #[test]
    fn a_full_bucket_takes_a_newcomer_in_place_of_a_bad_node_or_asks_for_a_ping() {
        let t0 = Instant::now();
        let mut t = Table::new(Id([0; 20]), t0);
        // Fill the far bucket and keep the near one from absorbing by splitting once.
        for i in 0..K as u8 {
            t.insert(node(0x80 | i, [10, 0, 0, i]), t0);
        }
        t.insert(node(0x01, [10, 0, 2, 1]), t0);
        assert!(t.buckets() >= 2);
        let newcomer = node(0xf0, [10, 0, 0, 99]);
        assert_eq!(t.insert(newcomer, t0), Inserted::Rejected, "all good");
        let later = t0 + GOOD_FOR;
        match t.insert(newcomer, later) {
            Inserted::PingFirst(q) => assert_eq!(q.id.0[0] & 0x80, 0x80),
            other => panic!("{other:?}"),
        }
        let victim = node(0x83, [10, 0, 0, 3]);
        t.failed(&victim.id, victim.addr);
        t.failed(&victim.id, victim.addr);
        assert_eq!(t.insert(newcomer, later), Inserted::Added);
        assert!(t.get(&victim.id).is_none());
        assert!(t.get(&newcomer.id).is_some());
    }

    #[test]
    fn one_entry_per_public_ip_but_many_on_loopback_and_private_networks() {
        let now = Instant::now();
        let mut t = Table::new(Id([0; 20]), now);
        assert_eq!(t.insert(node(0x81, [8, 8, 8, 8]), now), Inserted::Added);
        assert_eq!(t.insert(node(0x82, [8, 8, 8, 8]), now), Inserted::Rejected);
        assert_eq!(t.insert(node(0x83, [127, 0, 0, 1]), now), Inserted::Added);
        assert_eq!(t.insert(node(0x84, [127, 0, 0, 1]), now), Inserted::Added);
        assert_eq!(t.insert(node(0x85, [192, 168, 1, 1]), now), Inserted::Added);
        assert_eq!(t.insert(node(0x86, [192, 168, 1, 1]), now), Inserted::Added);
    }

    #[test]
    fn our_own_id_and_port_zero_are_refused_and_a_known_id_is_refreshed() {
        let now = Instant::now();
        let mut t = Table::new(Id([7; 20]), now);
        let me = NodeInfo {
            id: Id([7; 20]),
            addr: "10.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(t.insert(me, now), Inserted::Rejected);
        let n = node(0x90, [10, 0, 0, 1]);
        assert_eq!(
            t.insert(
                NodeInfo {
                    addr: "10.0.0.1:0".parse().unwrap(),
                    ..n
                },
                now
            ),
            Inserted::Rejected
        );
        assert_eq!(t.insert(n, now), Inserted::Added);
        t.failed(&n.id, n.addr);
        assert!(!t.get(&n.id).unwrap().is_good(now));
        assert_eq!(t.insert(n, now), Inserted::Refreshed);
        assert!(t.get(&n.id).unwrap().is_good(now));
        let moved = NodeInfo {
            addr: "10.0.0.2:1".parse().unwrap(),
            ..n
        };
        assert_eq!(
            t.insert(moved, now),
            Inserted::Rejected,
            "an id does not change address"
        );
    }

    #[test]
    fn closest_sorts_by_xor_distance_and_leaves_out_bad_nodes() {
        let now = Instant::now();
        let mut t = Table::new(Id([0xff; 20]), now);
        let ids = [&[0x10u8][..], &[0x11], &[0x30], &[0x00, 0x01]];
        for (i, bits) in ids.iter().enumerate() {
            let info = NodeInfo {
                id: id_with(bits),
                addr: SocketAddr::from(([10, 0, 0, i as u8], 1)),
            };
            t.insert(info, now);
        }
        let got: Vec<u8> = t
            .closest(&id_with(&[0x11]), 3)
            .iter()
            .map(|n| n.id.0[0])
            .collect();
        assert_eq!(got, [0x11, 0x10, 0x00]);
        let n = t.closest(&id_with(&[0x11]), 1)[0];
        t.failed(&n.id, n.addr);
        t.failed(&n.id, n.addr);
        assert_eq!(t.closest(&id_with(&[0x11]), 1)[0].id.0[0], 0x10);
    }

    #[test]
    fn stale_buckets_get_a_lookup_target_in_their_own_range() {
        let t0 = Instant::now();
        let own = Id([0x5a; 20]);
        let mut t = Table::new(own, t0);
        for i in 0..30u8 {
            let mut id = [0u8; 20];
            id[0] = i.wrapping_mul(37);
            id[19] = i;
            t.insert(
                NodeInfo {
                    id: Id(id),
                    addr: SocketAddr::from(([10, 1, 0, i], 1)),
                },
                t0,
            );
        }
        assert!(t.stale(t0, || [0; 20]).is_empty());
        let later = t0 + GOOD_FOR;
        let targets = t.stale(later, || [0xa5; 20]);
        assert_eq!(targets.len(), t.buckets());
        for (i, target) in targets.iter().enumerate() {
            let cp = own.common_prefix(target) as usize;
            if i == t.buckets() - 1 {
                assert!(cp >= i);
            } else {
                assert_eq!(cp, i, "bucket {i}");
            }
        }
        assert!(t.stale(later, || [0; 20]).is_empty(), "refreshed");
    }
}
