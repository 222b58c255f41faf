//! ChaCha20-Poly1305: RFC 8439 and Wycheproof vectors on the reference and
//! on every host-runnable kernel variant, differential runs against the
//! reference and `ring`, and bit-flip rejection. Variants this CPU cannot
//! run are reported, not silently passed.

mod aead_common;
use aead_common::{edge_lengths, hex, Rng};
use kernels::aead::chacha_reference as reference;

#[test]
fn rfc8439_2_3_2_block() {
    let key: [u8; 32] = hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
        .try_into()
        .unwrap();
    let nonce: [u8; 12] = hex("000000090000004a00000000").try_into().unwrap();
    let ks = reference::chacha20_block(&key, 1, &nonce);
    assert_eq!(
        ks.to_vec(),
        hex(
            "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e
             d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e"
        )
    );
}

#[test]
fn rfc8439_2_5_2_poly1305() {
    let key: [u8; 32] = hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
        .try_into()
        .unwrap();
    let tag = reference::poly1305(&key, b"Cryptographic Forum Research Group");
    assert_eq!(tag.to_vec(), hex("a8061dc1305136c6c22b8baf0c0127a9"));
}

/// RFC 8439 2.8.2.
pub const RFC_KEY: &str = "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f";
pub const RFC_NONCE: &str = "070000004041424344454647";
pub const RFC_AAD: &str = "50515253c0c1c2c3c4c5c6c7";
pub const RFC_PT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
pub const RFC_CT: &str = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
    3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
    92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
    3ff4def08e4b7a9de576d26586cec64b6116";
pub const RFC_TAG: &str = "1ae10b594f09e26a7e902ecbd0600691";

#[test]
fn rfc8439_2_8_2_aead_reference() {
    let key: [u8; 32] = hex(RFC_KEY).try_into().unwrap();
    let nonce: [u8; 12] = hex(RFC_NONCE).try_into().unwrap();
    let mut buf = RFC_PT.to_vec();
    let tag = reference::seal(&key, &nonce, &hex(RFC_AAD), &mut buf);
    assert_eq!(buf, hex(RFC_CT));
    assert_eq!(tag.to_vec(), hex(RFC_TAG));
    assert!(reference::open(&key, &nonce, &hex(RFC_AAD), &mut buf, &tag));
    assert_eq!(buf, RFC_PT);
}

#[test]
fn wycheproof_reference() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::ChaCha20Poly1305).unwrap();
    let (mut passed, mut skipped) = (0, 0);
    for group in &set.test_groups {
        for t in &group.tests {
            if t.nonce.len() != 12 || t.key.len() != 32 || t.tag.len() != 16 {
                skipped += 1;
                continue;
            }
            let key: [u8; 32] = t.key[..].try_into().unwrap();
            let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
            let tag: [u8; 16] = t.tag[..].try_into().unwrap();
            let mut c = t.ct.to_vec();
            let ok = reference::open(&key, &nonce, &t.aad, &mut c, &tag) && c == *t.pt;
            assert_eq!(
                ok,
                t.result != wycheproof::TestResult::Invalid,
                "tcId {}",
                t.tc_id
            );
            passed += 1;
        }
    }
    eprintln!("wycheproof chacha20-poly1305 (reference): {passed} passed, {skipped} skipped (nonce != 96 bits)");
    assert!(passed > 200);
}

use kernels::aead::{ChaCha20Poly1305, ChaChaKernels};

/// The variants to test; prints those skipped on this host.
fn variants() -> Vec<ChaChaKernels> {
    let (run, skipped) = ChaChaKernels::runnable();
    if !skipped.is_empty() {
        eprintln!("chacha20: variants skipped on this CPU: {skipped:?}");
    }
    assert!(!run.is_empty());
    run
}

#[test]
fn rfc8439_2_8_2_aead_kernels() {
    let key: [u8; 32] = hex(RFC_KEY).try_into().unwrap();
    let nonce: [u8; 12] = hex(RFC_NONCE).try_into().unwrap();
    for v in variants() {
        let k = ChaCha20Poly1305::with_kernels(&key, v);
        let mut buf = RFC_PT.to_vec();
        let tag = k.seal_in_place(&nonce, &hex(RFC_AAD), &mut buf);
        assert_eq!(buf, hex(RFC_CT), "{}", v.variant);
        assert_eq!(tag.to_vec(), hex(RFC_TAG), "{}", v.variant);
        k.open_in_place(&nonce, &hex(RFC_AAD), &mut buf, &tag)
            .unwrap();
        assert_eq!(buf, RFC_PT);
    }
}

