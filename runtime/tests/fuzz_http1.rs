//! Fuzzing the sans-IO HTTP/1.1 connection in `cargo test`: seeded random
//! inputs (mutated valid requests, pipelines, chunked bodies, garbage), fed
//! whole and at random split points. Checks: no panic, bounded buffers, and
//! the same output however the bytes are split (after removing interim
//! `100 Continue` responses, which depend on timing by design). The harness
//! is `runtime::http1::fuzz`; `runtime/fuzz` has the cargo-fuzz target.
//!
//! `MARG_FUZZ_ITERS` (default 4000) and `MARG_FUZZ_SEED` control the run.

use runtime::http1::fuzz::{check_split_invariance, run};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const SEEDS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /defer HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HEAD /x?y=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nxyz",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET http://h/p HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
];

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b":",
    b"\0",
    b"0\r\n\r\n",
    b"Content-Length: 9\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: b\r\n",
    b"\x7f",
    b"\xff",
    b";",
    b"\t",
];

fn gen_input(rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..1 + rng.below(4) {
        v.extend_from_slice(SEEDS[rng.below(SEEDS.len())]);
    }
    let mutations = rng.below(6);
    for _ in 0..mutations {
        if v.is_empty() {
            break;
        }
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                if at < v.len() {
                    v.remove(at);
                }
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                v.splice(at..at, t.iter().copied());
            }
            3 => v.truncate(at),
            4 => {
                let n = rng.below(700);
                let b = if rng.below(2) == 0 {
                    b'a'
                } else {
                    rng.next() as u8
                };
                v.splice(at..at, std::iter::repeat_n(b, n));
            }
            _ => {
                let n = rng.below(32);
                for _ in 0..n {
                    v.insert(at.min(v.len()), rng.next() as u8);
                }
            }
        }
    }
    v
}

#[test]
fn split_invariance_and_no_panics() {
    let iters: usize = std::env::var("MARG_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    let seed: u64 = std::env::var("MARG_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6d61_7267);
    let mut rng = Rng(seed | 1);
    let start = std::time::Instant::now();
    for _ in 0..iters {
        if start.elapsed() > std::time::Duration::from_secs(20) {
            break;
        }
        let input = gen_input(&mut rng);
        for _ in 0..3 {
            // Random split points, including 1-byte pieces.
            let mut cuts: Vec<usize> = (0..rng.below(8))
                .map(|_| rng.below(input.len() + 1))
                .collect();
            if rng.below(4) == 0 {
                cuts = (0..=input.len()).collect();
            }
            check_split_invariance(&input, &cuts);
        }
    }
}

#[test]
fn pure_garbage_never_panics() {
    let mut rng = Rng(12345);
    for _ in 0..2000 {
        let n = rng.below(2000);
        let v: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let _ = run(&[&v]);
    }
}
