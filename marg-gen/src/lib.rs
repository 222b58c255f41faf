//! Marg's kernel toolchain.
//!
//! - [`features`]: the CPU feature model (levels `baseline`, `avx2`,
//!   `avx2_vaes`, `avx512`);
//! - [`rt`]: what kernels need at run time: metadata emitted by `marg_asm!`,
//!   CPUID-based variant selection and W^X placement of the machine code.
//!
//! With the default `frontend` feature it also holds the `marg_asm!` front
//! end shared by the proc-macro and the `marg-gen` CLI.

pub mod features;
pub mod rt;

#[cfg(feature = "frontend")]
pub mod check;
#[cfg(feature = "frontend")]
pub mod compile;
#[cfg(feature = "frontend")]
pub mod dsl;
#[cfg(feature = "frontend")]
pub mod isa;
