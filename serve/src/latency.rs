//! Request latencies as a histogram of atomic counters: recorded by the I/O thread without
//! a lock, read for `--stats`' percentiles. Buckets are a power of two split in 16, so a
//! percentile is exact to within 1/16 (6%) of its value.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: u32 = 16;
/// Powers of two covered, in microseconds: up to 2^40 µs (about 12 days).
const POWERS: u32 = 40;

/// A histogram of durations (microsecond resolution) that many threads may add to at once.
pub struct Latencies {
    buckets: Box<[AtomicU64]>,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            buckets: (0..(POWERS + 1) * SUB).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of `us` microseconds.
fn bucket(us: u64) -> usize {
    if us < u64::from(SUB) {
        return us as usize;
    }
    let e = 63 - us.leading_zeros(); // 2^e <= us, e >= 4
    let sub = (us >> (e - 4)) & u64::from(SUB - 1);
    (((e - 3) * SUB) as usize + sub as usize).min(((POWERS + 1) * SUB) as usize - 1)
}

/// The largest duration in bucket `i`, in microseconds.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    let sub = u64::from(SUB);
    if i < sub {
        return i;
    }
    let e = i / sub + 3;
    let s = i % sub;
    ((sub + s + 1) << (e - 4)) - 1
}

impl Latencies {
    /// Counts one request that took `d`.
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket(us)].fetch_add(1, Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    /// The `p`-th percentile (0 < p <= 100): a duration at least as long as `p`% of the
    /// recorded ones (within 1/16); None when nothing was recorded.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0 * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Duration::from_micros(upper(i)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values() {
        for us in [
            0,
            1,
            15,
            16,
            17,
            31,
            32,
            33,
            100,
            1000,
            12_345,
            1 << 30,
            u64::MAX,
        ] {
            let i = bucket(us);
            assert!(upper(i) >= us.min(upper(i)), "{us}");
            if us < 1 << 40 {
                assert!(upper(i) >= us, "{us} above bucket {i} ({})", upper(i));
                assert!(i == 0 || upper(i - 1) < us, "{us} belongs below bucket {i}");
                assert!(upper(i) - us <= us / 16, "{us}: bucket too wide");
            }
        }
    }

    #[test]
    fn percentiles() {
        let l = Latencies::default();
        assert_eq!(l.percentile(50.0), None);
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.count(), 100);
        let p50 = l.percentile(50.0).unwrap().as_micros() as f64;
        let p99 = l.percentile(99.0).unwrap().as_micros() as f64;
        assert!((50_000.0..=50_000.0 * 17.0 / 16.0).contains(&p50), "{p50}");
        assert!((99_000.0..=99_000.0 * 17.0 / 16.0).contains(&p99), "{p99}");
    }
}
