//! The JS bridge's cost per request without sockets: 64 requests pushed, one tick (one VM
//! entry), 64 responses taken, for the JS bench's app (bench/js/marg.js: hello text, JSON,
//! a route with a param and a query). What `bench/js.sh` measures minus the kernel's TCP.
//!
//! `cargo bench -p jsc-bridge --bench bridge`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use jsc_bridge::{Engine, Options};
use runtime::{handler::HeaderSpan, Protocol, Request, RequestId, Version};
use std::path::Path;

const BATCH: u32 = 64;

/// A request as the runtime hands it over: head bytes, method, target, one Host header.
struct Head {
    bytes: Vec<u8>,
    target: String,
    spans: Vec<HeaderSpan>,
}

fn head(target: &str) -> Head {
    let mut bytes = format!("GET {target} HTTP/1.1\r\n").into_bytes();
    let s = bytes.len() as u32;
    bytes.extend_from_slice(b"Host: 127.0.0.1:3000\r\n\r\n");
    let spans = vec![HeaderSpan {
        name: (s, s + 4),
        value: (s + 6, s + 20),
    }];
    Head {
        bytes,
        target: target.to_string(),
        spans,
    }
}

fn bench(c: &mut Criterion) {
    // MARG_BRIDGE_APP: another app with the same three routes, for experiments.
    let app = std::env::var_os("MARG_BRIDGE_APP").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/js/marg.js"),
        std::path::PathBuf::from,
    );
    let mut e = Engine::new(&app, Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let peer = "127.0.0.1:5555".parse().unwrap();
    let mut g = c.benchmark_group("bridge_64_per_tick");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    for (name, target) in [
        ("hello", "/"),
        ("json", "/json"),
        ("param", "/users/42?q=marg"),
    ] {
        let h = head(target);
        let mut seq = 0u32;
        g.bench_function(name, |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    seq = seq.wrapping_add(1);
                    let req = Request::from_parts(
                        RequestId::from_parts(0, 0, seq),
                        &h.bytes,
                        b"GET",
                        h.target.as_bytes(),
                        Version::Http11,
                        &h.spans,
                        b"",
                        peer,
                        Protocol::Http11,
                        false,
                    );
                    e.push(&req);
                }
                let mut bytes = 0;
                let mut n = 0;
                e.tick(&mut |_, resp| {
                    bytes += resp.body.len();
                    n += 1;
                });
                assert_eq!(n, BATCH);
                black_box(bytes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
