//! HTTP/1.1 (RFC 9112) as a sans-IO state machine: [`parse`] turns bytes
//! into request heads and de-chunked bodies, [`conn`] drives a connection
//! (keep-alive, pipelining, `100-continue`, ordering of deferred responses,
//! error responses). Neither touches a socket.

pub mod conn;
pub mod fuzz;
pub mod parse;

pub use conn::{Conn, Env, Progress};
pub use parse::{parse_head, BodyKind, ChunkedDecoder, Head, Limits, ParseError, Parsed};
