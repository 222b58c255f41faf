//! Subjects for the AEAD kernels (`kernels::aead`): AES-GCM and
//! ChaCha20-Poly1305 seal and open of every runnable variant against the
//! references, with the message and the AAD each placed against a guard
//! page.

use crate::guard::{Guarded, Placement};
use crate::{Case, Subject};
use kernels::aead::{asm, chacha_asm, chacha_reference, reference, AesGcm, GcmKernels};
use kernels::aead::{ChaCha20Poly1305, ChaChaKernels};
use marg_gen::rt::{KernelMeta, VariantMeta};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// AES-GCM seal + open (the `aes_gcm_seal` kernel's variants name the
/// `ghash`/`aes_gcm_open` variants used alongside). `params[0]` bit 0
/// selects AES-256; the key and nonce are derived from the params.
struct AesGcmSubject;

impl Subject for AesGcmSubject {
    fn meta(&self) -> &'static KernelMeta {
        asm::AES_GCM_SEAL.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        // Lengths biased to 0..=600 bytes (every tail and 1-2 chunks of 8 or
        // 16 blocks), one case in 17 up to 64 KiB; AAD 0..=80 bytes.
        let len = prop_oneof![16 => 0..=600usize, 1 => 600..=65536usize];
        (
            len.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
            prop::collection::vec(any::<u8>(), 0..=80),
            any::<[u8; 3]>(),
        )
            .prop_map(|(a, b, params)| Case { a, b, params })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let kernels = GcmKernels::variant(v.name).map_err(|e| e.to_string())?;
        let [k, n, m] = case.params;
        let key_len = if k & 1 == 1 { 32 } else { 16 };
        let key: Vec<u8> = (0..key_len)
            .map(|i| k ^ n.wrapping_mul(i as u8) ^ m)
            .collect();
        let nonce: Vec<u8> = (0..12u8)
            .map(|i| n.wrapping_add(i).rotate_left(u32::from(m & 7)))
            .collect();
        let g = AesGcm::with_kernels(&key, kernels);
        let mut buf = Guarded::new(&case.a, p);
        let aad = Guarded::new(&case.b, p);
        let tag = g.seal_in_place(&nonce, aad.bytes(), buf.bytes_mut());
        let mut want = case.a.clone();
        let want_tag = reference::AesGcm::new(&key).seal(&nonce, &case.b, &mut want);
        if buf.bytes() != want || tag != want_tag {
            return Err(format!(
                "seal differs from the reference: {} bytes, aad {} bytes, key {} bits",
                case.a.len(),
                case.b.len(),
                key_len * 8
            ));
        }
        g.open_in_place(&nonce, aad.bytes(), buf.bytes_mut(), &tag)
            .map_err(|e| format!("open of a sealed message: {e}"))?;
        if buf.bytes() != case.a {
            return Err(format!("open did not restore {} bytes", case.a.len()));
        }
        let mut forged = tag;
        forged[usize::from(m) % 16] ^= 1 << (n % 8);
        let mut c = Guarded::new(&want, p);
        if g.open_in_place(&nonce, aad.bytes(), c.bytes_mut(), &forged)
            .is_ok()
        {
            return Err("open accepted a forged tag".into());
        }
        Ok(())
    }
}

static AES_GCM: AesGcmSubject = AesGcmSubject;

/// Messages biased to 0..=1100 bytes (every tail, one or two iterations of
/// 3, 8 or 16 blocks), then to the rest of the mid path (up to 4 KiB plus a
/// chunk), one case in 21 up to 64 KiB; AAD 0..=80 bytes.
fn message_aad_params() -> BoxedStrategy<Case> {
    let len = prop_oneof![
        16 => 0..=1100usize,
        4 => 1100..=5200usize,
        1 => 5200..=65536usize
    ];
    (
        len.prop_flat_map(|n| prop::collection::vec(any::<u8>(), n)),
        prop::collection::vec(any::<u8>(), 0..=80),
        any::<[u8; 3]>(),
    )
        .prop_map(|(a, b, params)| Case { a, b, params })
        .boxed()
}

/// ChaCha20-Poly1305 seal + open (variants of `chacha20_xor`, which name
/// the fused and Poly1305 variants used alongside). Key and nonce are
/// derived from the params.
struct ChaChaSubject;

impl Subject for ChaChaSubject {
    fn meta(&self) -> &'static KernelMeta {
        chacha_asm::CHACHA20_XOR.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        message_aad_params()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let kernels = ChaChaKernels::variant(v.name).map_err(|e| e.to_string())?;
        let [k, n, m] = case.params;
        let key: [u8; 32] = core::array::from_fn(|i| k ^ n.wrapping_mul(i as u8) ^ m);
        let nonce: [u8; 12] = core::array::from_fn(|i| n.wrapping_add(i as u8) ^ k);
        let c = ChaCha20Poly1305::with_kernels(&key, kernels);
        let mut buf = Guarded::new(&case.a, p);
        let aad = Guarded::new(&case.b, p);
        let tag = c.seal_in_place(&nonce, aad.bytes(), buf.bytes_mut());
        let mut want = case.a.clone();
        let want_tag = chacha_reference::seal(&key, &nonce, &case.b, &mut want);
        if buf.bytes() != want || tag != want_tag {
            return Err(format!(
                "seal differs from the reference: {} bytes, aad {} bytes",
                case.a.len(),
                case.b.len()
            ));
        }
        c.open_in_place(&nonce, aad.bytes(), buf.bytes_mut(), &tag)
            .map_err(|e| format!("open of a sealed message: {e}"))?;
        if buf.bytes() != case.a {
            return Err(format!("open did not restore {} bytes", case.a.len()));
        }
        let mut forged = tag;
        forged[usize::from(m) % 16] ^= 1 << (n % 8);
        let mut g = Guarded::new(&want, p);
        if c.open_in_place(&nonce, aad.bytes(), g.bytes_mut(), &forged)
            .is_ok()
        {
            return Err("open accepted a forged tag".into());
        }
        Ok(())
    }
}

static CHACHA20_POLY1305: ChaChaSubject = ChaChaSubject;

/// The AEAD subjects.
pub fn subjects() -> Vec<&'static dyn Subject> {
    vec![&AES_GCM, &CHACHA20_POLY1305]
}
