//! Marg's asm kernels.
//!
//! Each family lives in its own module (`http1`, ...) and is laid out the
//! same way: a reference implementation in plain Rust (the specification),
//! `marg_asm!` variants per CPU level, and a safe entry point with the
//! reference's signature that calls the variant selected for this CPU.
//!
//! [`init`] selects and places every kernel up front (the server calls it at
//! start-up so that a bad `MARG_KERNELS` is reported before serving);
//! otherwise each kernel is selected on its first call.

pub mod aead;
pub mod http1;

pub use marg_gen::features::{level, Feature, FeatureSet};
pub use marg_gen::rt::{KernelMeta, SelectError, VariantMeta};

/// Every kernel in this crate, for `marg-gen`, `marg-verify` and `marg kernels`.
pub fn registry() -> &'static [&'static KernelMeta] {
    static ALL: [&KernelMeta; http1::REGISTRY.len() + aead::REGISTRY.len()] =
        concat(http1::REGISTRY, aead::REGISTRY);
    &ALL
}

/// `a` followed by `b`, at compile time (`N` must be the sum of the lengths).
const fn concat<const N: usize>(
    a: &[&'static KernelMeta],
    b: &[&'static KernelMeta],
) -> [&'static KernelMeta; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < b.len() {
        out[a.len() + i] = b[i];
        i += 1;
    }
    i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    out
}

/// Selects and places every kernel now; returns `(kernel, variant)` pairs.
pub fn init() -> Result<Vec<(&'static str, &'static str)>, SelectError> {
    let mut all = http1::init()?;
    all.extend(aead::init()?);
    Ok(all)
}
