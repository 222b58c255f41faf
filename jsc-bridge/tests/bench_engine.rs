//! In-process cost of the bridge per request (no sockets): `cargo test --release -p jsc-bridge
//! --test bench_engine -- --ignored --nocapture`. Prints ns per request for batches of 1 and
//! 16 requests per tick on the bench app (bench/js/marg.js).

use jsc_bridge::{Engine, Options};
use runtime::{handler::HeaderSpan, Protocol, Request, RequestId, Version};
use std::time::Instant;

fn run(e: &mut Engine, target: &str, batch: usize, rounds: usize) -> f64 {
    let head = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\n\r\n");
    let h = head.as_bytes();
    let line_end = head.find("\r\n").unwrap() as u32 + 2;
    let spans = [
        HeaderSpan {
            name: (line_end, line_end + 4),
            value: (line_end + 6, line_end + 15),
        },
        HeaderSpan {
            name: (line_end + 17, line_end + 27),
            value: (line_end + 29, line_end + 32),
        },
    ];
    let mut n = 0usize;
    let t0 = Instant::now();
    for r in 0..rounds {
        for i in 0..batch {
            let req = Request::from_parts(
                RequestId::from_parts(0, 0, (r * batch + i) as u32),
                h,
                b"GET",
                target.as_bytes(),
                Version::Http11,
                &spans,
                b"",
                "127.0.0.1:1".parse().unwrap(),
                Protocol::Http11,
                false,
            );
            e.push(&req);
        }
        e.tick(&mut |_, resp| {
            assert_eq!(resp.status, 200);
            n += 1;
        });
    }
    assert_eq!(n, batch * rounds);
    t0.elapsed().as_nanos() as f64 / n as f64
}

#[test]
#[ignore]
fn bridge_cost_per_request() {
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/js/marg.js");
    let mut e = Engine::new(&app, Options::default()).unwrap();
    for target in ["/", "/json", "/users/42?q=marg"] {
        run(&mut e, target, 16, 5000);
        // Best of five: the machine is shared and noisy.
        let one = (0..5)
            .map(|_| run(&mut e, target, 1, 20_000))
            .fold(f64::MAX, f64::min);
        let sixteen = (0..5)
            .map(|_| run(&mut e, target, 16, 2_000))
            .fold(f64::MAX, f64::min);
        eprintln!("{target:20} batch 1: {one:7.0} ns/req   batch 16: {sixteen:7.0} ns/req");
    }
}
