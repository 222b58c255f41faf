//! ChaCha20-Poly1305 (RFC 8439) on the [`chacha_asm`](super::chacha_asm)
//! kernels. The bulk of a message goes through the fused kernel (ChaCha20
//! of `PB` blocks per iteration with the scalar Poly1305 of `4·PB` blocks in
//! its shadow): open hashes each chunk as it decrypts it; seal encrypts the
//! first chunk alone and then hashes chunk `i - 1` while encrypting chunk
//! `i`. What is left (the last chunk for seal, whole blocks short of a
//! chunk, a final partial block) goes through the plain ChaCha20 and
//! Poly1305 kernels. Short messages (up to 192 B; sealed ones up to 1,408 B)
//! take two kernel calls instead: one ChaCha20 call for the Poly1305 key
//! block and the keystream, one Poly1305 call over a local padded
//! AAD | ciphertext | lengths buffer. Messages of a few chunks (per-variant
//! ranges up to 4 KiB, `mid_ranges`) take the mid path: the keystream is
//! made a chunk ahead into a local buffer, each further chunk fused with
//! the Poly1305 of the ciphertext that is ready
//! (`ChaCha20Poly1305::crypt_mid`). The final Poly1305 reduction and
//! `+ s` are constant-time Rust (`u64`/`u128` arithmetic, masks, no
//! branches on data).

use super::chacha_asm::{self as asm, ChaChaFn, FusedFn, FusedKsFn, PolyFn};
use super::{check_tag, Unauthentic, NONCE_LEN, TAG_LEN};
use marg_gen::rt::SelectError;

/// One variant of the ChaCha20 and fused kernels (Poly1305 has only
/// `baseline`).
#[derive(Clone, Copy, Debug)]
pub struct ChaChaKernels {
    /// The ChaCha20 variant's name.
    pub variant: &'static str,
    chacha: ChaChaFn,
    fused: FusedFn,
    fused_ks: FusedKsFn,
    /// Blocks per iteration of the fused kernel.
    pb: usize,
    /// Blocks per register (`width / 16`): the short path rounds its block
    /// count up to a multiple so that no block runs alone.
    lanes: usize,
    /// Message lengths (inclusive) that seal and open send through
    /// [`ChaCha20Poly1305::crypt_mid`] (see [`mid_ranges`]).
    mid_seal: (usize, usize),
    mid_open: (usize, usize),
    poly: PolyFn,
}

/// The lengths for which [`ChaCha20Poly1305::crypt_mid`] beat the other
/// paths on the development host (Sapphire Rapids; `kernels/benches/aead.rs`
/// and a sweep of 200 B to 4 KB), `(seal, open)`. Below them the short path
/// (seal) or the plain kernels win, because the mid path always makes whole
/// chunks; the scalar `baseline` variant's open gains nothing.
fn mid_ranges(w: u32) -> ((usize, usize), (usize, usize)) {
    match w {
        16 => ((400, SHORT_MAX), (1, 0)),
        32 => ((513, MID_MAX), (193, MID_MAX)),
        _ => ((1000, MID_MAX), (400, MID_MAX)),
    }
}

/// Blocks per iteration of a ChaCha20 variant of width `w` (3 quads of
/// 16-byte lanes at 16 bytes, 4 at 64; the vertical AVX2 layout makes 8).
fn blocks_per_iter(w: u32) -> usize {
    match w {
        16 => 3,
        32 => 8,
        _ => 16,
    }
}

impl ChaChaKernels {
    /// The variant this CPU selects for `chacha20_xor`; the fused kernel
    /// uses the variant of the same name (its chunk size must match).
    ///
    /// # Panics
    /// If selection fails (a forced variant the CPU lacks).
    pub fn selected() -> ChaChaKernels {
        let v = asm::CHACHA20_XOR
            .selected()
            .unwrap_or_else(|e| panic!("marg kernels: {e}"));
        ChaChaKernels::variant(v.name).unwrap_or_else(|e| panic!("marg kernels: {e}"))
    }