#[test]
fn wycheproof_kernels() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::ChaCha20Poly1305).unwrap();
    for v in variants() {
        let (mut passed, mut skipped) = (0, 0);
        for group in &set.test_groups {
            for t in &group.tests {
                if t.nonce.len() != 12 || t.key.len() != 32 || t.tag.len() != 16 {
                    skipped += 1;
                    continue;
                }
                let key: [u8; 32] = t.key[..].try_into().unwrap();
                let nonce: [u8; 12] = t.nonce[..].try_into().unwrap();
                let k = ChaCha20Poly1305::with_kernels(&key, v);
                let mut buf = t.pt.to_vec();
                let tag = k.seal_in_place(&nonce, &t.aad, &mut buf);
                let sealed_ok = buf == *t.ct && tag[..] == *t.tag;
                let mut c = t.ct.to_vec();
                let opened = k.open_in_place(&nonce, &t.aad, &mut c, &t.tag).is_ok();
                assert_eq!(sealed_ok, opened, "{}: tcId {}", v.variant, t.tc_id);
                let ok = opened && c == *t.pt;
                assert_eq!(
                    ok,
                    t.result != wycheproof::TestResult::Invalid,
                    "{}: tcId {}",
                    v.variant,
                    t.tc_id
                );
                passed += 1;
            }
        }
        eprintln!(
            "wycheproof chacha20-poly1305 ({}): {passed} passed, {skipped} skipped",
            v.variant
        );
    }
}

fn ring_seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> Vec<u8> {
    use ring::aead;
    let k = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::CHACHA20_POLY1305, key).unwrap());
    k.seal_in_place_separate_tag(
        aead::Nonce::assume_unique_for_key(*nonce),
        aead::Aad::from(aad),
        data,
    )
    .unwrap()
    .as_ref()
    .to_vec()
}

fn check_case(
    v: ChaChaKernels,
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    pt: &[u8],
    with_reference: bool,
) {
    let k = ChaCha20Poly1305::with_kernels(key, v);
    let n = pt.len();
    let name = v.variant;
    let mut ct = pt.to_vec();
    let tag = k.seal_in_place(nonce, aad, &mut ct);
    let mut ring_ct = pt.to_vec();
    let ring_tag = ring_seal(key, nonce, aad, &mut ring_ct);
    assert!(ct == ring_ct, "{name}: ct differs from ring, len {n}");
    assert_eq!(
        tag.to_vec(),
        ring_tag,
        "{name}: tag differs from ring, len {n}"
    );
    if with_reference {
        let mut r = pt.to_vec();
        let rt = reference::seal(key, nonce, aad, &mut r);
        assert!(
            r == ct && rt == tag,
            "{name}: differs from the reference, len {n}"
        );
    }
    let mut out = vec![0u8; n];
    assert_eq!(k.seal(nonce, aad, pt, &mut out), tag);
    assert!(out == ct, "{name}: out-of-place, len {n}");
    let mut back = vec![0u8; n];
    k.open(nonce, aad, &ct, &mut back, &tag).unwrap();
    assert!(back == pt);
    let mut inplace = ct.clone();
    k.open_in_place(nonce, aad, &mut inplace, &tag).unwrap();
    assert!(inplace == pt, "{name}: open, len {n}");
}

#[test]
fn differential_edge_lengths() {
    let mut rng = Rng(11);
    // Every tail, around each iteration size (3, 8 and 16 blocks) and
    // around the 2-/4-block quad steps of the leftover path.
    let lens = edge_lengths(
        80,
        &[192, 512, 1024],
        &[-65, -64, -63, -1, 0, 1, 63, 64, 65],
    );
    for v in variants() {
        for &n in &lens {
            let key: [u8; 32] = rng.array();
            let nonce: [u8; 12] = rng.array();
            let aad_len = rng.below(70);
            let aad = rng.bytes(aad_len);
            let pt = rng.bytes(n);
            check_case(v, &key, &nonce, &aad, &pt, n <= 700);
        }
    }
}

