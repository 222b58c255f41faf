//! Load-robust timing of the 741-byte parse: the minimum over many short
//! batches (on a busy machine the minimum is the undisturbed cost).
//!
//! `cargo run --release -p runtime --example parse_min`

use std::hint::black_box;
use std::time::Instant;

use runtime::handler::HeaderSpan;
use runtime::http1::{parse_head, Limits, Parsed};

#[path = "../benches/support/request741.rs"]
mod request741;

fn min_ns(mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..300 {
        let t = Instant::now();
        for _ in 0..1000 {
            f();
        }
        best = best.min(t.elapsed().as_nanos() as f64 / 1000.0);
    }
    best
}

fn main() {
    let _ = kernels::init();
    let req = request741::browser_request();
    let limits = Limits::default();
    let mut spans = [HeaderSpan::default(); 100];
    let marg = min_ns(|| {
        if let Ok(Parsed::Complete(h)) = parse_head(black_box(&req), &limits, &mut spans) {
            black_box(h.headers);
        }
    });
    let hp = min_ns(|| {
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut r = httparse::Request::new(&mut headers);
        black_box(r.parse(black_box(&req)).ok());
    });
    println!(
        "741-byte request: marg {marg:.1} ns, httparse {hp:.1} ns (min over 300 batches of 1000)"
    );
}
