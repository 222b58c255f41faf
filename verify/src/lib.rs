//! Differential verification of Marg's kernels.
//!
//! For every kernel a [`Subject`] knows how to generate inputs (biased to
//! lengths of 0..3x the widest vector, with the bytes that matter to the
//! kernel over-represented), how to run the reference implementation, and
//! how to run one asm variant on a copy of the input placed against a
//! `PROT_NONE` guard page ([`guard`]). The harness runs every variant the
//! host can run and reports those it had to skip.
//!
//! Two drivers use the same subjects: proptest (in this crate's tests; run on
//! every `cargo test`) and the time-bounded `marg-verify fuzz` command, which
//! prints a seed that reproduces any mismatch.

pub mod aead;
pub mod guard;
pub mod http1;

use guard::Placement;
use marg_gen::rt::{KernelMeta, VariantMeta};
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// The widest vector any variant uses, in bytes (zmm).
pub const MAX_WIDTH: usize = 64;

/// One generated input: up to two byte strings and three byte parameters
/// (needles, say). Each subject decides what the fields mean.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Case {
    /// The main input.
    pub a: Vec<u8>,
    /// A second input (the other operand of a comparison), or empty.
    pub b: Vec<u8>,
    /// Small parameters (needle bytes).
    pub params: [u8; 3],
}

/// A kernel under differential test.
pub trait Subject: Sync {
    /// The kernel's metadata (its variants in particular).
    fn meta(&self) -> &'static KernelMeta;

    /// A proptest strategy for inputs.
    fn strategy(&self) -> BoxedStrategy<Case>;

    /// Runs `variant` on `case` (copied against a guard page as `placement`
    /// says) and the reference on `case`; describes any disagreement.
    fn check(
        &self,
        variant: &'static VariantMeta,
        case: &Case,
        placement: Placement,
    ) -> Result<(), String>;

    /// The kernel's name.
    fn name(&self) -> &'static str {
        self.meta().name
    }
}

/// Every subject, one per kernel.
pub fn subjects() -> Vec<&'static dyn Subject> {
    let mut all = http1::subjects();
    all.extend(aead::subjects());
    all
}

/// Looks a subject up by kernel name.
pub fn subject(name: &str) -> Option<&'static dyn Subject> {
    subjects().into_iter().find(|s| s.name() == name)
}

/// The variants of `meta` split into (runnable here, skipped for lack of
/// CPU features).
pub fn partition(
    meta: &'static KernelMeta,
) -> (Vec<&'static VariantMeta>, Vec<&'static VariantMeta>) {
    let host = marg_gen::features::FeatureSet::host();
    meta.variants
        .iter()
        .partition(|v| v.features.is_subset(host))
}

/// Draws the case numbered `(seed, i)` from a subject's strategy,
/// deterministically: the same pair always gives the same case.
pub fn case_from_seed(subject: &dyn Subject, seed: u64, i: u64) -> Case {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&i.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &key);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    subject
        .strategy()
        .new_tree(&mut runner)
        .expect("strategies here never reject")
        .current()
}

/// A small, fast, seedable generator for mutations (SplitMix64).
#[derive(Clone, Debug)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Mutates `case` in place: bit flips, interesting-byte stores, inserts,
/// deletes and duplication of a slice, each kept within `0..=4096` bytes.
pub fn mutate(case: &mut Case, rng: &mut SplitMix) {
    const INTERESTING: &[u8] = b"\r\n\r\n\t :;,\"\x00\x01\x1f\x7f\x80\xff0123456789aAfFzZ/?";
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let target = if !case.b.is_empty() && rng.below(3) == 0 {
            &mut case.b
        } else {
            &mut case.a
        };
        match rng.below(6) {
            0 if !target.is_empty() => {
                let i = rng.below(target.len());
                target[i] ^= 1 << rng.below(8);
            }
            1 if !target.is_empty() => {
                let i = rng.below(target.len());
                target[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if target.len() < 4096 => {
                let i = rng.below(target.len() + 1);
                target.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if !target.is_empty() => {
                let i = rng.below(target.len());
                target.remove(i);
            }
            4 if !target.is_empty() && target.len() < 2048 => {
                let i = rng.below(target.len());
                let j = i + rng.below(target.len() - i) + 1;
                let chunk = target[i..j].to_vec();
                target.splice(j..j, chunk);
            }
            _ => case.params[rng.below(3)] = INTERESTING[rng.below(INTERESTING.len())],
        }
    }
}

/// Checks one case on every runnable variant and both placements.
pub fn check_all(subject: &dyn Subject, case: &Case) -> Result<(), String> {
    let (runnable, _) = partition(subject.meta());
    guard::install_fault_reporter();
    for v in runnable {
        for p in Placement::ALL {
            guard::set_current(subject.name(), v.name, p, case.a.len());
            subject
                .check(v, case, p)
                .map_err(|e| format!("variant {} ({p:?}): {e}", v.name))?;
        }
    }
    Ok(())
}

/// Formats bytes as an escaped string for mismatch reports.
pub fn show(bytes: &[u8]) -> String {
    let s: String = bytes
        .iter()
        .flat_map(|b| core::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    format!("b\"{s}\" ({} bytes)", bytes.len())
}
