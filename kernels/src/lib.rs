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

pub mod http1;

pub use marg_gen::features::{level, Feature, FeatureSet};
pub use marg_gen::rt::{KernelMeta, SelectError, VariantMeta};

/// Every kernel in this crate, for `marg-gen`, `marg-verify` and `marg kernels`.
pub fn registry() -> &'static [&'static KernelMeta] {
    http1::REGISTRY
}

/// Selects and places every kernel now; returns `(kernel, variant)` pairs.
pub fn init() -> Result<Vec<(&'static str, &'static str)>, SelectError> {
    http1::init()
}
