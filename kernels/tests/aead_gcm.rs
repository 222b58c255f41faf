//! AES-GCM: known-answer vectors (NIST / McGrew-Viega, Wycheproof) on the
//! reference and on every host-runnable kernel variant, a differential run
//! against the reference and `ring`, and tag/ciphertext bit-flip rejection.
//! Variants this CPU cannot run are reported, not silently passed.

mod aead_common;
use aead_common::{edge_lengths, hex, Rng};
use kernels::aead::reference;
use kernels::aead::{AesGcm, GcmKernels};

/// The variants to test; prints those skipped on this host.
fn variants() -> Vec<GcmKernels> {
    let (run, skipped) = GcmKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("aead: variants skipped on this CPU: {skipped:?}");
    }
    assert!(!run.is_empty() || !kernels::aead::aes_gcm_supported());
    run
}

/// (key, iv, pt, aad, ct, tag) from the GCM specification (McGrew & Viega,
/// test cases 1-4, 13-16), which NIST SP 800-38D's validation uses.
const GCM_SPEC: &[[&str; 6]] = &[
    ["00000000000000000000000000000000", "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"],
    ["00000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"],
    ["feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "", "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985", "4d5c2af327cd64a62cf35abd2ba6fab4"],
    ["feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2", "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091", "5bc94fbc3221a5db94fae95ae7121a47"],
    ["0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"],
    ["0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000", "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"],
    ["feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255", "", "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad", "b094dac5d93471bdec1a502270e3cc6c"],
    ["feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888", "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", "feedfacedeadbeeffeedfacedeadbeefabaddad2", "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", "76fc6ece0f4e1768cddf8853bb2d551b"],
];

#[test]
fn gcm_spec_vectors_reference() {
    for [k, iv, pt, aad, ct, tag] in GCM_SPEC {
        let g = reference::AesGcm::new(&hex(k));
        let mut buf = hex(pt);
        let t = g.seal(&hex(iv), &hex(aad), &mut buf);
        assert_eq!(buf, hex(ct), "ct, key {k}");
        assert_eq!(t.to_vec(), hex(tag), "tag, key {k}");
        assert!(g.open(&hex(iv), &hex(aad), &mut buf, &t));
        assert_eq!(buf, hex(pt));
    }
}

#[test]
fn gcm_spec_vectors_kernels() {
    for v in variants() {
        for [k, iv, pt, aad, ct, tag] in GCM_SPEC {
            let g = AesGcm::with_kernels(&hex(k), v);
            let mut buf = hex(pt);
            let t = g.seal_in_place(&hex(iv), &hex(aad), &mut buf);
            assert_eq!(buf, hex(ct), "{}: ct, key {k}", v.variant);
            assert_eq!(t.to_vec(), hex(tag), "{}: tag, key {k}", v.variant);
            g.open_in_place(&hex(iv), &hex(aad), &mut buf, &t).unwrap();
            assert_eq!(buf, hex(pt), "{}", v.variant);
        }
    }
}

fn ring_seal(key: &[u8], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Vec<u8> {
    use ring::aead;
    let alg = if key.len() == 16 {
        &aead::AES_128_GCM
    } else {
        &aead::AES_256_GCM
    };
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
    let tag = k
        .seal_in_place_separate_tag(
            aead::Nonce::assume_unique_for_key(*nonce),
            aead::Aad::from(aad),
            data,
        )
        .unwrap();
    tag.as_ref().to_vec()
}

/// One seal/open check of `v` against the reference and ring, in place and
/// out of place.
fn check_case(
    v: GcmKernels,
    key: &[u8],
    nonce: &[u8; 12],
    aad: &[u8],
    pt: &[u8],
    with_reference: bool,
) {
    let g = AesGcm::with_kernels(key, v);
    let mut ct = pt.to_vec();
    let tag = g.seal_in_place(nonce, aad, &mut ct);
    let mut ring_ct = pt.to_vec();
    let ring_tag = ring_seal(key, nonce, aad, &mut ring_ct);
    let name = v.variant;
    let n = pt.len();
    assert!(
        ct == ring_ct,
        "{name}: ct differs from ring, len {n}, aad {}",
        aad.len()
    );
    assert_eq!(
        tag.to_vec(),
        ring_tag,
        "{name}: tag differs from ring, len {n}"
    );
    if with_reference {
        let mut r = pt.to_vec();
        let rt = reference::AesGcm::new(key).seal(nonce, aad, &mut r);
        assert!(
            r == ct && rt == tag,
            "{name}: differs from the reference, len {n}"
        );
    }
    let mut out = vec![0u8; n];
    assert_eq!(
        g.seal(nonce, aad, pt, &mut out),
        tag,
        "{name}: out-of-place tag"
    );
    assert!(out == ct, "{name}: out-of-place ct, len {n}");
    let mut back = vec![0u8; n];
    g.open(nonce, aad, &ct, &mut back, &tag).unwrap();
    assert!(back == pt, "{name}: out-of-place open, len {n}");
    let mut inplace = ct.clone();
    g.open_in_place(nonce, aad, &mut inplace, &tag).unwrap();
    assert!(inplace == pt, "{name}: open, len {n}");
}

#[test]
fn differential_edge_lengths() {
    let mut rng = Rng(1);
    for v in variants() {
        // Every tail, one block short of / at / past each chunk (8 and 16 blocks).
        for &n in &edge_lengths(40, &[128, 256], &[-17, -16, -15, -1, 0, 1, 15, 16, 17]) {
            for key_len in [16, 32] {
                let key = rng.bytes(key_len);
                let nonce: [u8; 12] = rng.array();
                let aad_len = rng.below(70);
                let aad = rng.bytes(aad_len);
                let pt = rng.bytes(n);
                check_case(v, &key, &nonce, &aad, &pt, n <= 600);
            }
        }
    }
}

#[test]
fn differential_random_lengths_to_64k() {
    let mut rng = Rng(2);
    for v in variants() {
        for i in 0..24 {
            let n = if i == 0 { 65536 } else { rng.below(65537) };
            let key = rng.bytes(if i % 2 == 0 { 16 } else { 32 });
            let nonce: [u8; 12] = rng.array();
            let aad_len = rng.below(600);
            let aad = rng.bytes(aad_len);
            let pt = rng.bytes(n);
            check_case(v, &key, &nonce, &aad, &pt, i < 2);
        }
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let mut rng = Rng(3);
    for v in variants() {
        for n in [0usize, 1, 16, 33, 200, 1350] {
            let key = rng.bytes(16);
            let g = AesGcm::with_kernels(&key, v);
            let nonce: [u8; 12] = rng.array();
            let aad = rng.bytes(13);
            let mut ct = rng.bytes(n);
            let tag = g.seal_in_place(&nonce, &aad, &mut ct);
            // Every bit of the tag, of the ciphertext (up to 200 bytes; a
            // sample beyond) and of the AAD.
            for bit in 0..128 {
                let mut t = tag;
                t[bit / 8] ^= 1 << (bit % 8);
                let mut b = ct.clone();
                assert!(
                    g.open_in_place(&nonce, &aad, &mut b, &t).is_err(),
                    "{} tag bit {bit}",
                    v.variant
                );
                assert!(b.iter().all(|&x| x == 0), "{}: output not wiped", v.variant);
            }
            let bits: Vec<usize> = if n <= 200 {
                (0..8 * n).collect()
            } else {
                (0..256).map(|_| rng.below(8 * n)).collect()
            };
            for bit in bits {
                let mut b = ct.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    g.open_in_place(&nonce, &aad, &mut b, &tag).is_err(),
                    "{} ct bit {bit}",
                    v.variant
                );
            }
            for bit in 0..8 * aad.len() {
                let mut a = aad.clone();
                a[bit / 8] ^= 1 << (bit % 8);
                let mut b = ct.clone();
                assert!(
                    g.open_in_place(&nonce, &a, &mut b, &tag).is_err(),
                    "{} aad bit {bit}",
                    v.variant
                );
            }
        }
    }
}

/// Runs one Wycheproof AES-GCM test on `seal`/`open`; `None` = skipped
/// (a parameter the implementation does not support).
fn wycheproof_gcm(
    mut run: impl FnMut(&wycheproof::aead::Test, usize) -> Option<bool>,
) -> (usize, usize) {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let (mut passed, mut skipped) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            match run(t, group.tag_size) {
                None => skipped += 1,
                Some(ok) => {
                    let want = t.result != wycheproof::TestResult::Invalid;
                    assert_eq!(ok, want, "Wycheproof tcId {} ({:?})", t.tc_id, t.comment);
                    passed += 1;
                }
            }
        }
    }
    (passed, skipped)
}

