//! QUIC packet and header protection (RFC 9001 5.3-5.4) on Marg's kernels.
//!
//! Packet protection is the suite's AEAD with the header as AAD and the
//! nonce `iv ^ packet_number`; header protection masks the first byte's low
//! bits and the packet number with 5 bytes derived from a 16-byte sample of
//! the ciphertext: `AES-ECB(hp_key, sample)` for the AES suites,
//! `ChaCha20(hp_key, counter = sample[0..4], nonce = sample[4..16])` for
//! ChaCha20-Poly1305.

use crate::RecordKey;
use kernels::aead::{AesGcm, ChaCha20Poly1305, TAG_LEN};
use rustls::crypto::cipher::{AeadKey, Iv, Nonce};
use rustls::quic::{self, Tag};
use rustls::Error;

/// Which AEAD a QUIC algorithm uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// A suite's QUIC packet and header protection.
pub(crate) struct Algorithm {
    pub(crate) kind: Kind,
    /// RFC 9001 6.6 / B.1: packets per key.
    pub(crate) confidentiality_limit: u64,
    pub(crate) integrity_limit: u64,
}

pub(crate) static AES_128_GCM: Algorithm = Algorithm {
    kind: Kind::Aes128Gcm,
    confidentiality_limit: 1 << 23,
    integrity_limit: 1 << 52,
};
pub(crate) static AES_256_GCM: Algorithm = Algorithm {
    kind: Kind::Aes256Gcm,
    confidentiality_limit: 1 << 23,
    integrity_limit: 1 << 52,
};
pub(crate) static CHACHA20_POLY1305: Algorithm = Algorithm {
    kind: Kind::ChaCha20Poly1305,
    confidentiality_limit: u64::MAX,
    integrity_limit: 1 << 36,
};

impl quic::Algorithm for Algorithm {
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn quic::PacketKey> {
        Box::new(PacketKey {
            key: match self.kind {
                Kind::ChaCha20Poly1305 => RecordKey::ChaCha(ChaCha20Poly1305::new(
                    key.as_ref()
                        .try_into()
                        .expect("rustls passes aead_key_len() bytes"),
                )),
                _ => RecordKey::Gcm(AesGcm::new(key.as_ref())),
            },
            iv,
            confidentiality_limit: self.confidentiality_limit,
            integrity_limit: self.integrity_limit,
        })
    }

    fn header_protection_key(&self, key: AeadKey) -> Box<dyn quic::HeaderProtectionKey> {
        Box::new(match self.kind {
            Kind::ChaCha20Poly1305 => HeaderKey::ChaCha(ChaCha20Poly1305::new(
                key.as_ref()
                    .try_into()
                    .expect("rustls passes aead_key_len() bytes"),
            )),
            _ => HeaderKey::Aes(AesGcm::new(key.as_ref())),
        })
    }

    fn aead_key_len(&self) -> usize {
        match self.kind {
            Kind::Aes128Gcm => 16,
            _ => 32,
        }
    }

    fn fips(&self) -> bool {
        false
    }
}

/// Header protection under the hp key.
enum HeaderKey {
    Aes(AesGcm),
    ChaCha(ChaCha20Poly1305),
}

impl HeaderKey {
    /// The 5-byte mask for `sample` (RFC 9001 5.4.3 / 5.4.4).
    fn mask(&self, sample: &[u8]) -> Result<[u8; 5], Error> {
        let sample: &[u8; 16] = sample
            .try_into()
            .map_err(|_| Error::General("sample of invalid length".into()))?;
        let mut mask = [0u8; 5];
        match self {
            HeaderKey::Aes(k) => {
                let mut b = *sample;
                k.encrypt_block(&mut b);
                mask.copy_from_slice(&b[..5]);
            }
            HeaderKey::ChaCha(k) => {
                let counter = u32::from_le_bytes(sample[..4].try_into().unwrap());
                let nonce: [u8; 12] = sample[4..].try_into().unwrap();
                mask.copy_from_slice(&k.keystream_block(counter, &nonce)[..5]);
            }
        }
        Ok(mask)
    }

    /// RFC 9001 5.4.1: masks (or unmasks, `masked`) the low 4 (long
    /// header) or 5 (short header) bits of `first` and the packet number,
    /// whose length comes from the unmasked first byte.
    fn apply(
        &self,
        sample: &[u8],
        first: &mut u8,
        pn: &mut [u8],
        masked: bool,
    ) -> Result<(), Error> {
        let mask = self.mask(sample)?;
        if pn.len() > 4 {
            return Err(Error::General("packet number too long".into()));
        }
        let bits = if *first & 0x80 != 0 { 0x0f } else { 0x1f };
        let first_plain = if masked {
            *first ^ (mask[0] & bits)
        } else {
            *first
        };
        let pn_len = usize::from(first_plain & 0x03) + 1;
        *first ^= mask[0] & bits;
        for (p, m) in pn.iter_mut().zip(&mask[1..]).take(pn_len) {
            *p ^= m;
        }
        Ok(())
    }
}

impl quic::HeaderProtectionKey for HeaderKey {
    fn encrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, false)
    }

    fn decrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, true)
    }

    fn sample_len(&self) -> usize {
        16
    }
}

/// Packet protection under one packet key.
struct PacketKey {
    key: RecordKey,
    iv: Iv,
    confidentiality_limit: u64,
    integrity_limit: u64,
}

impl quic::PacketKey for PacketKey {
    fn encrypt_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<Tag, Error> {
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let tag = self.key.seal_in_place(&nonce, header, payload);
        Ok(Tag::from(&tag[..]))
    }

    fn decrypt_in_place<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let Some(ct_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let (ct, tag) = payload.split_at_mut(ct_len);
        if !self.key.open_in_place(&nonce, header, ct, tag) {
            return Err(Error::DecryptError);
        }
        Ok(&payload[..ct_len])
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn confidentiality_limit(&self) -> u64 {
        self.confidentiality_limit
    }

    fn integrity_limit(&self) -> u64 {
        self.integrity_limit
    }
}
