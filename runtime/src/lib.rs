//! The Marg server runtime: thread-per-core event loop, the sans-IO HTTP/1.1
//! state machine, the handler interface ([`handler`]), static files and the
//! `marg` command line.
#![warn(missing_docs)]

pub mod handler;

pub use handler::{
    CompletionSink, Handled, Handler, HandlerFactory, Method, OwnedResponse, Protocol, Request,
    RequestId, Response, Version,
};
pub mod cli;
pub mod hello;
pub mod http1;
pub mod server;
pub mod static_files;