#[test]
fn wycheproof_reference() {
    let (passed, skipped) = wycheproof_gcm(|t, tag_size| {
        if tag_size != 128 || t.nonce.is_empty() {
            return None;
        }
        let g = reference::AesGcm::new(&t.key);
        let mut buf = t.pt.to_vec();
        let tag = g.seal(&t.nonce, &t.aad, &mut buf);
        let sealed_ok = buf == *t.ct && tag[..] == *t.tag;
        let mut c = t.ct.to_vec();
        let tag_in: [u8; 16] = t.tag[..].try_into().unwrap();
        let opened = g.open(&t.nonce, &t.aad, &mut c, &tag_in);
        assert_eq!(sealed_ok, opened, "tcId {}", t.tc_id);
        Some(opened && c == *t.pt)
    });
    eprintln!("wycheproof (reference): {passed} passed, {skipped} skipped (tag != 128 bits or empty nonce)");
    assert!(passed > 200);
}

#[test]
fn wycheproof_kernels() {
    for v in variants() {
        let (passed, skipped) = wycheproof_gcm(|t, tag_size| {
            if tag_size != 128 || t.nonce.is_empty() || !matches!(t.key.len(), 16 | 32) {
                return None;
            }
            let g = AesGcm::with_kernels(&t.key, v);
            let mut buf = t.pt.to_vec();
            let tag = g.seal_in_place(&t.nonce, &t.aad, &mut buf);
            let sealed_ok = buf == *t.ct && tag[..] == *t.tag;
            let mut c = t.ct.to_vec();
            let opened = g.open_in_place(&t.nonce, &t.aad, &mut c, &t.tag).is_ok();
            assert_eq!(sealed_ok, opened, "{}: tcId {}", v.variant, t.tc_id);
            Some(opened && c == *t.pt)
        });
        eprintln!("wycheproof ({}): {passed} passed, {skipped} skipped (192-bit keys, tag != 128 bits, empty nonce)", v.variant);
        assert!(passed > 150);
    }
}

