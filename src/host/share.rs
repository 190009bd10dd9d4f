//! Splitting the process's rate limit among its torrents by need: a torrent that cannot use
//! an equal share (few or slow peers, nearly done, its own lower limit) keeps what it uses
//! and some room to grow, and the rest goes to the torrents that use all they are given
//! (max-min fairness). An equal split would leave the limit unused whenever one torrent is
//! slower than its share. What no torrent needs is handed out equally on top: a torrent
//! measured a little under its share (a tick that ran long) must not see it shrink tick
//! after tick, and the shares always add up to the limit.

/// Room to grow over what a torrent used: 10% more and this many bytes a second (a block),
/// so a torrent that starts or speeds up reaches its share's edge and, held back there,
/// gets a full share at the next tick.
const ROOM: f64 = 16_384.0;

/// A torrent counts as held back by its share when it used this much of it.
const HELD: f64 = 0.9;

/// One torrent's last second, for [`split`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Use {
    /// Bytes a second it moved.
    pub(super) used: f64,
    /// The share it had (`None`: none, it was not held back).
    pub(super) had: Option<u64>,
    /// Its own limit, if any.
    pub(super) own: Option<u64>,
}

/// Each torrent's share of `global` bytes a second: never more in total.
pub(super) fn split(global: u64, torrents: &[Use]) -> Vec<u64> {
    // What each one could use: unbounded when its share held it back.
    let demand: Vec<f64> = torrents
        .iter()
        .map(|t| {
            let held = t.had.is_none_or(|h| t.used >= HELD * h as f64);
            let d = if held {
                f64::INFINITY
            } else {
                t.used * 1.1 + ROOM
            };
            t.own.map_or(d, |o| d.min(o as f64))
        })
        .collect();
    // Water-filling: the smallest demands are met first, each at most an equal part of
    // what is left.
    let mut order: Vec<usize> = (0..torrents.len()).collect();
    order.sort_by(|&a, &b| demand[a].total_cmp(&demand[b]));
    let mut left = global;
    let mut out = vec![0; torrents.len()];
    for (k, &i) in order.iter().enumerate() {
        let fair = left / (torrents.len() - k) as u64;
        let give = if demand[i] < fair as f64 {
            demand[i] as u64
        } else {
            fair
        };
        out[i] = give;
        left = left.saturating_sub(give);
    }
    // What nobody needs, to everyone (but past a torrent's own limit, which applies after).
    let n = torrents.len().max(1) as u64;
    for (k, o) in out.iter_mut().enumerate() {
        *o += left / n + u64::from((k as u64) < left % n);
        *o = (*o).max(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(used: f64, had: Option<u64>) -> Use {
        Use {
            used,
            had,
            own: None,
        }
    }

    #[test]
    fn equal_when_everyone_is_held_back_and_by_need_otherwise() {
        let g = 2_000_000;
        assert_eq!(
            split(g, &[u(0.0, None), u(0.0, None)]),
            [1_000_000, 1_000_000]
        );
        // One seeder sends 200 kB/s whatever it is given: the other gets the rest.
        let s = split(
            g,
            &[
                u(200_000.0, Some(1_000_000)),
                u(1_000_000.0, Some(1_000_000)),
            ],
        );
        assert_eq!(s[0], 236_384);
        assert_eq!(s[1], g - 236_384);
        // Both slower than their shares: each gets what it needs, and the rest in halves.
        let s = split(
            g,
            &[u(100_000.0, Some(1_000_000)), u(300_000.0, Some(1_000_000))],
        );
        let spare = g - 126_384 - 346_384;
        assert_eq!(s, [126_384 + spare / 2, 346_384 + spare / 2]);
        // The limit in total, whatever the figures.
        for used in [0.0, 5e5, 3e6, 1e9] {
            let s = split(
                g,
                &[u(used, Some(10)), u(used / 3.0, Some(7)), u(1.0, None)],
            );
            assert_eq!(s.iter().sum::<u64>(), g, "{s:?}");
        }
    }

    #[test]
    fn a_torrent_s_own_lower_limit_frees_the_rest_for_the_others() {
        let own = Use {
            used: 0.0,
            had: None,
            own: Some(100_000),
        };
        assert_eq!(split(1_000_000, &[own, u(0.0, None)]), [100_000, 900_000]);
        // Nobody held back: the spare goes to both, and the own limit still caps (later).
        let s = split(1_000_000, &[own, u(50_000.0, Some(900_000))]);
        assert_eq!(s.iter().sum::<u64>(), 1_000_000);
    }

    #[test]
    fn a_torrent_that_speeds_up_reaches_its_fair_share() {
        // Two torrents; the first one's peers can take 800 kB/s, the second 5 MB/s; the
        // limit is 2 MB/s. Each tick, each uses what it can within what it was given.
        let cap = [800_000.0, 5_000_000.0];
        let mut had = [None, None];
        let mut used = [0.0, 0.0];
        for _ in 0..20 {
            let uses: Vec<Use> = (0..2).map(|i| u(used[i], had[i])).collect();
            let s = split(2_000_000, &uses);
            for i in 0..2 {
                had[i] = Some(s[i]);
                used[i] = (s[i] as f64).min(cap[i]);
            }
        }
        assert_eq!(used[0], 800_000.0);
        // 2 MB/s less the slow one's 800 kB/s and its room.
        assert!(used[1] >= 1_100_000.0, "{used:?}");
    }
}
