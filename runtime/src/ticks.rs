//! Cheap timestamps for the per-transaction paths: the processor's time-stamp counter.
//!
//! A short transaction read the clock (`clock_gettime` through the vDSO, then `Instant`
//! arithmetic) at its begin and twice per validation: about 9% of microtq's samples on two
//! segments. `rdtsc` is one instruction. Its ticks order events (transaction ages, which only
//! need a total order: ties and a skew between cores change who wins a conflict, never
//! correctness) and measure durations (converted to nanoseconds by the rate measured since
//! the runtime started, when statistics are read).

use std::time::Instant;

/// The time-stamp counter now.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: `rdtsc` has no preconditions (x86-64 only, as the whole runtime).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Converts tick counts to nanoseconds.
pub(crate) struct TickRate {
    start: Instant,
    start_ticks: u64,
}

impl TickRate {
    /// Starts measuring the rate now.
    pub(crate) fn new() -> TickRate {
        TickRate {
            start: Instant::now(),
            start_ticks: now(),
        }
    }

    /// `ticks` in nanoseconds, at the rate seen since [`TickRate::new`] (0 when no tick or no
    /// nanosecond has passed yet).
    pub(crate) fn to_ns(&self, ticks: u64) -> u64 {
        let ns = self.start.elapsed().as_nanos();
        let dt = now().wrapping_sub(self.start_ticks) as u128;
        if dt == 0 || ns == 0 {
            return 0;
        }
        (ticks as u128 * ns / dt).min(u64::MAX as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ticks advance, and a measured sleep converts to about its length in nanoseconds.
    #[test]
    fn ticks_convert_to_about_the_time_slept() {
        let rate = TickRate::new();
        let t0 = now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let ns = rate.to_ns(now() - t0);
        assert!((15_000_000..200_000_000).contains(&ns), "{ns} ns");
    }
}
