//! The specification: AES (FIPS 197) and GCM (NIST SP 800-38D) written
//! bytewise, as close to the standards' pseudo-code as Rust allows.
//!
//! Nothing here is fast or constant time (the S-box is a table indexed by
//! secret bytes, GHASH branches on secret bits); it exists to be obviously
//! correct, so that every asm variant can be checked against it. Production
//! code never calls it.

/// The AES S-box (FIPS 197, Figure 7).
pub const SBOX: [u8; 256] = [
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
];

/// An expanded AES key: `rounds + 1` round keys of 16 bytes.
#[derive(Clone)]
pub struct AesKey {
    /// Round keys, as FIPS 197 words `w[4r..4r+4]` laid out as bytes.
    pub round_keys: Vec<[u8; 16]>,
}

/// Multiplication by `x` in GF(2^8) modulo `x^8 + x^4 + x^3 + x + 1`.
fn xtime(b: u8) -> u8 {
    (b << 1) ^ if b & 0x80 != 0 { 0x1b } else { 0 }
}

impl AesKey {
    /// KeyExpansion (FIPS 197, 5.2) for a 16-, 24- or 32-byte key.
    ///
    /// # Panics
    /// On any other key length.
    pub fn new(key: &[u8]) -> AesKey {
        let nk = key.len() / 4;
        assert!(
            matches!(key.len(), 16 | 24 | 32),
            "AES keys are 16, 24 or 32 bytes"
        );
        let rounds = nk + 6;
        let mut w: Vec<[u8; 4]> = key.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
        let mut rcon = 1u8;
        for i in nk..4 * (rounds + 1) {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = [
                    SBOX[t[1] as usize] ^ rcon,
                    SBOX[t[2] as usize],
                    SBOX[t[3] as usize],
                    SBOX[t[0] as usize],
                ];
                rcon = xtime(rcon);
            } else if nk > 6 && i % nk == 4 {
                t = t.map(|b| SBOX[b as usize]);
            }
            let p = w[i - nk];
            w.push([p[0] ^ t[0], p[1] ^ t[1], p[2] ^ t[2], p[3] ^ t[3]]);
        }
        let round_keys = w
            .chunks(4)
            .map(|c| {
                let mut k = [0u8; 16];
                for (j, word) in c.iter().enumerate() {
                    k[4 * j..4 * j + 4].copy_from_slice(word);
                }
                k
            })
            .collect();
        AesKey { round_keys }
    }

    /// The number of rounds (10, 12 or 14).
    pub fn rounds(&self) -> usize {
        self.round_keys.len() - 1
    }

    /// Cipher (FIPS 197, 5.1): encrypts one block. The state is the block
    /// in column-major order, byte `r + 4c` = row r, column c.
    pub fn encrypt_block(&self, block: &[u8; 16]) -> [u8; 16] {
        let mut s = *block;
        add_round_key(&mut s, &self.round_keys[0]);
        for r in 1..self.rounds() {
            sub_bytes(&mut s);
            shift_rows(&mut s);
            mix_columns(&mut s);
            add_round_key(&mut s, &self.round_keys[r]);
        }
        sub_bytes(&mut s);
        shift_rows(&mut s);
        add_round_key(&mut s, &self.round_keys[self.rounds()]);
        s
    }
}

fn add_round_key(s: &mut [u8; 16], k: &[u8; 16]) {
    for (b, k) in s.iter_mut().zip(k) {
        *b ^= k;
    }
}

fn sub_bytes(s: &mut [u8; 16]) {
    for b in s.iter_mut() {
        *b = SBOX[*b as usize];
    }
}

/// Row r is rotated left by r columns.
fn shift_rows(s: &mut [u8; 16]) {
    let t = *s;
    for r in 0..4 {
        for c in 0..4 {
            s[r + 4 * c] = t[r + 4 * ((c + r) % 4)];
        }
    }
}

/// Each column is multiplied by `{03}x^3 + {01}x^2 + {01}x + {02}`.
fn mix_columns(s: &mut [u8; 16]) {
    for c in 0..4 {
        let a = [s[4 * c], s[4 * c + 1], s[4 * c + 2], s[4 * c + 3]];
        for r in 0..4 {
            // 2*a[r] + 3*a[r+1] + a[r+2] + a[r+3]
            s[4 * c + r] = xtime(a[r])
                ^ (xtime(a[(r + 1) % 4]) ^ a[(r + 1) % 4])
                ^ a[(r + 2) % 4]
                ^ a[(r + 3) % 4];
        }
    }
}

/// Multiplication in GF(2^128) as SP 800-38D Algorithm 1 defines it: bit 0
/// of a block is the most significant bit of byte 0, and the reduction
/// polynomial is `R = 11100001 || 0^120`.
pub fn gf_mul(x: &[u8; 16], y: &[u8; 16]) -> [u8; 16] {
    let mut z = [0u8; 16];
    let mut v = *y;
    for i in 0..128 {
        if x[i / 8] >> (7 - i % 8) & 1 == 1 {
            for (z, v) in z.iter_mut().zip(&v) {
                *z ^= v;
            }
        }
        // V = V >> 1, then V ^= R if the bit shifted out was set.
        let lsb = v[15] & 1;
        for j in (1..16).rev() {
            v[j] = (v[j] >> 1) | (v[j - 1] << 7);
        }
        v[0] >>= 1;
        if lsb == 1 {
            v[0] ^= 0xe1;
        }
    }
    z
}

