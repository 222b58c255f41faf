//! Arbitrary bytes, arbitrary split points: the HTTP/1.1 connection must not
//! panic, must keep its buffers within the limits, and must produce the same
//! output however the input is split. The first byte picks how many split
//! points follow (each two bytes, big-endian, taken modulo the input length).
#![no_main]

use libfuzzer_sys::fuzz_target;
use runtime::http1::fuzz::check_split_invariance;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 16).min(rest.len() / 2);
    let (cut_bytes, input) = rest.split_at(n * 2);
    let cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| (usize::from(c[0]) << 8 | usize::from(c[1])) % (input.len() + 1))
        .collect();
    check_split_invariance(input, &cuts);
});