#[test]
fn ghash_kernel_every_short_block_count_vs_reference() {
    // The ghash kernel's short tail (fewer blocks than a chunk, aggregated
    // against H^n..H^1 with one reduction) and the first chunk boundaries:
    // one call of every block count 0..=17, from a zero and a random state.
    let mut rng = Rng(21);
    for v in variants() {
        for key_len in [16, 32] {
            let key = rng.bytes(key_len);
            let k = AesGcm::with_kernels(&key, v);
            let h = reference::AesGcm::new(&key).h();
            for n in 0..=17 {
                let data = rng.bytes(16 * n);
                for y0 in [[0u8; 16], rng.array()] {
                    let mut want = y0;
                    reference::ghash_update(&h, &mut want, &data);
                    let mut got = y0;
                    k.ghash_blocks_for_tests(&mut got, &data);
                    assert_eq!(
                        got,
                        want,
                        "{}: ghash of {n} blocks, AES-{}",
                        v.variant,
                        key_len * 8
                    );
                }
            }
        }
    }
}

/// The expanded key as the kernels read it (`aead::asm` context layout),
/// 64-byte aligned as their SSE stores need.
#[repr(C, align(64))]
struct Ctx([u8; 512]);

#[test]
fn fused_kernels_every_counter_start_and_32_bit_wrap() {
    // `aes_gcm_seal`/`aes_gcm_open` called directly with counter blocks
    // whose last byte starts anywhere, and across the 32-bit wrap: the
    // kernels add to the big-endian block while its last byte cannot
    // wrap within a chunk, and take the little-endian path otherwise.
    // Checked against the reference AES (CTR with inc32) and GHASH.
    use kernels::aead::asm;
    let mut rng = Rng(31);
    let seals = asm::AES_GCM_SEAL.runnable();
    let opens = asm::AES_GCM_OPEN.runnable();
    for key_len in [16, 32] {
        let key = rng.bytes(key_len);
        let mut ctx = Ctx([0; 512]);
        // SAFETY: reads `key_len` bytes of `key`, writes the 512-byte context.
        unsafe { (asm::AES_GCM_INIT.get())(key.as_ptr(), key_len, ctx.0.as_mut_ptr()) };
        let aes = reference::AesKey::new(&key);
        let h = reference::AesGcm::new(&key).h();
        let prefix: [u8; 12] = rng.array();
        let starts = [
            0u32,
            1,
            2,
            0xef,
            0xf0,
            0xf1,
            0xff,
            0x1_00f3,
            0xffff_ff00,
            0xffff_ffee,
            0xffff_fff1,
            0xffff_ffff,
        ];
        for &start in &starts {
            for blocks in [1usize, 15, 16, 17, 31, 32, 33, 40, 70] {
                let data = rng.bytes(16 * blocks);
                let mut want = data.clone();
                let mut ctr = start;
                for b in want.chunks_mut(16) {
                    let mut cb = [0u8; 16];
                    cb[..12].copy_from_slice(&prefix);
                    cb[12..].copy_from_slice(&ctr.to_be_bytes());
                    for (o, k) in b.iter_mut().zip(aes.encrypt_block(&cb)) {
                        *o ^= k;
                    }
                    ctr = ctr.wrapping_add(1);
                }
                let mut ghash = [0u8; 16];
                reference::ghash_update(&h, &mut ghash, &want);
                let mut next = [0u8; 16];
                next[..12].copy_from_slice(&prefix);
                next[12..].copy_from_slice(&ctr.to_be_bytes());
                for ((v, seal), (_, open)) in seals.iter().zip(&opens) {
                    for (what, f, input) in [("seal", *seal, &data), ("open", *open, &want)] {
                        let mut state = [0u8; 32];
                        state[16..28].copy_from_slice(&prefix);
                        state[28..].copy_from_slice(&start.to_be_bytes());
                        let mut out = vec![0u8; input.len()];
                        // SAFETY: `blocks` whole blocks in and out, the
                        // 32-byte state and the initialised context.
                        unsafe {
                            f(
                                ctx.0.as_ptr(),
                                state.as_mut_ptr(),
                                input.as_ptr(),
                                out.as_mut_ptr(),
                                blocks,
                            )
                        };
                        let expect = if what == "seal" { &want } else { &data };
                        let at = format!(
                            "{} {what}, AES-{}, start {start:#x}, {blocks} blocks",
                            v.name,
                            key_len * 8
                        );
                        assert!(out == *expect, "{at}: output");
                        let mut x = ghash;
                        x.reverse(); // the kernels keep X byte-reflected
                        assert_eq!(state[..16], x, "{at}: GHASH");
                        assert_eq!(state[16..], next, "{at}: next counter");
                    }
                }
            }
        }
    }
}
