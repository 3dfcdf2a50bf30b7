//! A hasher for maps and sets keyed by addresses, object references and ids that no
//! adversary chooses: one rotate, xor and multiply per word. The standard SipHash costs
//! ~100 instructions per key, which showed in every `TransactionQueue` round (dropping one
//! root per queued call) and in minor collections of card-marked lists.

use std::hash::{BuildHasherDefault, Hasher};

/// See the module docs. Mixes whole words; bytes are taken one per word (keys here are
/// integers, so that path is not used in practice).
#[derive(Default, Clone, Copy)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        // The multiply leaves the low bits weakest, and hashbrown picks buckets with the
        // low bits: fold the high half in.
        self.0 ^ (self.0 >> 32)
    }
}

/// The `BuildHasher` of [`AddrHasher`], for `HashMap<K, V, AddrHash>`.
pub type AddrHash = BuildHasherDefault<AddrHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Aligned addresses (low bits all zero) still spread over a table's buckets: 4096
    /// objects 16 bytes apart land in more than half of 4096 low-12-bit buckets (a random
    /// function fills 63%; the address itself, unmixed, 1/16).
    #[test]
    fn aligned_addresses_spread() {
        let mut buckets = HashSet::new();
        for i in 0..4096u64 {
            let mut h = AddrHasher::default();
            h.write_u64(0x7f00_0000_0000 + i * 16);
            buckets.insert(h.finish() & 4095);
        }
        assert!(buckets.len() > 4096 / 2, "{} buckets", buckets.len());
    }
}
