//! The Marg server runtime: thread-per-core event loop, the sans-IO HTTP/1.1
//! state machine, the handler interface, static files and the `marg`
//! command line. The JS bridge and Rust applications plug in through
//! [`handler`].
//!
//! # Map
//!
//! | module | owns |
//! |---|---|
//! | [`handler`] | [`Request`] view, [`Response`] writer, [`Handler`] / [`HandlerFactory`], deferred completion |
//! | [`http1`] | RFC 9112 parsing ([`http1::parse`]) and the connection state machine ([`http1::conn`]), no sockets |
//! | [`server`] | [`server::Config`], start-up, the per-core workers (io_uring or epoll, timer wheel, buffer pools, eventfd mailbox), signals |
//! | [`static_files`] | `--static DIR` |
//! | [`hello`] | the built-in handler (`Hello, World!`, `/json`, test routes) |
//! | [`cli`] | `marg serve`, `marg kernels` |
//!
//! # A request's path
//!
//! A worker's loop wakes for received bytes (an io_uring receive completion,
//! or a readable socket under epoll), copies or reads them into a 4 KiB
//! input buffer from its pool; [`http1::Conn`] parses
//! every complete request in the buffer with the scanning kernels (the
//! request view holds slices of the buffer), calls the handler, which
//! serialises its response into the connection's output buffer, and the
//! worker writes all responses of the batch with one send (queued to the
//! ring, or a `send` call). When nothing is
//! left buffered both buffers go back to the pool, so an idle keep-alive
//! connection holds no buffer. No lock is taken and nothing is allocated on
//! this path (`tests/no_alloc.rs` checks that with a counting allocator).
//!
//! # Using it from Rust
//!
//! ```no_run
//! use std::sync::Arc;
//! use runtime::{Handled, Handler, HandlerFactory, Request, Response};
//!
//! struct Hi;
//! impl Handler for Hi {
//!     fn handle(&mut self, _req: &Request<'_>, res: &mut Response<'_>) -> Handled {
//!         res.header(b"Content-Type", b"text/plain");
//!         res.send(b"hi");
//!         Handled::Done
//!     }
//! }
//!
//! let factory = |_worker: usize| -> Result<Box<dyn Handler>, String> { Ok(Box::new(Hi)) };
//! let cfg = runtime::server::Config { port: Some(8080), ..Default::default() };
//! runtime::server::run(cfg, Arc::new(factory), |s| println!("on {}", s.local_addr())).unwrap();
//! ```
#![warn(missing_docs)]

pub mod cli;
pub mod handler;
pub mod hello;
pub mod http1;
pub mod server;
pub mod static_files;

pub use handler::{
    CompletionSink, Handled, Handler, HandlerFactory, Method, OwnedResponse, Protocol, Request,
    RequestId, Response, ResponseRef, Version,
};
