//! The runtime from Rust, without the JS bridge: `Hello, World!` on port
//! 3000 (or `$PORT`) with the built-in handler, one worker per core.
//!
//! `cargo run --release -p runtime --example hello_server`

use std::sync::Arc;

use runtime::handler::Handler;
use runtime::hello::HelloHandler;
use runtime::server::{run, Config};

fn main() {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let workers = std::env::var("WORKERS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(Config::default().workers);
    let cfg = Config {
        host: [127, 0, 0, 1].into(),
        port: Some(port),
        workers,
        ..Config::default()
    };
    let factory = |_worker: usize| -> Result<Box<dyn Handler>, String> {
        Ok(Box::new(HelloHandler::new(false)))
    };
    if let Err(e) = run(cfg, Arc::new(factory), |s| {
        println!("listening on http://{}", s.local_addr())
    }) {
        eprintln!("hello_server: {e}");
        std::process::exit(1);
    }
}
