//! `marg_asm!`: x86-64 kernels in Intel syntax, encoded at compile time.
//!
//! The macro is a thin shell over `marg_gen::compile`: it parses the block,
//! expands every variant (width `W`, `for` unrolling, DSL macros), matches
//! and encodes each instruction with iced-x86, runs the static checks of
//! `marg_gen::check` on the bytes, and emits one
//! `static NAME: marg_gen::rt::Kernel<unsafe extern "sysv64" fn(..) -> ..>`
//! per kernel. Errors are `compile_error!`s at the offending token. The
//! syntax is documented in `book/src/dsl.md`.

use proc_macro::TokenStream;

/// Declares one or more assembly kernels; see `book/src/dsl.md`.
///
/// ```ignore
/// marg_asm! {
///     /// Returns `a + b`.
///     pub fn add(a: u64, b: u64) -> u64 {
///         variants { baseline(level = baseline) }
///         lea rax, [a + b]
///         ret
///     }
/// }
/// // ADD.get()(40, 2) == 42
/// ```
#[proc_macro]
pub fn marg_asm(input: TokenStream) -> TokenStream {
    marg_gen::compile::expand_macro(input.into()).into()
}