/// GHASH_H (SP 800-38D Algorithm 2) of `data` zero-padded to whole blocks,
/// continuing from the state `y`.
pub fn ghash_update(h: &[u8; 16], y: &mut [u8; 16], data: &[u8]) {
    for chunk in data.chunks(16) {
        let mut block = [0u8; 16];
        block[..chunk.len()].copy_from_slice(chunk);
        for (y, b) in y.iter_mut().zip(&block) {
            *y ^= b;
        }
        *y = gf_mul(y, h);
    }
}

/// The 32-bit counter increment `inc32` of SP 800-38D.
fn inc32(block: &mut [u8; 16]) {
    let c = u32::from_be_bytes([block[12], block[13], block[14], block[15]]).wrapping_add(1);
    block[12..].copy_from_slice(&c.to_be_bytes());
}

/// AES-GCM with a 16-byte tag, any key size and any nonce length >= 1.
#[derive(Clone)]
pub struct AesGcm {
    key: AesKey,
    h: [u8; 16],
}

impl AesGcm {
    /// Expands `key` (16, 24 or 32 bytes) and derives `H = E_K(0^128)`.
    pub fn new(key: &[u8]) -> AesGcm {
        let key = AesKey::new(key);
        let h = key.encrypt_block(&[0; 16]);
        AesGcm { key, h }
    }

    /// The hash subkey `H`.
    pub fn h(&self) -> [u8; 16] {
        self.h
    }

    /// The pre-counter block J0 (SP 800-38D 7.1 step 2).
    fn j0(&self, nonce: &[u8]) -> [u8; 16] {
        if nonce.len() == 12 {
            let mut j = [0u8; 16];
            j[..12].copy_from_slice(nonce);
            j[15] = 1;
            j
        } else {
            let mut y = [0u8; 16];
            ghash_update(&self.h, &mut y, nonce);
            let mut len = [0u8; 16];
            len[8..].copy_from_slice(&(nonce.len() as u64 * 8).to_be_bytes());
            ghash_update(&self.h, &mut y, &len);
            y
        }
    }

    /// GCTR (SP 800-38D Algorithm 3) from counter block `icb`, in place.
    fn gctr(&self, icb: [u8; 16], data: &mut [u8]) {
        let mut cb = icb;
        for chunk in data.chunks_mut(16) {
            let ks = self.key.encrypt_block(&cb);
            for (d, k) in chunk.iter_mut().zip(&ks) {
                *d ^= k;
            }
            inc32(&mut cb);
        }
    }

    /// The tag of `(aad, ciphertext)` under pre-counter block `j0`.
    fn tag(&self, j0: [u8; 16], aad: &[u8], ct: &[u8]) -> [u8; 16] {
        let mut s = [0u8; 16];
        ghash_update(&self.h, &mut s, aad);
        ghash_update(&self.h, &mut s, ct);
        let mut len = [0u8; 16];
        len[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        len[8..].copy_from_slice(&(ct.len() as u64 * 8).to_be_bytes());
        ghash_update(&self.h, &mut s, &len);
        let mut t = self.key.encrypt_block(&j0);
        for (t, s) in t.iter_mut().zip(&s) {
            *t ^= s;
        }
        t
    }

    /// Encrypts `data` in place; returns the tag.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
        let j0 = self.j0(nonce);
        let mut icb = j0;
        inc32(&mut icb);
        self.gctr(icb, data);
        self.tag(j0, aad, data)
    }

    /// Checks `tag` and decrypts `data` in place; on a bad tag `data` is
    /// left as it was and the result is `false`.
    pub fn open(&self, nonce: &[u8], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
        let j0 = self.j0(nonce);
        if self.tag(j0, aad, data) != *tag {
            return false;
        }
        let mut icb = j0;
        inc32(&mut icb);
        self.gctr(icb, data);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn fips197_appendix_c() {
        let pt: [u8; 16] = hex("00112233445566778899aabbccddeeff").try_into().unwrap();
        let k128 = AesKey::new(&hex("000102030405060708090a0b0c0d0e0f"));
        assert_eq!(
            k128.encrypt_block(&pt).to_vec(),
            hex("69c4e0d86a7b0430d8cdb78070b4c55a")
        );
        let k192 = AesKey::new(&hex("000102030405060708090a0b0c0d0e0f1011121314151617"));
        assert_eq!(
            k192.encrypt_block(&pt).to_vec(),
            hex("dda97ca4864cdfe06eaf70a0ec0d7191")
        );
        let k256 = AesKey::new(&hex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        ));
        assert_eq!(
            k256.encrypt_block(&pt).to_vec(),
            hex("8ea2b7ca516745bfeafc49904b496089")
        );
    }
}
