//! Marg as a library: what a Rust program embeds.
//!
//! - [`runtime`]: the thread-per-core server, HTTP/1.1 and the handler
//!   interface (the `marg` binary is `runtime::cli::main`);
//! - [`tls`]: the rustls crypto provider whose record protection runs on
//!   Marg's asm AEAD kernels.

pub use runtime;

/// TLS on Marg's kernels: [`provider()`](tls::provider) is a rustls
/// `CryptoProvider` whose TLS 1.3 cipher suites (AES-128-GCM, AES-256-GCM,
/// ChaCha20-Poly1305) and QUIC packet/header protection use the asm AEAD
/// kernels selected for this CPU; key exchange, signatures and randomness
/// come from ring's provider.
///
/// ```
/// let provider = marg::tls::provider();
/// assert!(!provider.cipher_suites.is_empty());
/// ```
pub mod tls {
    pub use marg_crypto::{cipher_suites, provider};
}
