//! Rate limits as token buckets, fed by the clock the session is given (no sleeping, no
//! clock inside): a request for a block, or a block read to send, goes out only while the
//! bucket holds tokens, and costs its size. The bucket may go into debt by one block, so a
//! rate below a block a second still moves; it banks at most one second's worth, so an idle
//! spell does not turn into a burst.

use std::time::{Duration, Instant};

/// One direction's limit.
#[derive(Debug, Clone, Default)]
pub struct TokenBucket {
    /// Bytes a second; `None`: no limit.
    rate: Option<u64>,
    /// Bytes that may go now (negative: in debt).
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket of `rate` bytes a second (`None`: unlimited), full.
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            tokens: rate.map_or(0.0, |r| r as f64),
            last: None,
        }
    }

    /// The limit, bytes a second.
    pub fn rate(&self) -> Option<u64> {
        self.rate
    }

    /// Changes the limit: from none, a full second's worth; else what is banked is kept,
    /// within the new second's worth.
    pub fn set_rate(&mut self, rate: Option<u64>) {
        if rate != self.rate {
            let cap = rate.map_or(0.0, |r| r as f64);
            self.tokens = if self.rate.is_none() {
                cap
            } else {
                self.tokens.min(cap)
            };
            self.rate = rate;
        }
    }

    /// Adds what the time since the last refill earned.
    pub fn refill(&mut self, now: Instant) {
        let Some(rate) = self.rate else {
            self.last = Some(now);
            return;
        };
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * rate as f64).min(rate as f64);
        }
        self.last = Some(now);
    }

    /// When the bucket, closed now, opens again (just past the moment its debt is paid);
    /// `None` while it is open or unlimited.
    pub fn ready_at(&self) -> Option<Instant> {
        let rate = self.rate? as f64;
        if self.tokens > 0.0 {
            return None;
        }
        let wait = Duration::from_secs_f64((-self.tokens / rate).min(3600.0));
        Some(self.last? + wait + Duration::from_millis(1))
    }

    /// Whether something may go now.
    pub fn open(&self) -> bool {
        self.rate.is_none() || self.tokens > 0.0
    }

    /// `n` bytes went.
    pub fn take(&mut self, n: u64) {
        if self.rate.is_some() {
            self.tokens -= n as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends 16 KiB blocks whenever the bucket is open, refilling every `step`, for
    /// `secs` seconds; the bytes sent.
    fn run(rate: u64, step: Duration, secs: u64) -> u64 {
        let start = Instant::now();
        let mut b = TokenBucket::new(Some(rate));
        b.refill(start);
        let mut sent = 0;
        let mut t = start;
        while t < start + Duration::from_secs(secs) {
            b.refill(t);
            while b.open() {
                b.take(16_384);
                sent += 16_384;
            }
            t += step;
        }
        sent
    }

    #[test]
    fn the_rate_holds_whatever_the_refill_step_and_even_below_a_block_a_second() {
        for (rate, step) in [
            (2_000_000, Duration::from_secs(1)),
            (2_000_000, Duration::from_millis(10)),
            (100_000, Duration::from_millis(250)),
            (5_000, Duration::from_secs(1)),
        ] {
            let secs = 60;
            let sent = run(rate, step, secs) as f64;
            let want = (rate * secs) as f64;
            // One second's bank at the start and one block of debt at most.
            assert!(
                sent >= want && sent <= want + rate as f64 + 16_384.0,
                "rate {rate}, step {step:?}: {sent} bytes in {secs} s"
            );
        }
    }

    #[test]
    fn unlimited_is_always_open_and_an_idle_spell_banks_one_second_only() {
        let mut b = TokenBucket::new(None);
        b.take(1 << 40);
        assert!(b.open());
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Some(1000));
        b.refill(t0);
        b.take(1000);
        assert!(!b.open());
        b.refill(t0 + Duration::from_secs(3600));
        b.take(1000);
        assert!(!b.open(), "an hour idle banks one second");
        b.set_rate(None);
        assert!(b.open());
    }

    #[test]
    fn a_closed_bucket_says_when_it_opens_and_is_open_then() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Some(100_000));
        b.refill(t0);
        assert_eq!(b.ready_at(), None, "full");
        b.take(100_000 + 16_384);
        let at = b.ready_at().expect("in debt");
        // 16,384 bytes of debt at 100 kB/s: 164 ms.
        assert!(at > t0 + Duration::from_millis(163) && at < t0 + Duration::from_millis(166));
        b.refill(at - Duration::from_millis(2));
        assert!(!b.open());
        b.refill(at);
        assert!(b.open());
        assert_eq!(b.ready_at(), None);
        assert_eq!(TokenBucket::new(None).ready_at(), None);
    }
}
