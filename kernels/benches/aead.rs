//! Criterion benchmarks of the AEAD kernels: every runnable variant against
//! `ring`, RustCrypto and the reference, seal and open, at a small record
//! (64 B), a QUIC-sized packet (1,350 B) and a full TLS record (16 KiB).
//!
//! Run: `cargo bench -p kernels --bench aead` (filter with e.g.
//! `-- aes128gcm_seal/16384`). Criterion prints GiB/s.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kernels::aead::{reference, AesGcm, GcmKernels};
use std::time::Duration;

const SIZES: [usize; 3] = [64, 1350, 16384];
const AAD: [u8; 13] = [0x17, 0x03, 0x03, 0x40, 0x11, 0, 0, 0, 0, 0, 0, 0, 0];

fn gcm(c: &mut Criterion, key_len: usize) {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let key = vec![0x42u8; key_len];
    let nonce = [7u8; 12];
    let (variants, skipped) = GcmKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("aead bench: variants skipped on this CPU: {skipped:?}");
    }
    let alg = if key_len == 16 {
        &ring::aead::AES_128_GCM
    } else {
        &ring::aead::AES_256_GCM
    };
    let ring_key = ring::aead::LessSafeKey::new(ring::aead::UnboundKey::new(alg, &key).unwrap());
    let rc128 = aes_gcm::Aes128Gcm::new_from_slice(&key[..16]).unwrap();
    let rc256 = aes_gcm::Aes256Gcm::new_from_slice(&[0x42; 32]).unwrap();
    let reference = reference::AesGcm::new(&key);
    let bits = key_len * 8;
    for op in ["seal", "open"] {
        let mut g = c.benchmark_group(format!("aes{bits}gcm_{op}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        for &n in &SIZES {
            g.throughput(Throughput::Bytes(n as u64));
            let mut buf = vec![0x5au8; n];
            for v in &variants {
                let k = AesGcm::with_kernels(&key, *v);
                let tag = k.seal_in_place(&nonce, &AAD, &mut buf.clone());
                g.bench_with_input(
                    BenchmarkId::new(format!("marg/{}", v.variant), n),
                    &n,
                    |b, _| {
                        if op == "seal" {
                            b.iter(|| black_box(k.seal_in_place(&nonce, &AAD, &mut buf)))
                        } else {
                            // open of a forged message does all the work of a
                            // real one (decrypt, then compare and wipe).
                            b.iter(|| {
                                black_box(k.open_in_place(&nonce, &AAD, &mut buf, &tag).is_ok())
                            })
                        }
                    },
                );
            }
            g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
                let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
                if op == "seal" {
                    b.iter(|| {
                        let n = ring::aead::Nonce::assume_unique_for_key(*nonce.as_ref());
                        black_box(
                            ring_key
                                .seal_in_place_separate_tag(n, ring::aead::Aad::from(AAD), &mut buf)
                                .unwrap(),
                        )
                    })
                } else {
                    let tag = ring::aead::Tag::from([0u8; 16]);
                    b.iter(|| {
                        let n = ring::aead::Nonce::assume_unique_for_key(*nonce.as_ref());
                        black_box(
                            ring_key
                                .open_in_place_separate_tag(
                                    n,
                                    ring::aead::Aad::from(AAD),
                                    tag,
                                    &mut buf,
                                    0..,
                                )
                                .is_ok(),
                        )
                    })
                }
            });
            g.bench_with_input(BenchmarkId::new("rustcrypto", n), &n, |b, _| {
                let nonce = aes_gcm::Nonce::from(nonce);
                let tag = aes_gcm::Tag::from([0u8; 16]);
                match (op, key_len) {
                    ("seal", 16) => b.iter(|| {
                        black_box(
                            rc128
                                .encrypt_in_place_detached(&nonce, &AAD, &mut buf)
                                .unwrap(),
                        )
                    }),
                    ("seal", _) => b.iter(|| {
                        black_box(
                            rc256
                                .encrypt_in_place_detached(&nonce, &AAD, &mut buf)
                                .unwrap(),
                        )
                    }),
                    (_, 16) => b.iter(|| {
                        black_box(
                            rc128
                                .decrypt_in_place_detached(&nonce, &AAD, &mut buf, &tag)
                                .is_ok(),
                        )
                    }),
                    _ => b.iter(|| {
                        black_box(
                            rc256
                                .decrypt_in_place_detached(&nonce, &AAD, &mut buf, &tag)
                                .is_ok(),
                        )
                    }),
                }
            });
            if n <= 1350 {
                g.bench_with_input(BenchmarkId::new("reference", n), &n, |b, _| {
                    if op == "seal" {
                        b.iter(|| black_box(reference.seal(&nonce, &AAD, &mut buf)))
                    } else {
                        b.iter(|| black_box(reference.open(&nonce, &AAD, &mut buf, &[0; 16])))
                    }
                });
            }
        }
        g.finish();
    }
}

