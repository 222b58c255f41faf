//! Helpers shared by the AEAD test files.

/// Bytes from hex, ignoring whitespace.
pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// SplitMix64: deterministic test inputs.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// A random array.
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        core::array::from_fn(|_| self.next() as u8)
    }
}

/// Lengths `chunk·k + d` for every chunk size, k in 1..=3 and each delta,
/// plus 0..=small: every tail and chunk boundary of the kernels.
pub fn edge_lengths(small: usize, chunks: &[usize], deltas: &[isize]) -> Vec<usize> {
    let mut v: Vec<usize> = (0..=small).collect();
    for &chunk in chunks {
        for k in 1..=3 {
            for &d in deltas {
                v.push(((chunk * k) as isize + d) as usize);
            }
        }
    }
    v.sort_unstable();
    v.dedup();
    v
}
