//! The specification of ChaCha20-Poly1305: RFC 8439 sections 2.1-2.8,
//! written to be read next to the RFC.
//!
//! Poly1305 uses a small schoolbook big integer (32-bit limbs) so that the
//! arithmetic mod `2^130 - 5` is plainly what the RFC says. Not constant
//! time, not fast: production code never calls it.

/// The ChaCha quarter round on state words `a, b, c, d` (RFC 8439 2.1).
fn quarter_round(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

/// The initial state: constants, key, block counter, nonce (RFC 8439 2.3).
pub fn chacha20_state(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u32; 16] {
    let mut s = [0u32; 16];
    s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
    for i in 0..8 {
        s[4 + i] = u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().unwrap());
    }
    s[12] = counter;
    for i in 0..3 {
        s[13 + i] = u32::from_le_bytes(nonce[4 * i..4 * i + 4].try_into().unwrap());
    }
    s
}

/// The ChaCha20 block function (RFC 8439 2.3): 64 bytes of keystream.
pub fn chacha20_block(key: &[u8; 32], counter: u32, nonce: &[u8; 12]) -> [u8; 64] {
    let init = chacha20_state(key, counter, nonce);
    let mut s = init;
    for _ in 0..10 {
        quarter_round(&mut s, 0, 4, 8, 12); // columns
        quarter_round(&mut s, 1, 5, 9, 13);
        quarter_round(&mut s, 2, 6, 10, 14);
        quarter_round(&mut s, 3, 7, 11, 15);
        quarter_round(&mut s, 0, 5, 10, 15); // diagonals
        quarter_round(&mut s, 1, 6, 11, 12);
        quarter_round(&mut s, 2, 7, 8, 13);
        quarter_round(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 64];
    for i in 0..16 {
        out[4 * i..4 * i + 4].copy_from_slice(&s[i].wrapping_add(init[i]).to_le_bytes());
    }
    out
}

/// ChaCha20 encryption (RFC 8439 2.4): `data ^= keystream(counter..)`.
pub fn chacha20_xor(key: &[u8; 32], counter: u32, nonce: &[u8; 12], data: &mut [u8]) {
    for (j, chunk) in data.chunks_mut(64).enumerate() {
        let ks = chacha20_block(key, counter.wrapping_add(j as u32), nonce);
        for (d, k) in chunk.iter_mut().zip(&ks) {
            *d ^= k;
        }
    }
}

/// A non-negative integer as little-endian 32-bit limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_le_bytes(b: &[u8]) -> Big {
        let mut limbs = vec![0u32; b.len().div_ceil(4)];
        for (i, byte) in b.iter().enumerate() {
            limbs[i / 4] |= u32::from(*byte) << (8 * (i % 4));
        }
        Big(limbs)
    }

    fn add(&self, o: &Big) -> Big {
        let n = self.0.len().max(o.0.len()) + 1;
        let mut r = vec![0u32; n];
        let mut carry = 0u64;
        for (i, r) in r.iter_mut().enumerate() {
            let s = u64::from(*self.0.get(i).unwrap_or(&0))
                + u64::from(*o.0.get(i).unwrap_or(&0))
                + carry;
            *r = s as u32;
            carry = s >> 32;
        }
        Big(r)
    }

    fn mul(&self, o: &Big) -> Big {
        let mut r = vec![0u64; self.0.len() + o.0.len() + 1];
        for (i, a) in self.0.iter().enumerate() {
            let mut carry = 0u64;
            for (j, b) in o.0.iter().enumerate() {
                let t = r[i + j] + u64::from(*a) * u64::from(*b) + carry;
                r[i + j] = t & 0xffff_ffff;
                carry = t >> 32;
            }
            r[i + o.0.len()] += carry;
        }
        Big(r.into_iter().map(|x| x as u32).collect())
    }

    /// Bits `[130, ..)` and `[0, 130)`.
    fn split130(&self) -> (Big, Big) {
        let mut hi = Vec::new();
        for i in 4..self.0.len() {
            let lo_part = self.0[i] >> 2;
            let hi_part = self.0.get(i + 1).map_or(0, |x| x << 30);
            hi.push(lo_part | hi_part);
        }
        let mut lo: Vec<u32> = self.0.iter().take(5).copied().collect();
        lo.resize(5, 0);
        lo[4] &= 3;
        (Big(hi), Big(lo))
    }

    fn is_zero(&self) -> bool {
        self.0.iter().all(|&x| x == 0)
    }

    /// `self mod 2^130 - 5`, using `2^130 = 5 (mod p)`.
    fn reduce(&self) -> Big {
        let mut x = self.clone();
        loop {
            let (hi, lo) = x.split130();
            if hi.is_zero() {
                x = lo;
                break;
            }
            x = lo.add(&hi.mul(&Big(vec![5])));
        }
        // Now x < 2^130; subtract p once if x >= p.
        let p = Big(vec![0xffff_fffb, 0xffff_ffff, 0xffff_ffff, 0xffff_ffff, 3]);
        if x.ge(&p) {
            // x - p = x + 5 - 2^130
            let (_, lo) = x.add(&Big(vec![5])).split130();
            x = lo;
        }
        x
    }

    fn ge(&self, o: &Big) -> bool {
        let n = self.0.len().max(o.0.len());
        for i in (0..n).rev() {
            let (a, b) = (*self.0.get(i).unwrap_or(&0), *o.0.get(i).unwrap_or(&0));
            if a != b {
                return a > b;
            }
        }
        true
    }
}

