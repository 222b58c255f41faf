//! Criterion benchmarks of the AEAD kernels: every runnable variant against
//! `ring`, RustCrypto and the reference, seal and open, at a small record
//! (64 B), a QUIC-sized packet (1,350 B) and a full TLS record (16 KiB).
//!
//! Open is measured on a valid ciphertext and tag (each iteration opens a
//! fresh copy made outside the timed section), so every implementation does
//! the full work whatever order it checks and decrypts in.
//!
//! Run: `cargo bench -p kernels --bench aead` (filter with e.g.
//! `-- aes128gcm_seal/.*/16384`). Criterion prints GiB/s.

use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    Throughput,
};
use kernels::aead::{
    chacha_reference, reference, AesGcm, ChaCha20Poly1305, ChaChaKernels, GcmKernels,
};
use std::time::Duration;

const SIZES: [usize; 3] = [64, 1350, 16384];
/// A TLS 1.3 record header as AAD.
const AAD: [u8; 13] = [0x17, 0x03, 0x03, 0x40, 0x11, 0, 0, 0, 0, 0, 0, 0, 0];
const NONCE: [u8; 12] = [7; 12];

/// Seals a buffer in place, returning the tag.
type SealFn<'a> = Box<dyn Fn(&mut [u8]) -> [u8; 16] + 'a>;
/// Opens a buffer in place against a tag.
type OpenFn<'a> = Box<dyn Fn(&mut [u8], &[u8; 16]) -> bool + 'a>;

/// One implementation of one AEAD under one key.
struct Impl<'a> {
    name: String,
    seal: SealFn<'a>,
    open: OpenFn<'a>,
}

fn run(
    g: &mut BenchmarkGroup<'_, WallTime>,
    op: &str,
    n: usize,
    imp: &Impl<'_>,
    ct: &[u8],
    tag: &[u8; 16],
) {
    g.bench_with_input(BenchmarkId::new(&imp.name, n), &n, |b, _| {
        if op == "seal" {
            let mut buf = vec![0x5au8; n];
            b.iter(|| black_box((imp.seal)(&mut buf)))
        } else {
            b.iter_batched_ref(
                || ct.to_vec(),
                |buf| assert!((imp.open)(buf, tag)),
                BatchSize::SmallInput,
            )
        }
    });
}