    /// The ChaCha20 variant `name`.
    pub fn variant(name: &'static str) -> Result<ChaChaKernels, SelectError> {
        let meta =
            asm::CHACHA20_XOR
                .meta()
                .variant(name)
                .ok_or_else(|| SelectError::UnknownVariant {
                    kernel: "chacha20_xor",
                    variant: name.to_string(),
                })?;
        Ok(ChaChaKernels {
            variant: name,
            chacha: asm::CHACHA20_XOR.variant(name)?,
            fused: asm::CHACHA20_POLY1305_XOR.variant(name)?,
            fused_ks: asm::CHACHA20_POLY1305_KS.variant(name)?,
            pb: blocks_per_iter(meta.width),
            lanes: meta.width as usize / 16,
            mid_seal: mid_ranges(meta.width).0,
            mid_open: mid_ranges(meta.width).1,
            poly: asm::POLY1305_BLOCKS.get(),
        })
    }

    /// Every variant this host can run, and the names of those skipped.
    pub fn runnable() -> (Vec<ChaChaKernels>, Vec<&'static str>) {
        super::runnable_with(asm::CHACHA20_XOR.meta(), ChaChaKernels::variant)
    }
}

/// The 16-word ChaCha20 input state, aligned as the SSE kernel's loads need.
#[repr(C, align(64))]
struct State([u32; 16]);

/// Poly1305 accumulator and key: `[h0, h1, h2, r0, r1]`, plus `s`.
struct Poly {
    st: [u64; 5],
    s: u128,
    f: PolyFn,
}

impl Poly {
    fn new(otk: &[u8; 32], f: PolyFn) -> Poly {
        let r = u128::from_le_bytes(otk[..16].try_into().unwrap())
            & 0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff;
        Poly {
            st: [0, 0, 0, r as u64, (r >> 64) as u64],
            s: u128::from_le_bytes(otk[16..].try_into().unwrap()),
            f,
        }
    }

    /// Absorbs `data` zero-padded to whole 16-byte blocks.
    fn update_padded(&mut self, data: &[u8]) {
        let whole = data.len() / 16;
        // SAFETY: reads `whole` blocks of `data`; writes only `st`.
        unsafe { (self.f)(self.st.as_mut_ptr(), data.as_ptr(), whole, 1) };
        let rest = &data[whole * 16..];
        if !rest.is_empty() {
            let mut block = [0u8; 16];
            block[..rest.len()].copy_from_slice(rest);
            // SAFETY: one block from a local buffer.
            unsafe { (self.f)(self.st.as_mut_ptr(), block.as_ptr(), 1, 1) };
        }
    }

    /// `(h mod p) + s mod 2^128`, branch-free.
    fn finish(&self) -> [u8; 16] {
        let [h0, h1, h2, _, _] = self.st;
        // g = h + 5 - 2^130; use g iff it did not go negative.
        let (g0, c) = h0.overflowing_add(5);
        let (g1, c) = h1.overflowing_add(u64::from(c));
        let g2 = h2.wrapping_add(u64::from(c));
        let mask = 0u64.wrapping_sub(g2 >> 2); // all ones iff h + 5 >= 2^130
        let f0 = (h0 & !mask) | (g0 & mask);
        let f1 = (h1 & !mask) | (g1 & mask);
        let h = u128::from(f0) | (u128::from(f1) << 64);
        h.wrapping_add(self.s).to_le_bytes()
    }
}

/// Messages of at most 192 bytes (AAD, data and lengths padded within 256)
/// go through [`ChaCha20Poly1305::crypt_short`]; so do sealed ones of at
/// most this many bytes (padded within `SHORT_MAX + 128`).
const SHORT_MAX: usize = 1408;

/// The longest message for [`ChaCha20Poly1305::crypt_mid`]; its keystream
/// buffer is sized for `MID_SMALL` or `MID_MAX` bytes (plus the Poly1305
/// key block rounded up to a chunk of at most 1 KiB).
const MID_MAX: usize = 4096;
const MID_SMALL: usize = 1536;