fn aes128gcm(c: &mut Criterion) {
    gcm(c, 16);
}

fn aes256gcm(c: &mut Criterion) {
    gcm(c, 32);
}

fn chacha20poly1305(c: &mut Criterion) {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use kernels::aead::{chacha_reference, ChaCha20Poly1305, ChaChaKernels};
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let (variants, skipped) = ChaChaKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("aead bench: chacha20 variants skipped on this CPU: {skipped:?}");
    }
    let ring_key = ring::aead::LessSafeKey::new(
        ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key).unwrap(),
    );
    let rc = chacha20poly1305::ChaCha20Poly1305::new_from_slice(&key).unwrap();
    for op in ["seal", "open"] {
        let mut g = c.benchmark_group(format!("chacha20poly1305_{op}"));
        g.warm_up_time(Duration::from_millis(300));
        g.measurement_time(Duration::from_secs(1));
        for &n in &SIZES {
            g.throughput(Throughput::Bytes(n as u64));
            let mut buf = vec![0x5au8; n];
            for v in &variants {
                let k = ChaCha20Poly1305::with_kernels(&key, *v);
                g.bench_with_input(
                    BenchmarkId::new(format!("marg/{}", v.variant), n),
                    &n,
                    |b, _| {
                        if op == "seal" {
                            b.iter(|| black_box(k.seal_in_place(&nonce, &AAD, &mut buf)))
                        } else {
                            b.iter(|| {
                                black_box(k.open_in_place(&nonce, &AAD, &mut buf, &[0; 16]).is_ok())
                            })
                        }
                    },
                );
            }
            g.bench_with_input(BenchmarkId::new("ring", n), &n, |b, _| {
                if op == "seal" {
                    b.iter(|| {
                        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
                        black_box(
                            ring_key
                                .seal_in_place_separate_tag(n, ring::aead::Aad::from(AAD), &mut buf)
                                .unwrap(),
                        )
                    })
                } else {
                    let tag = ring::aead::Tag::from([0u8; 16]);
                    b.iter(|| {
                        let n = ring::aead::Nonce::assume_unique_for_key(nonce);
                        black_box(
                            ring_key
                                .open_in_place_separate_tag(
                                    n,
                                    ring::aead::Aad::from(AAD),
                                    tag,
                                    &mut buf,
                                    0..,
                                )
                                .is_ok(),
                        )
                    })
                }
            });
            g.bench_with_input(BenchmarkId::new("rustcrypto", n), &n, |b, _| {
                let nonce = chacha20poly1305::Nonce::from(nonce);
                let tag = chacha20poly1305::Tag::from([0u8; 16]);
                if op == "seal" {
                    b.iter(|| {
                        black_box(
                            rc.encrypt_in_place_detached(&nonce, &AAD, &mut buf)
                                .unwrap(),
                        )
                    })
                } else {
                    b.iter(|| {
                        black_box(
                            rc.decrypt_in_place_detached(&nonce, &AAD, &mut buf, &tag)
                                .is_ok(),
                        )
                    })
                }
            });
            if n <= 1350 {
                g.bench_with_input(BenchmarkId::new("reference", n), &n, |b, _| {
                    if op == "seal" {
                        b.iter(|| black_box(chacha_reference::seal(&key, &nonce, &AAD, &mut buf)))
                    } else {
                        b.iter(|| {
                            black_box(chacha_reference::open(
                                &key, &nonce, &AAD, &mut buf, &[0; 16],
                            ))
                        })
                    }
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, aes128gcm, aes256gcm, chacha20poly1305);
criterion_main!(benches);