fn group(c: &mut Criterion, name: &str, impls: &[Impl<'_>], reference_max: usize) {
    for op in ["seal", "open"] {
        let mut g = c.benchmark_group(format!("{name}_{op}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        for &n in &SIZES {
            g.throughput(Throughput::Bytes(n as u64));
            // The first implementation is the anchor that makes the test input.
            let mut ct = vec![0x5au8; n];
            let tag = (impls[0].seal)(&mut ct);
            for imp in impls {
                if imp.name == "reference" && n > reference_max {
                    continue;
                }
                run(&mut g, op, n, imp, &ct, &tag);
            }
        }
        g.finish();
    }
}

fn ring_impl(alg: &'static ring::aead::Algorithm, key: &[u8]) -> Impl<'static> {
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey};
    let k = std::rc::Rc::new(LessSafeKey::new(UnboundKey::new(alg, key).unwrap()));
    let k2 = k.clone();
    Impl {
        name: "ring".into(),
        seal: Box::new(move |buf| {
            let t = k
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(NONCE),
                    Aad::from(AAD),
                    buf,
                )
                .unwrap();
            t.as_ref().try_into().unwrap()
        }),
        open: Box::new(move |buf, tag| {
            k2.open_in_place_separate_tag(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(AAD),
                Tag::from(*tag),
                buf,
                0..,
            )
            .is_ok()
        }),
    }
}

/// A RustCrypto AEAD (`aes-gcm` or `chacha20poly1305`; both implement the
/// `aead` 0.5 traits) with a 12-byte nonce and a 16-byte tag.
fn rustcrypto_impl<A>(key: &[u8]) -> Impl<'static>
where
    A: aes_gcm::aead::AeadInPlace + aes_gcm::aead::KeyInit + 'static,
    A: aes_gcm::aead::AeadCore<
        NonceSize = aes_gcm::aead::consts::U12,
        TagSize = aes_gcm::aead::consts::U16,
    >,
{
    let a = std::rc::Rc::new(A::new_from_slice(key).unwrap());
    let a2 = a.clone();
    let nonce = aes_gcm::aead::Nonce::<A>::clone_from_slice(&NONCE);
    Impl {
        name: "rustcrypto".into(),
        seal: Box::new(move |buf| {
            a.encrypt_in_place_detached(&nonce, &AAD, buf)
                .unwrap()
                .into()
        }),
        open: Box::new(move |buf, tag| {
            a2.decrypt_in_place_detached(&nonce, &AAD, buf, tag.into())
                .is_ok()
        }),
    }
}

fn gcm(c: &mut Criterion, key_len: usize) {
    let key = vec![0x42u8; key_len];
    let alg = if key_len == 16 {
        &ring::aead::AES_128_GCM
    } else {
        &ring::aead::AES_256_GCM
    };
    let mut impls = vec![ring_impl(alg, &key)];
    let (variants, skipped) = GcmKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("aead bench: GCM variants skipped on this CPU: {skipped:?}");
    }
    for v in variants {
        let k = std::rc::Rc::new(AesGcm::with_kernels(&key, v));
        let k2 = k.clone();
        impls.push(Impl {
            name: format!("marg/{}", v.variant),
            seal: Box::new(move |buf| k.seal_in_place(&NONCE, &AAD, buf)),
            open: Box::new(move |buf, tag| k2.open_in_place(&NONCE, &AAD, buf, tag).is_ok()),
        });
    }
    if key_len == 16 {
        impls.push(rustcrypto_impl::<aes_gcm::Aes128Gcm>(&key));
    } else {
        impls.push(rustcrypto_impl::<aes_gcm::Aes256Gcm>(&key));
    }
    let r = std::rc::Rc::new(reference::AesGcm::new(&key));
    let r2 = r.clone();
    impls.push(Impl {
        name: "reference".into(),
        seal: Box::new(move |buf| r.seal(&NONCE, &AAD, buf)),
        open: Box::new(move |buf, tag| r2.open(&NONCE, &AAD, buf, tag)),
    });
    group(c, &format!("aes{}gcm", key_len * 8), &impls, 1350);
}

fn aes128gcm(c: &mut Criterion) {
    gcm(c, 16);
}

fn aes256gcm(c: &mut Criterion) {
    gcm(c, 32);
}

fn chacha20poly1305(c: &mut Criterion) {
    let key = [0x42u8; 32];
    let mut impls = vec![ring_impl(&ring::aead::CHACHA20_POLY1305, &key)];
    let (variants, skipped) = ChaChaKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("aead bench: ChaCha20 variants skipped on this CPU: {skipped:?}");
    }
    for v in variants {
        let k = std::rc::Rc::new(ChaCha20Poly1305::with_kernels(&key, v));
        let k2 = k.clone();
        impls.push(Impl {
            name: format!("marg/{}", v.variant),
            seal: Box::new(move |buf| k.seal_in_place(&NONCE, &AAD, buf)),
            open: Box::new(move |buf, tag| k2.open_in_place(&NONCE, &AAD, buf, tag).is_ok()),
        });
    }
    impls.push(rustcrypto_impl::<chacha20poly1305::ChaCha20Poly1305>(&key));
    impls.push(Impl {
        name: "reference".into(),
        seal: Box::new(move |buf| chacha_reference::seal(&key, &NONCE, &AAD, buf)),
        open: Box::new(move |buf, tag| chacha_reference::open(&key, &NONCE, &AAD, buf, tag)),
    });
    group(c, "chacha20poly1305", &impls, 1350);
}

criterion_group!(benches, aes128gcm, aes256gcm, chacha20poly1305);
criterion_main!(benches);
