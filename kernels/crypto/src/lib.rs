//! A rustls [`CryptoProvider`] whose TLS 1.3 AEADs run on Marg's kernels.
//!
//! `TLS13_AES_128_GCM_SHA256` and `TLS13_AES_256_GCM_SHA384` seal and open
//! records with [`kernels::aead::AesGcm`] (AES-NI/VAES + (V)PCLMULQDQ, the
//! variant this CPU selects), `TLS13_CHACHA20_POLY1305_SHA256` with
//! [`kernels::aead::ChaCha20Poly1305`]. Everything else — HKDF and the
//! transcript hashes of those suites, key exchange, signatures, randomness
//! and the TLS 1.2 suites — comes from rustls' *ring* provider. On a CPU
//! without AES-NI the AES suites fall back to ring's (constant-time)
//! implementation, so the provider always works.
//!
//! ```
//! let config = rustls::ClientConfig::builder_with_provider(marg_crypto::provider().into())
//!     .with_safe_default_protocol_versions()
//!     .unwrap();
//! # drop(config);
//! ```
//!
//! Each suite also carries QUIC packet and header protection on the same
//! kernels ([`quic`]: RFC 9001 5.3-5.4), so quinn-style QUIC stacks get
//! them through `Tls13CipherSuite::quic`.

use kernels::aead::{AesGcm, ChaCha20Poly1305, TAG_LEN};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::crypto::CryptoProvider;
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};
use std::sync::OnceLock;

mod quic;

/// rustls' *ring* provider with the TLS 1.3 AES-GCM suites replaced by
/// Marg's kernels (when the CPU has AES-NI and PCLMULQDQ), in the same
/// preference order.
pub fn provider() -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    for s in p.cipher_suites.iter_mut() {
        if let Some(ours) = cipher_suites().iter().find(|m| m.suite() == s.suite()) {
            *s = *ours;
        }
    }
    p
}

/// The TLS 1.3 suites that run on Marg's kernels on this CPU (the AES-GCM
/// ones only with AES-NI/PCLMULQDQ).
pub fn cipher_suites() -> &'static [SupportedCipherSuite] {
    static SUITES: OnceLock<Vec<SupportedCipherSuite>> = OnceLock::new();
    SUITES.get_or_init(|| {
        use rustls::crypto::ring::cipher_suite as ring_suites;
        let mut v = Vec::new();
        if kernels::aead::aes_gcm_supported() {
            v.push(with_aead(
                ring_suites::TLS13_AES_256_GCM_SHA384,
                &AES_256_GCM,
                &quic::AES_256_GCM,
            ));
            v.push(with_aead(
                ring_suites::TLS13_AES_128_GCM_SHA256,
                &AES_128_GCM,
                &quic::AES_128_GCM,
            ));
        }
        v.push(with_aead(
            ring_suites::TLS13_CHACHA20_POLY1305_SHA256,
            &CHACHA20_POLY1305,
            &quic::CHACHA20_POLY1305,
        ));
        v
    })
}

/// `base` (a ring TLS 1.3 suite: its hash, HKDF and limits) with our AEAD.
fn with_aead(
    base: SupportedCipherSuite,
    aead: &'static dyn Tls13AeadAlgorithm,
    quic: &'static quic::Algorithm,
) -> SupportedCipherSuite {
    let b = base.tls13().expect("a TLS 1.3 suite");
    // Leaked once per process (the `OnceLock` above): suites are `'static`.
    SupportedCipherSuite::Tls13(Box::leak(Box::new(Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: b.common.suite,
            hash_provider: b.common.hash_provider,
            confidentiality_limit: b.common.confidentiality_limit,
        },
        hkdf_provider: b.hkdf_provider,
        aead_alg: aead,
        quic: Some(quic),
    })))
}

/// A record-protection key of one of our AEADs.
pub(crate) enum RecordKey {
    Gcm(AesGcm),
    ChaCha(ChaCha20Poly1305),
}

impl RecordKey {
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        match self {
            RecordKey::Gcm(k) => k.seal_in_place(nonce, aad, buf),
            RecordKey::ChaCha(k) => k.seal_in_place(nonce, aad, buf),
        }
    }

    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> bool {
        match self {
            RecordKey::Gcm(k) => k.open_in_place(nonce, aad, buf, tag).is_ok(),
            RecordKey::ChaCha(k) => k.open_in_place(nonce, aad, buf, tag).is_ok(),
        }
    }
}

/// The ChaCha20-Poly1305 record AEAD.
struct ChaChaAead;

static CHACHA20_POLY1305: ChaChaAead = ChaChaAead;

impl ChaChaAead {
    fn key(key: &AeadKey) -> RecordKey {
        let k: &[u8; 32] = key
            .as_ref()
            .try_into()
            .expect("rustls passes key_len() bytes");
        RecordKey::ChaCha(ChaCha20Poly1305::new(k))
    }
}

impl Tls13AeadAlgorithm for ChaChaAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(RecordCipher {
            key: ChaChaAead::key(&key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(RecordCipher {
            key: ChaChaAead::key(&key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        32
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv })
    }

    fn fips(&self) -> bool {
        false
    }
}

/// The record AEAD of one AES-GCM suite.
struct GcmAead {
    suite: CipherSuite,
    key_len: usize,
}

static AES_128_GCM: GcmAead = GcmAead {
    suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
    key_len: 16,
};
static AES_256_GCM: GcmAead = GcmAead {
    suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
    key_len: 32,
};

impl Tls13AeadAlgorithm for GcmAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        // rustls hands over exactly `key_len()` bytes.
        Box::new(RecordCipher {
            key: RecordKey::Gcm(AesGcm::new(key.as_ref())),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(RecordCipher {
            key: RecordKey::Gcm(AesGcm::new(key.as_ref())),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        self.key_len
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(match self.suite {
            CipherSuite::TLS13_AES_128_GCM_SHA256 => {
                ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            }
            _ => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
        })
    }

    fn fips(&self) -> bool {
        false
    }
}

/// One direction of a TLS 1.3 record layer.
struct RecordCipher {
    key: RecordKey,
    iv: Iv,
}

impl MessageEncrypter for RecordCipher {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = self.key.seal_in_place(&nonce, &aad, payload.as_mut());
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            // TLS 1.3 records carry the legacy version 0x0303 (RFC 8446 5.1).
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for RecordCipher {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(ct_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(payload.len());
        let (ct, tag) = payload.split_at_mut(ct_len);
        if !self.key.open_in_place(&nonce, &aad, ct, tag) {
            return Err(Error::DecryptError);
        }
        payload.truncate(ct_len);
        msg.into_tls13_unpadded_message()
    }
}