/// `out = inp ^ ks` (`inp == None`: in place), over `out.len()` bytes.
fn xor_keystream(out: &mut [u8], inp: Option<&[u8]>, ks: &[u8]) {
    let ks = &ks[..out.len()];
    match inp {
        Some(i) => {
            for ((o, x), k) in out.iter_mut().zip(i).zip(ks) {
                *o = x ^ k;
            }
        }
        None => {
            for (o, k) in out.iter_mut().zip(ks) {
                *o ^= k;
            }
        }
    }
}

/// ChaCha20-Poly1305 under one 32-byte key.
pub struct ChaCha20Poly1305 {
    key: [u8; 32],
    kernels: ChaChaKernels,
}

impl Drop for ChaCha20Poly1305 {
    fn drop(&mut self) {
        // SAFETY: `key` is valid for writes; volatile so the wipe stays.
        unsafe { core::ptr::write_volatile(&mut self.key, [0; 32]) };
    }
}

impl ChaCha20Poly1305 {
    /// A key with the selected kernels.
    pub fn new(key: &[u8; 32]) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::with_kernels(key, ChaChaKernels::selected())
    }

    /// A key with the given kernel variant.
    pub fn with_kernels(key: &[u8; 32], kernels: ChaChaKernels) -> ChaCha20Poly1305 {
        ChaCha20Poly1305 { key: *key, kernels }
    }

    fn state(&self, counter: u32, nonce: &[u8; NONCE_LEN]) -> State {
        let mut s = [0u32; 16];
        s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        for i in 0..8 {
            s[4 + i] = u32::from_le_bytes(self.key[4 * i..4 * i + 4].try_into().unwrap());
        }
        s[12] = counter;
        for i in 0..3 {
            s[13 + i] = u32::from_le_bytes(nonce[4 * i..4 * i + 4].try_into().unwrap());
        }
        State(s)
    }

    /// `out = in ^ keystream` from block counter `counter`; `inp == None`
    /// means in place.
    fn xor(&self, st: &mut State, inp: Option<&[u8]>, out: &mut [u8]) {
        let whole = out.len() / 64;
        let src = inp.map_or(out.as_ptr(), |i| i.as_ptr());
        // SAFETY: reads `whole` blocks at `src` (`out` itself or a slice of
        // the same length) and writes them at `out`; `st` is aligned.
        unsafe { (self.kernels.chacha)(st.0.as_ptr(), src, out.as_mut_ptr(), whole) };
        let rest = out.len() - whole * 64;
        if rest > 0 {
            st.0[12] = st.0[12].wrapping_add(whole as u32);
            let mut ks = [0u8; 64];
            let p = ks.as_mut_ptr();
            // SAFETY: one block in and out of a local buffer.
            unsafe { (self.kernels.chacha)(st.0.as_ptr(), p, p, 1) };
            let tail_in = inp.map_or(&out[whole * 64..], |i| &i[whole * 64..]);
            let mut t = [0u8; 64];
            t[..rest].copy_from_slice(tail_in);
            for ((o, i), k) in out[whole * 64..].iter_mut().zip(&t).zip(&ks) {
                *o = i ^ k;
            }
        }
    }

    fn crypt(
        &self,
        seal: bool,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        inp: Option<&[u8]>,
        out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let len = out.len();
        let padded = aad.len().next_multiple_of(16) + len.next_multiple_of(16) + 16;
        if len <= 256 - 64 && padded <= 256 {
            return self.crypt_short::<256, 256>(seal, nonce, aad, inp, out);
        }
        let (lo, hi) = if seal {
            self.kernels.mid_seal
        } else {
            self.kernels.mid_open
        };
        // The mid path makes whole chunks from block 0, so whole chunks of
        // data cost it one more; the fused open path below handles a
        // multiple of the chunk plus at most one block better.
        let tail = len % (64 * self.kernels.pb);
        let fits = if seal { tail != 0 } else { tail > 64 };
        if (lo..=hi).contains(&len) && (len < 64 * self.kernels.pb || fits) {
            return if len <= MID_SMALL {
                self.crypt_mid::<{ MID_SMALL + 64 + 1024 }>(seal, nonce, aad, inp, out)
            } else {
                self.crypt_mid::<{ MID_MAX + 64 + 1024 }>(seal, nonce, aad, inp, out)
            };
        }
        // Open keeps the fused kernel from 1 KiB up, where it hides the
        // ChaCha20 under Poly1305; seal's first chunk is never fused.
        if seal && len <= SHORT_MAX && padded <= SHORT_MAX + 128 {
            return self.crypt_short::<{ SHORT_MAX + 128 }, { SHORT_MAX + 128 }>(
                seal, nonce, aad, inp, out,
            );
        }
        let mut st = self.state(0, nonce);
        let mut block0 = [0u8; 64];
        let p = block0.as_mut_ptr();
        // SAFETY: one block in and out of a local buffer.
        unsafe { (self.kernels.chacha)(st.0.as_ptr(), p, p, 1) };
        let mut poly = Poly::new(block0[..32].try_into().unwrap(), self.kernels.poly);
        wipe(&mut block0);
        poly.update_padded(aad);
        st.0[12] = 1;
        let chunk = 64 * self.kernels.pb;
        let iters = len / chunk;
        let src = inp.map_or(out.as_ptr(), |i| i.as_ptr());
        let dst = out.as_mut_ptr();
        let mut hashed = 0;
        if seal && iters > 0 {
            // SAFETY: the first chunk: `chunk <= len` bytes read at `src`
            // and written at `dst` (equal, or distinct slices of `len`).
            unsafe { (self.kernels.chacha)(st.0.as_ptr(), src, dst, self.kernels.pb) };
            st.0[12] = st.0[12].wrapping_add(self.kernels.pb as u32);
            // SAFETY: `iters - 1` chunks from offset `chunk` (in bounds:
            // `iters · chunk <= len`); hashes `(iters - 1) · chunk` bytes of
            // `out` from its start, each written an iteration earlier.
            unsafe {
                (self.kernels.fused)(
                    st.0.as_ptr(),
                    src.add(chunk),
                    dst.add(chunk),
                    iters - 1,
                    poly.st.as_mut_ptr(),
                    dst,
                )
            };
            hashed = (iters - 1) * chunk;
        } else if !seal {
            // SAFETY: `iters` chunks (in bounds), hashing the ciphertext at
            // `src` chunk by chunk before each is overwritten.
            unsafe {
                (self.kernels.fused)(st.0.as_ptr(), src, dst, iters, poly.st.as_mut_ptr(), src)
            };
            hashed = iters * chunk;
            poly.update_padded(&inp.unwrap_or(out)[hashed..]);
        }
        let done = iters * chunk;
        st.0[12] = 1u32.wrapping_add((done / 64) as u32);
        self.xor(&mut st, inp.map(|i| &i[done..]), &mut out[done..]);
        if seal {
            poly.update_padded(&out[hashed..]);
        }
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(out.len() as u64).to_le_bytes());
        poly.update_padded(&lens);
        poly.finish()
    }

    /// A message of a few chunks: the keystream is made a chunk ahead into
    /// a local buffer of `KS` bytes (block 0, the Poly1305 key, with the
    /// first chunk), and each further chunk's ChaCha20 is fused with the
    /// Poly1305 of as many whole ciphertext blocks as are ready: all of
    /// them for open, those xored so far for seal (one chunk per call).
    /// The AAD, a final partial block and the lengths are hashed by
    /// `poly1305_blocks`. `KS` must hold `⌈(1 + ⌈len/64⌉)/PB⌉` chunks.
    fn crypt_mid<const KS: usize>(
        &self,
        seal: bool,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        inp: Option<&[u8]>,
        out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let len = out.len();
        let pb = self.kernels.pb;
        let chunk = 64 * pb;
        let iters = (1 + len.div_ceil(64)).div_ceil(pb);
        assert!(iters * chunk <= KS);
        let mut st = self.state(0, nonce);
        let mut ks = [0u8; KS];
        let p = ks.as_mut_ptr();
        // SAFETY: one chunk (`pb` blocks) in and out of a local buffer.
        unsafe { (self.kernels.chacha)(st.0.as_ptr(), p, p, pb) };
        let mut poly = Poly::new(ks[..32].try_into().unwrap(), self.kernels.poly);
        poly.update_padded(aad);
        // Whole ciphertext blocks: `ready` of them can be hashed now.
        let whole = len / 16;
        let mut ready = whole;
        let mut ct_done = 0;
        if seal {
            ct_done = len.min(chunk - 64);
            xor_keystream(&mut out[..ct_done], inp.map(|i| &i[..ct_done]), &ks[64..]);
            ready = ct_done / 16;
        }
        let mut hashed = 0;
        let mut it = 1;
        while it < iters {
            // Open: every remaining chunk in one call; seal: one at a time.
            let n = if seal { 1 } else { iters - it };
            let nh = (ready - hashed).min(n * 4 * pb);
            let ct = if seal { &*out } else { inp.unwrap_or(out) };
            st.0[12] = (it * pb) as u32;
            // SAFETY: `n` chunks in place in `ks` (`(it + n)·chunk <= KS`);
            // hashes `nh` blocks of the ciphertext from block `hashed`
            // (`hashed + nh <= ready <= len / 16`).
            unsafe {
                (self.kernels.fused_ks)(
                    st.0.as_ptr(),
                    p.add(it * chunk),
                    n,
                    poly.st.as_mut_ptr(),
                    ct.as_ptr().add(16 * hashed),
                    nh,
                )
            };
            hashed += nh;
            it += n;
            if seal {
                let end = len.min(it * chunk - 64);
                xor_keystream(
                    &mut out[ct_done..end],
                    inp.map(|i| &i[ct_done..end]),
                    &ks[64 + ct_done..],
                );
                ct_done = end;
                ready = if end < len { end / 16 } else { whole };
            }
        }
        if seal {
            poly.update_padded(&out[16 * hashed..]);
        } else {
            poly.update_padded(&inp.unwrap_or(out)[16 * hashed..]);
            xor_keystream(out, inp, &ks[64..]);
        }
        wipe(&mut ks[..iters * chunk]);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        lens[8..].copy_from_slice(&(len as u64).to_le_bytes());
        poly.update_padded(&lens);
        poly.finish()
    }

    /// A short message in two kernel calls: one ChaCha20 call makes block 0
    /// (the Poly1305 key) and the keystream (blocks 1..) into a local
    /// buffer of `KS` bytes, one Poly1305 call hashes a local buffer of `PB`
    /// bytes holding AAD | ciphertext | lengths, each zero-padded to 16.
    /// The block count is rounded up to a multiple of the lanes per register
    /// (4 at most), so the caller checks that `1 + ⌈len/64⌉` rounded up to a
    /// multiple of 4 blocks fits `KS` and that the padded total fits `PB`.
    fn crypt_short<const KS: usize, const PB: usize>(
        &self,
        seal: bool,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        inp: Option<&[u8]>,
        out: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let len = out.len();
        let st = self.state(0, nonce);
        let mut ks = [0u8; KS];
        let nb = (1 + len.div_ceil(64)).next_multiple_of(self.kernels.lanes);
        assert!(nb * 64 <= KS);
        let p = ks.as_mut_ptr();
        // SAFETY: `nb · 64 <= KS` bytes in and out of a local buffer.
        unsafe { (self.kernels.chacha)(st.0.as_ptr(), p, p, nb) };
        let a = aad.len().next_multiple_of(16);
        let c = len.next_multiple_of(16);
        let mut buf = [0u8; PB];
        buf[..aad.len()].copy_from_slice(aad);
        let ct = &mut buf[a..a + len];
        if seal {
            let src = inp.unwrap_or(out);
            for ((o, i), k) in ct.iter_mut().zip(src).zip(&ks[64..]) {
                *o = i ^ k;
            }
            out.copy_from_slice(ct);
        } else {
            ct.copy_from_slice(inp.unwrap_or(out));
            for ((o, i), k) in out.iter_mut().zip(&*ct).zip(&ks[64..]) {
                *o = i ^ k;
            }
        }
        buf[a + c..a + c + 8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
        buf[a + c + 8..a + c + 16].copy_from_slice(&(len as u64).to_le_bytes());
        let mut poly = Poly::new(ks[..32].try_into().unwrap(), self.kernels.poly);
        wipe(&mut ks);
        let blocks = (a + c + 16) / 16;
        // SAFETY: `blocks · 16 <= PB` bytes of a local buffer; writes `st`.
        unsafe { (poly.f)(poly.st.as_mut_ptr(), buf.as_ptr(), blocks, 1) };
        poly.finish()
    }

    /// The 64-byte ChaCha20 keystream block `counter` under this key and
    /// `nonce` (QUIC header protection, RFC 9001 5.4.4).
    pub fn keystream_block(&self, counter: u32, nonce: &[u8; NONCE_LEN]) -> [u8; 64] {
        let st = self.state(counter, nonce);
        let mut block = [0u8; 64];
        let p = block.as_mut_ptr();
        // SAFETY: one block in and out of a local buffer.
        unsafe { (self.kernels.chacha)(st.0.as_ptr(), p, p, 1) };
        block
    }

    /// Encrypts `buf` in place; returns the tag.
    pub fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; TAG_LEN] {
        self.crypt(true, nonce, aad, None, buf)
    }

    /// Encrypts `input` into `output` (same length); returns the tag.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn seal(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
    ) -> [u8; TAG_LEN] {
        assert_eq!(
            input.len(),
            output.len(),
            "seal: input and output lengths differ"
        );
        self.crypt(true, nonce, aad, Some(input), output)
    }

    /// Checks `tag` and decrypts `buf` in place (zeroed on a mismatch).
    pub fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        let want = self.crypt(false, nonce, aad, None, buf);
        check_tag(&want, tag, buf)
    }

    /// Checks `tag` and decrypts `input` into `output` (zeroed on a mismatch).
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        input: &[u8],
        output: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        assert_eq!(
            input.len(),
            output.len(),
            "open: input and output lengths differ"
        );
        let want = self.crypt(false, nonce, aad, Some(input), output);
        check_tag(&want, tag, output)
    }
}

/// Zeroes `buf` so that the optimiser keeps the stores (a plain `fill(0)` of a buffer that is
/// dead afterwards may be dropped): the keystream and the Poly1305 one-time key must not
/// linger in freed stack memory. 64-byte volatile stores, then the tail.
fn wipe(buf: &mut [u8]) {
    let mut chunks = buf.chunks_exact_mut(64);
    for c in &mut chunks {
        // SAFETY: `c` is 64 writable bytes, and `[u8; 64]` has alignment 1.
        unsafe { core::ptr::write_volatile(c.as_mut_ptr().cast::<[u8; 64]>(), [0; 64]) };
    }
    for b in chunks.into_remainder() {
        // SAFETY: `b` is a valid, writable byte.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

/// Raw ChaCha20 (`data ^= keystream` from block `counter`) with the given
/// variant, for tests of the counter wrap; not part of the AEAD API.
#[doc(hidden)]
pub fn chacha20_xor_for_tests(
    v: ChaChaKernels,
    key: &[u8; 32],
    counter: u32,
    nonce: &[u8; 12],
    data: &mut [u8],
) {
    let k = ChaCha20Poly1305::with_kernels(key, v);
    let mut st = k.state(counter, nonce);
    k.xor(&mut st, None, data);
}
