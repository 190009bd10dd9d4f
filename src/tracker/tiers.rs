//! BEP 12 tiers: trackers shuffled within each tier, tried in order, and a tracker that
//! answered moved to the front of its tier.

/// A tracker's place: tier, then position in the tier.
pub type Slot = (usize, usize);

/// The torrent's trackers by tier.
#[derive(Debug, Clone)]
pub struct Tiers {
    tiers: Vec<Vec<String>>,
}

impl Tiers {
    /// Shuffles each tier with `rand` (a source of random numbers).
    pub fn new(mut tiers: Vec<Vec<String>>, mut rand: impl FnMut() -> u64) -> Self {
        tiers.retain(|t| !t.is_empty());
        for tier in &mut tiers {
            for i in (1..tier.len()).rev() {
                tier.swap(i, (rand() % (i as u64 + 1)) as usize);
            }
        }
        Self { tiers }
    }

    /// Whether there are no trackers at all.
    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Every tracker in the order BEP 12 tries them.
    pub fn order(&self) -> impl Iterator<Item = (Slot, &str)> {
        self.tiers.iter().enumerate().flat_map(|(t, tier)| {
            tier.iter()
                .enumerate()
                .map(move |(i, u)| ((t, i), u.as_str()))
        })
    }

    /// The URL at `slot`.
    pub fn url(&self, slot: Slot) -> Option<&str> {
        self.tiers.get(slot.0)?.get(slot.1).map(String::as_str)
    }

    /// Moves the tracker at `slot` to the front of its tier; returns its new slot.
    pub fn promote(&mut self, slot: Slot) -> Slot {
        if let Some(tier) = self.tiers.get_mut(slot.0) {
            if slot.1 < tier.len() {
                let url = tier.remove(slot.1);
                tier.insert(0, url);
            }
        }
        (slot.0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(t: &Tiers) -> Vec<&str> {
        t.order().map(|(_, u)| u).collect()
    }

    #[test]
    fn shuffles_within_tiers_only_and_promotes() {
        let tiers = vec![
            vec!["a1".to_string(), "a2".into(), "a3".into()],
            vec![],
            vec!["b1".to_string()],
        ];
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50u64 {
            let mut x = seed * 0x9E37_79B9 + 1;
            let t = Tiers::new(tiers.clone(), || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            });
            let order = urls(&t);
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], "b1", "tier 2 comes after all of tier 1");
            seen.insert(order[..3].join(","));
        }
        assert!(seen.len() > 3, "tier 1 gets shuffled: {seen:?}");

        let mut t = Tiers::new(tiers, || 0);
        let slot = t.order().find(|(_, u)| *u == "a3").unwrap().0;
        assert_eq!(t.promote(slot), (0, 0));
        assert_eq!(urls(&t)[0], "a3");
        assert_eq!(t.url((1, 0)), Some("b1"));
        assert!(Tiers::new(vec![vec![]], || 0).is_empty());
    }
}