/// Poly1305 (RFC 8439 2.5) of `msg` under the one-time key `key = r || s`.
pub fn poly1305(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
    let mut r = [0u8; 16];
    r.copy_from_slice(&key[..16]);
    // clamp(r)
    for i in [3, 7, 11, 15] {
        r[i] &= 15;
    }
    for i in [4, 8, 12] {
        r[i] &= 252;
    }
    let r = Big::from_le_bytes(&r);
    let s = Big::from_le_bytes(&key[16..]);
    let mut acc = Big(vec![0]);
    for chunk in msg.chunks(16) {
        let mut n = chunk.to_vec();
        n.push(1); // the 2^(8·len) bit
        acc = acc.add(&Big::from_le_bytes(&n)).mul(&r).reduce();
    }
    let t = acc.add(&s);
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (t.0[i / 4] >> (8 * (i % 4))) as u8;
    }
    out
}

/// The Poly1305 one-time key (RFC 8439 2.6): the first 32 bytes of block 0.
pub fn poly1305_key_gen(key: &[u8; 32], nonce: &[u8; 12]) -> [u8; 32] {
    chacha20_block(key, 0, nonce)[..32].try_into().unwrap()
}

/// The MAC input of the AEAD (RFC 8439 2.8): AAD, padding, ciphertext,
/// padding, then both lengths as 64-bit little-endian integers.
fn mac_data(aad: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut m = aad.to_vec();
    m.resize(aad.len().div_ceil(16) * 16, 0);
    m.extend_from_slice(ct);
    m.resize(m.len().div_ceil(16) * 16, 0);
    m.extend_from_slice(&(aad.len() as u64).to_le_bytes());
    m.extend_from_slice(&(ct.len() as u64).to_le_bytes());
    m
}

/// AEAD_CHACHA20_POLY1305 encryption in place; returns the tag.
pub fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8]) -> [u8; 16] {
    let otk = poly1305_key_gen(key, nonce);
    chacha20_xor(key, 1, nonce, data);
    poly1305(&otk, &mac_data(aad, data))
}

/// AEAD_CHACHA20_POLY1305 decryption in place; `false` (and `data`
/// untouched) when the tag does not match.
pub fn open(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], data: &mut [u8], tag: &[u8; 16]) -> bool {
    let otk = poly1305_key_gen(key, nonce);
    if poly1305(&otk, &mac_data(aad, data)) != *tag {
        return false;
    }
    chacha20_xor(key, 1, nonce, data);
    true
}
