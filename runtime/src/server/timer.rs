//! A hashed timer wheel for connection deadlines.
//!
//! Entries are `u64` tokens; cancellation is lazy: the owner re-checks its
//! real deadline when a token fires and re-inserts it if the deadline moved
//! later. That keeps the keep-alive path at one field store per request (the
//! idle deadline moves later, no wheel operation) and makes every wheel
//! operation O(1) with no allocation once the slot vectors have warmed up.

use std::time::{Duration, Instant};

/// The wheel: `slots.len()` buckets of `tick` each.
#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<u64>>,
    tick: Duration,
    origin: Instant,
    /// Every bucket up to and including this tick has fired.
    current: u64,
    len: usize,
    /// No bucket before this tick holds a token (a lower bound kept on
    /// insert and recomputed only when it is passed, so that
    /// [`TimerWheel::next_timeout`] is O(1) on the request path).
    earliest: u64,
}

impl TimerWheel {
    /// A wheel of `slots` buckets of `tick` (the horizon is their product;
    /// later deadlines are parked at the horizon and re-inserted).
    pub fn new(now: Instant, tick: Duration, slots: usize) -> TimerWheel {
        TimerWheel {
            slots: (0..slots.max(2)).map(|_| Vec::new()).collect(),
            tick,
            origin: now,
            current: 0,
            earliest: u64::MAX,
            len: 0,
        }
    }

    fn tick_of(&self, t: Instant) -> u64 {
        (t.saturating_duration_since(self.origin).as_nanos() / self.tick.as_nanos().max(1)) as u64
    }

    /// Schedules `token` to fire at (or within one tick after) `deadline`.
    pub fn insert(&mut self, deadline: Instant, token: u64) {
        let n = self.slots.len() as u64;
        // Round up so a token never fires early.
        let mut t = self.tick_of(deadline) + 1;
        t = t.clamp(self.current + 1, self.current + n - 1);
        self.slots[(t % n) as usize].push(token);
        self.len += 1;
        self.earliest = self.earliest.min(t);
    }

    /// Moves every token due at `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<u64>) {
        let now_tick = self.tick_of(now);
        let n = self.slots.len() as u64;
        if now_tick > self.current + n {
            self.current = now_tick - n;
        }
        while self.current < now_tick {
            self.current += 1;
            let slot = &mut self.slots[(self.current % n) as usize];
            self.len -= slot.len();
            out.append(slot);
        }
        if self.len == 0 {
            self.earliest = u64::MAX;
        } else if self.earliest <= self.current {
            self.earliest = (self.current + 1..=self.current + n)
                .find(|t| !self.slots[(t % n) as usize].is_empty())
                .unwrap_or(u64::MAX);
        }
    }

    /// Time until the next non-empty bucket, if any.
    pub fn next_timeout(&self, now: Instant) -> Option<Duration> {
        if self.len == 0 || self.earliest == u64::MAX {
            return None;
        }
        let nanos = (self.tick.as_nanos() as u64).saturating_mul(self.earliest);
        let at = self.origin + Duration::from_nanos(nanos);
        Some(at.saturating_duration_since(now))
    }

    /// Number of tokens in the wheel.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the wheel is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_order_and_never_early() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0, Duration::from_millis(10), 64);
        w.insert(t0 + Duration::from_millis(25), 1);
        w.insert(t0 + Duration::from_millis(5), 2);
        w.insert(t0 + Duration::from_secs(100), 3);
        let mut out = Vec::new();
        w.expire(t0 + Duration::from_millis(9), &mut out);
        assert!(out.is_empty());
        w.expire(t0 + Duration::from_millis(20), &mut out);
        assert_eq!(out, vec![2]);
        out.clear();
        w.expire(t0 + Duration::from_millis(40), &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        assert!(
            w.next_timeout(t0 + Duration::from_millis(40)).unwrap() <= Duration::from_millis(640)
        );
        w.expire(t0 + Duration::from_secs(10), &mut out);
        assert_eq!(out, vec![3]); // parked at the horizon, the owner re-inserts
        assert!(w.is_empty());
    }
}
