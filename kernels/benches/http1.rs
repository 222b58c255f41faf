//! Criterion benchmarks of the HTTP/1.1 scanning kernels: every runnable
//! variant against the reference and the best public crate for the job.
//!
//! Run: `cargo bench -p kernels --bench http1` (or `make bench-kernels`).
//! Throughput is reported in bytes/s; criterion prints GiB/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::http1::{asm, reference};

const SIZES: [usize; 4] = [64, 256, 1024, 4096];

/// A 741-byte request a browser sends (Chrome, request line + 12 headers).
pub const BROWSER_REQUEST: &[u8] = b"GET /wp-content/uploads/2010/03/hello-kitty-darth-vader-pink.jpg HTTP/1.1\r\n\
Host: www.kittyhell.com\r\n\
User-Agent: Mozilla/5.0 (Macintosh; U; Intel Mac OS X 10.6; ja-JP-mac; rv:1.9.2.3) Gecko/20100401 Firefox/3.6.3 Pathtraq/0.9\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: ja,en-us;q=0.7,en;q=0.3\r\n\
Accept-Encoding: gzip,deflate\r\n\
Accept-Charset: Shift_JIS,utf-8;q=0.7,*;q=0.7\r\n\
Keep-Alive: 115\r\n\
Connection: keep-alive\r\n\
Cookie: wp_ozh_wsa_visits=2; wp_ozh_wsa_visit_lasttime=x; __utma=xxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.xxxxxxxxxx.x; __utmz=xxxxxxxxx.xxxxxxxxxx.x.x.utmccn=(referral)|utmcsr=reader.livedoor.com\r\n\
Cache-Control: max-age=0\r\n\
Referer: http://www.kittyhell.com/\r\n\
Pragma: no-cache\r\n\r\n";

/// `len` bytes of `fill` with `last` as the final byte (the match position
/// is the end: the whole input is scanned).
fn input(len: usize, fill: u8, last: u8) -> Vec<u8> {
    let mut v = vec![fill; len];
    if let Some(b) = v.last_mut() {
        *b = last;
    }
    v
}

fn scan_group(
    c: &mut Criterion,
    name: &str,
    kernel: &'static marg_gen::rt::Kernel<asm::ScanFn>,
    reference: fn(&[u8]) -> usize,
    fill: u8,
    stop: u8,
) {
    let mut g = c.benchmark_group(name);
    for &n in &SIZES {
        let data = input(n, fill, stop);
        g.throughput(Throughput::Bytes(n as u64));
        for (v, f) in kernel.runnable() {
            g.bench_with_input(BenchmarkId::new(v.name, n), &data, |b, d| {
                // SAFETY: the kernel reads only `d`.
                b.iter(|| unsafe { f(black_box(d.as_ptr()), black_box(d.len())) })
            });
        }
        g.bench_with_input(BenchmarkId::new("reference", n), &data, |b, d| {
            b.iter(|| reference(black_box(d)))
        });
        if name == "find_header_end" {
            let finder = memchr::memmem::Finder::new(b"\r\n\r\n");
            g.bench_with_input(BenchmarkId::new("memchr::memmem", n), &data, |b, d| {
                b.iter(|| finder.find(black_box(d)))
            });
        }
    }
    g.finish();
}

fn bench_scans(c: &mut Criterion) {
    scan_group(
        c,
        "find_header_end",
        &asm::FIND_HEADER_END,
        reference::find_header_end,
        b'a',
        b'\n',
    );
    // (No `\r\n\r\n` in these inputs: every implementation scans them whole.)
    scan_group(
        c,
        "scan_token",
        &asm::SCAN_TOKEN,
        reference::scan_token,
        b'a',
        b':',
    );
    scan_group(
        c,
        "scan_target",
        &asm::SCAN_TARGET,
        reference::scan_target,
        b'a',
        b' ',
    );
    scan_group(
        c,
        "scan_field_value",
        &asm::SCAN_FIELD_VALUE,
        reference::scan_field_value,
        b'a',
        b'\r',
    );
}