#[test]
fn differential_short_path_boundaries() {
    // The two-call short path: data of at most 192 B (AAD, data and lengths
    // padded within 256 B) and of at most 1,408 B (within 1,536 B), and the
    // AAD lengths that push a message just over either bound.
    let mut rng = Rng(13);
    let lens = [
        0, 1, 15, 16, 17, 63, 64, 65, 176, 191, 192, 193, 1343, 1350, 1392, 1407, 1408, 1409, 1472,
    ];
    let aad_lens = [
        0, 1, 13, 16, 17, 47, 48, 49, 64, 65, 112, 113, 128, 129, 200,
    ];
    for v in variants() {
        for &n in &lens {
            for &aad_len in &aad_lens {
                let key: [u8; 32] = rng.array();
                let nonce: [u8; 12] = rng.array();
                let aad = rng.bytes(aad_len);
                let pt = rng.bytes(n);
                check_case(v, &key, &nonce, &aad, &pt, false);
            }
        }
    }
}

#[test]
fn differential_mid_path() {
    // The mid path (keystream a chunk ahead, fused hash of what is ready):
    // its length ranges differ by variant and exclude lengths just over a
    // multiple of the chunk, so sweep 193 B to 4.2 KB and every chunk
    // multiple (192, 512, 1024) up to 4 KB with small offsets.
    let mut rng = Rng(14);
    let mut lens: Vec<usize> = (193..4200).step_by(37).collect();
    for chunk in [192usize, 512, 1024] {
        for k in 1..=4096 / chunk {
            for d in [-1isize, 0, 1, 63, 64, 65, 127, 128, 129] {
                lens.push((chunk * k).wrapping_add_signed(d));
            }
        }
    }
    lens.sort_unstable();
    lens.dedup();
    for v in variants() {
        for &n in &lens {
            let key: [u8; 32] = rng.array();
            let nonce: [u8; 12] = rng.array();
            let aad_len = [0, 5, 13, 16, 17, 100][rng.below(6)];
            let aad = rng.bytes(aad_len);
            let pt = rng.bytes(n);
            check_case(v, &key, &nonce, &aad, &pt, false);
        }
    }
}

#[test]
fn differential_random_lengths_to_64k() {
    let mut rng = Rng(12);
    for v in variants() {
        for i in 0..16 {
            let n = if i == 0 { 65536 } else { rng.below(65537) };
            let key: [u8; 32] = rng.array();
            let nonce: [u8; 12] = rng.array();
            let aad_len = rng.below(600);
            let aad = rng.bytes(aad_len);
            let pt = rng.bytes(n);
            check_case(v, &key, &nonce, &aad, &pt, i < 2);
        }
    }
}

#[test]
fn counter_wraps_at_32_bits_like_the_reference() {
    // RFC 8439 leaves the block counter 32 bits; crossing 2^32 must wrap the
    // counter word alone, in every lane of every variant.
    let key = [9u8; 32];
    let nonce = [3u8; 12];
    for v in variants() {
        let mut want = vec![0u8; 64 * 40];
        reference::chacha20_xor(&key, u32::MAX - 20, &nonce, &mut want);
        let mut got = vec![0u8; 64 * 40];
        kernels::aead::chacha::chacha20_xor_for_tests(v, &key, u32::MAX - 20, &nonce, &mut got);
        assert!(got == want, "{}", v.variant);
    }
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let mut rng = Rng(13);
    for v in variants() {
        for n in [0usize, 1, 64, 100, 1350] {
            let key: [u8; 32] = rng.array();
            let k = ChaCha20Poly1305::with_kernels(&key, v);
            let nonce: [u8; 12] = rng.array();
            let aad = rng.bytes(13);
            let mut ct = rng.bytes(n);
            let tag = k.seal_in_place(&nonce, &aad, &mut ct);
            for bit in 0..128 {
                let mut t = tag;
                t[bit / 8] ^= 1 << (bit % 8);
                let mut b = ct.clone();
                assert!(
                    k.open_in_place(&nonce, &aad, &mut b, &t).is_err(),
                    "{} tag bit {bit}",
                    v.variant
                );
                assert!(b.iter().all(|&x| x == 0));
            }
            let bits: Vec<usize> = if n <= 100 {
                (0..8 * n).collect()
            } else {
                (0..256).map(|_| rng.below(8 * n)).collect()
            };
            for bit in bits {
                let mut b = ct.clone();
                b[bit / 8] ^= 1 << (bit % 8);
                assert!(
                    k.open_in_place(&nonce, &aad, &mut b, &tag).is_err(),
                    "{} ct bit {bit}",
                    v.variant
                );
            }
        }
    }
}
