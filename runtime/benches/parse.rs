//! Parsing a 741-byte browser request (request line + 12 headers): Marg's
//! `http1::parse_head` (built on the scanning kernels) vs `httparse`.
//!
//! `cargo bench -p runtime --bench parse`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use runtime::handler::HeaderSpan;
use runtime::http1::{parse_head, Limits, Parsed};

#[path = "support/request741.rs"]
mod request741;
use request741::browser_request;

fn bench(c: &mut Criterion) {
    let req = browser_request();
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse_741B_request");
    g.throughput(Throughput::Bytes(req.len() as u64));
    let mut spans = [HeaderSpan::default(); 100];
    g.bench_function("marg", |b| {
        b.iter(|| match parse_head(black_box(&req), &limits, &mut spans) {
            Ok(Parsed::Complete(h)) => black_box(h.headers),
            _ => unreachable!(),
        })
    });
    g.bench_function("httparse", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut r = httparse::Request::new(&mut headers);
            match r.parse(black_box(&req)) {
                Ok(httparse::Status::Complete(n)) => black_box(n),
                _ => unreachable!(),
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