/// One needle-search group: every kernel variant, the reference and the
/// anchor crate on inputs of `SIZES` whose only match is the last byte.
fn needle_group<K, R, A>(
    c: &mut Criterion,
    name: &str,
    variants: Vec<(&str, K)>,
    reference: R,
    anchor: (&str, A),
) where
    K: Fn(&[u8]) -> usize,
    R: Fn(&[u8]) -> usize,
    A: Fn(&[u8]) -> Option<usize>,
{
    let mut g = c.benchmark_group(name);
    for &n in &SIZES {
        let data = input(n, b'a', b'\n');
        g.throughput(Throughput::Bytes(n as u64));
        for (v, f) in &variants {
            g.bench_with_input(BenchmarkId::new(*v, n), &data, |b, d| {
                b.iter(|| f(black_box(d)))
            });
        }
        g.bench_with_input(BenchmarkId::new("reference", n), &data, |b, d| {
            b.iter(|| reference(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new(anchor.0, n), &data, |b, d| {
            b.iter(|| (anchor.1)(black_box(d)))
        });
    }
    g.finish();
}

fn bench_find_bytes(c: &mut Criterion) {
    let find2 = asm::FIND_BYTE2.runnable().into_iter().map(|(v, f)| {
        // SAFETY: the kernel reads only `d`.
        (v.name, move |d: &[u8]| unsafe {
            f(d.as_ptr(), d.len(), 13, 10)
        })
    });
    needle_group(
        c,
        "find_byte2",
        find2.collect(),
        |d| reference::find_byte2(d, b'\r', b'\n'),
        ("memchr::memchr2", |d| memchr::memchr2(b'\r', b'\n', d)),
    );
    let find3 = asm::FIND_BYTE3.runnable().into_iter().map(|(v, f)| {
        // SAFETY: the kernel reads only `d`.
        (v.name, move |d: &[u8]| unsafe {
            f(d.as_ptr(), d.len(), 13, 10, 0)
        })
    });
    needle_group(
        c,
        "find_byte3",
        find3.collect(),
        |d| reference::find_byte3(d, b'\r', b'\n', 0),
        ("memchr::memchr3", |d| memchr::memchr3(b'\r', b'\n', 0, d)),
    );
    let find1 = asm::FIND_BYTE.runnable().into_iter().map(|(v, f)| {
        // SAFETY: the kernel reads only `d`.
        (v.name, move |d: &[u8]| unsafe {
            f(d.as_ptr(), d.len(), 10)
        })
    });
    needle_group(
        c,
        "find_byte",
        find1.collect(),
        |d| reference::find_byte(d, b'\n'),
        ("memchr::memchr", |d| memchr::memchr(b'\n', d)),
    );
}

fn bench_eq_and_numbers(c: &mut Criterion) {
    let mut g = c.benchmark_group("eq_ignore_ascii_case");
    for &n in &[16usize, 64, 256] {
        let a: Vec<u8> = (0..n).map(|i| b"content-length"[i % 14]).collect();
        let b = a.to_ascii_uppercase();
        g.throughput(Throughput::Bytes(n as u64));
        for (v, f) in asm::EQ_IGNORE_ASCII_CASE.runnable() {
            g.bench_function(BenchmarkId::new(v.name, n), |bch| {
                // SAFETY: both operands are valid for `n` bytes.
                bch.iter(|| unsafe { f(black_box(a.as_ptr()), black_box(b.as_ptr()), n) })
            });
        }
        g.bench_function(BenchmarkId::new("reference", n), |bch| {
            bch.iter(|| reference::eq_ignore_ascii_case(black_box(&a), black_box(&b)))
        });
        g.bench_function(BenchmarkId::new("std", n), |bch| {
            bch.iter(|| black_box(&a).eq_ignore_ascii_case(black_box(&b)))
        });
    }
    g.finish();
    let mut g = c.benchmark_group("parse_number");
    let dec = b"1234567890123\r\n";
    let hex = b"7fa3c\r\n";
    for (v, f) in asm::PARSE_DECIMAL.runnable() {
        g.bench_function(BenchmarkId::new("decimal", v.name), |b| {
            let mut out = 0u64;
            // SAFETY: reads `dec`, writes `out`.
            b.iter(|| unsafe { f(black_box(dec.as_ptr()), dec.len(), &mut out) })
        });
    }
    g.bench_function(BenchmarkId::new("decimal", "reference"), |b| {
        b.iter(|| reference::parse_decimal(black_box(dec)))
    });
    g.bench_function(BenchmarkId::new("decimal", "std::str::parse"), |b| {
        b.iter(|| {
            std::str::from_utf8(black_box(&dec[..13]))
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        })
    });
    for (v, f) in asm::PARSE_HEX.runnable() {
        g.bench_function(BenchmarkId::new("hex", v.name), |b| {
            let mut out = 0u64;
            // SAFETY: reads `hex`, writes `out`.
            b.iter(|| unsafe { f(black_box(hex.as_ptr()), hex.len(), &mut out) })
        });
    }
    g.bench_function(BenchmarkId::new("hex", "reference"), |b| {
        b.iter(|| reference::parse_hex(black_box(hex)))
    });
    g.finish();
}

/// Header-end search plus token scanning of every line of the 741-byte
/// browser request: the kernel work of one parse, next to httparse's whole
/// parse of the same bytes.
fn bench_browser_request(c: &mut Criterion) {
    assert_eq!(BROWSER_REQUEST.len(), 741);
    let mut g = c.benchmark_group("browser_request_741");
    g.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    g.bench_function(
        "marg kernels (header end + method/target/names/values)",
        |b| b.iter(|| scan_request(black_box(BROWSER_REQUEST))),
    );
    let mut masks = vec![kernels::http1::ChunkMasks::default(); 256];
    let mut spans = [(0u32, 0u32, 0u32, 0u32); 32];
    g.bench_function(
        "marg structural (header end + classify_head + line walk)",
        |b| b.iter(|| parse_structural(black_box(BROWSER_REQUEST), &mut masks, &mut spans)),
    );
    assert_eq!(
        parse_structural(BROWSER_REQUEST, &mut masks, &mut spans),
        Some(12)
    );
    g.bench_function("component: find_header_end", |b| {
        b.iter(|| kernels::http1::find_header_end(black_box(BROWSER_REQUEST)))
    });
    g.bench_function("component: classify_head", |b| {
        b.iter(|| kernels::http1::classify_head(black_box(BROWSER_REQUEST), &mut masks))
    });
    g.bench_function("httparse (whole parse)", |b| {
        b.iter(|| {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut req = httparse::Request::new(&mut headers);
            req.parse(black_box(BROWSER_REQUEST))
                .map(|s| s.is_complete())
        })
    });
    g.finish();
}

/// Scans a request with the kernels the way the parser does; returns a
/// checksum of the offsets so nothing is optimised away.
fn scan_request(req: &[u8]) -> usize {
    use kernels::http1::*;
    let end = find_header_end(req).unwrap_or(0);
    let head = &req[..end];
    let m = scan_token(head);
    let t = scan_target(&head[m + 1..]);
    let mut pos = m + 1 + t;
    pos += find_byte2(&head[pos..], b'\n', b'\n').unwrap_or(0) + 1;
    let mut sum = m + t;
    while pos + 2 < head.len() {
        let n = scan_token(&head[pos..]);
        let vstart = pos + n + 2;
        let v = scan_field_value(&head[vstart..]);
        sum += n + v;
        pos = vstart + v + 2;
    }
    sum
}

/// A whole header parse on the structural masks: find the end of the
/// block, classify it in one SIMD pass, then walk lines with bit operations
/// (the method is the run before the first non-tchar, each field name the
/// run before the line's first colon with no non-tchar in it, each value
/// ends at the next special byte, which must be CRLF). Returns the number of
/// header fields, or None on any syntax error.
fn parse_structural(
    req: &[u8],
    masks: &mut [kernels::http1::ChunkMasks],
    spans: &mut [(u32, u32, u32, u32); 32],
) -> Option<usize> {
    use kernels::http1::{classify_head, find_header_end, scan_target, HeadMasks, MaskKind};
    let end = find_header_end(req)?;
    let head = &req[..end];
    let n = classify_head(head, masks);
    let m = HeadMasks::new(&masks[..n]);
    let sp = m.next(MaskKind::NonTchar, 0)?;
    if sp == 0 || head[sp] != b' ' {
        return None;
    }
    let t = scan_target(&head[sp + 1..]);
    let eol = m.next(MaskKind::Special, sp + 1 + t)?;
    if head.get(eol..eol + 2)? != b"\r\n" {
        return None;
    }
    // Line ends come from iterating the special bits in order (a cheap
    // bit-clearing chain that runs ahead); each line's colon and name check
    // depend only on where the line starts.
    let mut pos = eol + 2;
    let mut count = 0;
    let mut c = pos / 64;
    let mut special = masks[c].special & (!0u64 << (pos % 64));
    let next_special = |c: &mut usize, special: &mut u64| -> Option<usize> {
        while *special == 0 {
            *c += 1;
            *special = masks.get(*c)?.special;
        }
        let at = *c * 64 + special.trailing_zeros() as usize;
        *special &= *special - 1;
        Some(at)
    };
    while pos + 2 < end {
        let cr = next_special(&mut c, &mut special)?;
        let lf = next_special(&mut c, &mut special)?;
        if lf != cr + 1 || head[cr] != b'\r' || head[lf] != b'\n' {
            return None;
        }
        let colon = m.next(MaskKind::Colon, pos)?;
        if colon == pos || colon > cr || m.next(MaskKind::NonTchar, pos) != Some(colon) {
            return None;
        }
        let mut vs = colon + 1;
        while vs < cr && matches!(head[vs], b' ' | b'\t') {
            vs += 1;
        }
        let mut ve = cr;
        while ve > vs && matches!(head[ve - 1], b' ' | b'\t') {
            ve -= 1;
        }
        *spans.get_mut(count)? = (pos as u32, colon as u32, vs as u32, ve as u32);
        count += 1;
        pos = lf + 1;
    }
    Some(count)
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_millis(900));
    targets = bench_scans, bench_find_bytes, bench_eq_and_numbers, bench_browser_request
}
criterion_main!(benches);
