//! Authenticated encryption: AES-GCM (AES-128 and AES-256, 96-bit nonces,
//! 128-bit tags) on AES-NI / VAES and (V)PCLMULQDQ kernels.
//!
//! [`reference`](mod@reference) is the specification (bytewise AES and shift-and-xor
//! GHASH); [`asm`] holds the kernels and documents their algorithm and
//! register layout. The safe API:
//!
//! ```
//! use kernels::aead::Aes128Gcm;
//! let key = Aes128Gcm::new(&[7; 16]);
//! let nonce = [1; 12];
//! let mut buf = *b"hello, world";
//! let tag = key.seal_in_place(&nonce, b"header", &mut buf);
//! key.open_in_place(&nonce, b"header", &mut buf, &tag).unwrap();
//! assert_eq!(&buf, b"hello, world");
//! ```
//!
//! A message costs four kernel calls: GHASH of the AAD, the fused
//! seal/open of the whole blocks, one ECB call for the tag mask `E_K(J0)`
//! (and the keystream of a final partial block), and one GHASH call for the
//! zero-padded partial block and the length block. Short messages (AAD and
//! data under 16 blocks together) take two: one ECB call for `E_K(J0)` and
//! all keystream blocks, and one GHASH call over the padded AAD, ciphertext
//! and length block.
//!
//! Every kernel is constant time (`#[secret]`): no branch or memory address
//! depends on the key, the data or the tag; the tag comparison here is
//! branch-free over all 16 bytes.

pub mod asm;
pub mod chacha;
pub mod chacha_asm;
pub mod chacha_reference;
pub mod reference;

pub use chacha::{ChaCha20Poly1305, ChaChaKernels};

use asm::{CryptFn, GhashFn};
use marg_gen::rt::{KernelMeta, SelectError};

/// The kernels of this family.
pub static REGISTRY: &[&KernelMeta] = &[
    asm::AES_GCM_INIT.meta(),
    asm::AES_ENCRYPT_BLOCKS.meta(),
    asm::GHASH.meta(),
    asm::AES_GCM_SEAL.meta(),
    asm::AES_GCM_OPEN.meta(),
    chacha_asm::CHACHA20_XOR.meta(),
    chacha_asm::CHACHA20_POLY1305_XOR.meta(),
    chacha_asm::CHACHA20_POLY1305_KS.meta(),
    chacha_asm::POLY1305_BLOCKS.meta(),
];

/// Selects and places every kernel of the family. A kernel with no variant
/// this CPU (or a forced `MARG_KERNELS` level) allows is reported as
/// `"unavailable"` rather than failing: the AES-GCM kernels need AES-NI and
/// PCLMULQDQ, which the `baseline` level does not include, and their users
/// (`marg-crypto`) fall back to ring then. Any other selection error (an
/// unknown or unsupported forced variant) is returned.
pub fn init() -> Result<Vec<(&'static str, &'static str)>, SelectError> {
    fn pick(
        name: &'static str,
        r: Result<&'static marg_gen::rt::VariantMeta, SelectError>,
    ) -> Result<(&'static str, &'static str), SelectError> {
        match r {
            Ok(v) => Ok((name, v.name)),
            Err(SelectError::NoneRunnable { .. }) => Ok((name, "unavailable")),
            Err(e) => Err(e),
        }
    }
    Ok(vec![
        pick("aes_gcm_init", asm::AES_GCM_INIT.init())?,
        pick("aes_encrypt_blocks", asm::AES_ENCRYPT_BLOCKS.init())?,
        pick("ghash", asm::GHASH.init())?,
        pick("aes_gcm_seal", asm::AES_GCM_SEAL.init())?,
        pick("aes_gcm_open", asm::AES_GCM_OPEN.init())?,
        pick("chacha20_xor", chacha_asm::CHACHA20_XOR.init())?,
        pick(
            "chacha20_poly1305_xor",
            chacha_asm::CHACHA20_POLY1305_XOR.init(),
        )?,
        pick(
            "chacha20_poly1305_ks",
            chacha_asm::CHACHA20_POLY1305_KS.init(),
        )?,
        pick("poly1305_blocks", chacha_asm::POLY1305_BLOCKS.init())?,
    ])
}

/// Whether this CPU can run the AES-GCM kernels (AES-NI and PCLMULQDQ).
pub fn aes_gcm_supported() -> bool {
    asm::AES_GCM_INIT.init().is_ok()
        && asm::AES_ENCRYPT_BLOCKS.init().is_ok()
        && asm::GHASH.init().is_ok()
        && asm::AES_GCM_SEAL.init().is_ok()
        && asm::AES_GCM_OPEN.init().is_ok()
}

/// Length of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;

/// The tag did not match: the message was forged or corrupted. The output
/// buffer has been zeroed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unauthentic;

impl core::fmt::Display for Unauthentic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AEAD tag mismatch")
    }
}

impl std::error::Error for Unauthentic {}

/// The expanded key as the kernels read it (layout in [`asm`]'s docs).
#[repr(C, align(64))]
struct GcmKey {
    round_keys: [[u8; 16]; 15],
    rounds: u32,
    _pad: [u32; 3],
    h_powers: [[u8; 16]; 16],
}

impl Drop for GcmKey {
    fn drop(&mut self) {
        // SAFETY: `self` is valid for writes of its own size; a volatile
        // write keeps the compiler from eliding the wipe of key material.
        unsafe { core::ptr::write_volatile(self as *mut GcmKey, GcmKey::zeroed()) };
    }
}

impl GcmKey {
    const fn zeroed() -> GcmKey {
        GcmKey {
            round_keys: [[0; 16]; 15],
            rounds: 0,
            _pad: [0; 3],
            h_powers: [[0; 16]; 16],
        }
    }
}

/// The per-message state the fused kernels update: GHASH accumulator `X`
/// (reflected) and the next counter block.
#[repr(C, align(16))]
struct GcmState {
    xi: [u8; 16],
    ctr: [u8; 16],
}

/// The kernel entry points one AES-GCM key uses: the selected variants, or a
/// named variant for differential tests.
#[derive(Clone, Copy, Debug)]
pub struct GcmKernels {
    /// The variant name of `seal`/`open`/`ghash` (one name for all three).
    pub variant: &'static str,
    ghash: GhashFn,
    seal: CryptFn,
    open: CryptFn,
}

impl GcmKernels {
    /// The variants this CPU selects (see `marg_gen::rt`).
    ///
    /// # Panics
    /// If selection fails (no AES-NI, or a forced variant the CPU lacks);
    /// check [`aes_gcm_supported`] first.
    pub fn selected() -> GcmKernels {
        GcmKernels {
            variant: asm::AES_GCM_SEAL
                .selected()
                .map(|v| v.name)
                .unwrap_or("unknown"),
            ghash: asm::GHASH.get(),
            seal: asm::AES_GCM_SEAL.get(),
            open: asm::AES_GCM_OPEN.get(),
        }
    }

    /// The variant `name` of each fused kernel.
    pub fn variant(name: &str) -> Result<GcmKernels, SelectError> {
        let seal = asm::AES_GCM_SEAL.variant(name)?;
        Ok(GcmKernels {
            variant: asm::AES_GCM_SEAL
                .meta()
                .variant(name)
                .map(|v| v.name)
                .unwrap_or("unknown"),
            ghash: asm::GHASH.variant(name)?,
            seal,
            open: asm::AES_GCM_OPEN.variant(name)?,
        })
    }

    /// Every variant this host can run, in declaration order, and the
    /// names of those it must skip.
    pub fn runnable() -> (Vec<GcmKernels>, Vec<&'static str>) {
        runnable_with(asm::AES_GCM_SEAL.meta(), GcmKernels::variant)
    }
}

/// Builds `make(name)` for every variant of `meta`; returns those built
/// and the names of those this host cannot run.
fn runnable_with<T>(
    meta: &'static KernelMeta,
    make: impl Fn(&'static str) -> Result<T, SelectError>,
) -> (Vec<T>, Vec<&'static str>) {
    let mut run = Vec::new();
    let mut skipped = Vec::new();
    for v in meta.variants {
        match make(v.name) {
            Ok(k) => run.push(k),
            Err(_) => skipped.push(v.name),
        }
    }
    (run, skipped)
}

/// AES-GCM under one key (16 or 32 bytes).
pub struct AesGcm {
    key: Box<GcmKey>,
    kernels: GcmKernels,
}

impl AesGcm {
    /// Expands `key` (16 or 32 bytes) with the selected kernels.
    ///
    /// # Panics
    /// On another key length, or when the CPU lacks AES-NI/PCLMULQDQ (see
    /// [`aes_gcm_supported`]).
    pub fn new(key: &[u8]) -> AesGcm {
        AesGcm::with_kernels(key, GcmKernels::selected())
    }

    /// Expands `key` for use with the given kernel variants.
    ///
    /// # Panics
    /// As [`AesGcm::new`].
    pub fn with_kernels(key: &[u8], kernels: GcmKernels) -> AesGcm {
        assert!(
            key.len() == 16 || key.len() == 32,
            "AES-GCM keys are 16 or 32 bytes"
        );
        let mut k = Box::new(GcmKey::zeroed());
        // SAFETY: the init kernel reads `key.len()` bytes of `key` and
        // writes only the `GcmKey` (64-byte aligned, as its SSE stores need).
        unsafe {
            (asm::AES_GCM_INIT.get())(
                key.as_ptr(),
                key.len(),
                (&mut *k as *mut GcmKey).cast::<u8>(),
            )
        };
        AesGcm { key: k, kernels }
    }

    fn ctx(&self) -> *const u8 {
        (&*self.key as *const GcmKey).cast::<u8>()
    }

    /// `E_K` of each 16-byte block of `blocks`, in place.
    fn encrypt_blocks(&self, blocks: &mut [[u8; 16]]) {
        let p = blocks.as_mut_ptr().cast::<u8>();
        // SAFETY: reads and writes exactly `blocks.len()` blocks at `p`
        // (in == out is allowed: each block is loaded before it is stored).
        unsafe { (asm::AES_ENCRYPT_BLOCKS.get())(self.ctx(), p, p, blocks.len()) };
    }

    /// `E_K(block)`: raw AES of one block under this key (QUIC header
    /// protection, RFC 9001 5.4.3).
    pub fn encrypt_block(&self, block: &mut [u8; 16]) {
        self.encrypt_blocks(core::slice::from_mut(block));
    }

    /// GHASH of `data` (zero-padded to whole blocks) into `xi`.
    fn ghash(&self, xi: &mut [u8; 16], data: &[u8]) {
        let whole = data.len() / 16;
        // SAFETY: reads `whole` blocks of `data`, reads and writes `xi`.
        unsafe { (self.kernels.ghash)(self.ctx(), xi.as_mut_ptr(), data.as_ptr(), whole) };
        let rest = &data[whole * 16..];
        if !rest.is_empty() {
            let mut block = [0u8; 16];
            block[..rest.len()].copy_from_slice(rest);
            // SAFETY: one block from a local buffer.
            unsafe { (self.kernels.ghash)(self.ctx(), xi.as_mut_ptr(), block.as_ptr(), 1) };
        }
    }

    /// GHASH of the whole blocks of `data` in one `ghash` kernel call,
    /// continuing from the state `y` (unreflected, as SP 800-38D writes it);
    /// for direct tests of the kernel's block-count paths, not part of the
    /// AEAD API.
    ///
    /// # Panics
    /// If `data` is not whole 16-byte blocks.
    #[doc(hidden)]
    pub fn ghash_blocks_for_tests(&self, y: &mut [u8; 16], data: &[u8]) {
        assert_eq!(data.len() % 16, 0, "ghash: whole blocks only");
        let mut xi = *y;
        xi.reverse();
        // SAFETY: reads `data.len() / 16` whole blocks of `data`, reads and
        // writes `xi`.
        unsafe {
            (self.kernels.ghash)(self.ctx(), xi.as_mut_ptr(), data.as_ptr(), data.len() / 16)
        };
        xi.reverse();
        *y = xi;
    }

    /// The pre-counter block J0 for any nonce length (SP 800-38D 7.1);
    /// 12-byte nonces take the fast path.
    fn j0(&self, nonce: &[u8]) -> [u8; 16] {
        let mut j0 = [0u8; 16];
        if nonce.len() == NONCE_LEN {
            j0[..12].copy_from_slice(nonce);
            j0[15] = 1;
        } else {
            let mut xi = [0u8; 16];
            self.ghash(&mut xi, nonce);
            let mut len = [0u8; 16];
            len[8..].copy_from_slice(&(nonce.len() as u64 * 8).to_be_bytes());
            self.ghash(&mut xi, &len);
            // The state is reflected: the GHASH value is its byte reversal.
            for (j, x) in j0.iter_mut().zip(xi.iter().rev()) {
                *j = *x;
            }
        }
        j0
    }

    /// The common body of seal and open: `out = in ^ keystream` and the
    /// tag over `aad` and the ciphertext (`in` when opening, `out` when
    /// sealing). `inp == None` means in place on `out`.
    fn crypt(
        &self,
        seal: bool,
        nonce: &[u8],
        aad: &[u8],
        inp: Option<&[u8]>,
        out: &mut [u8],
    ) -> [u8; 16] {
        let len = out.len();
        let j0 = self.j0(nonce);
        if aad.len().div_ceil(16) + len.div_ceil(16) < SHORT_BLOCKS {
            return self.crypt_short(seal, j0, aad, inp, out);
        }
        let mut st = GcmState {
            xi: [0; 16],
            ctr: j0,
        };
        inc32(&mut st.ctr);
        self.ghash(&mut st.xi, aad);
        let whole = len / 16;
        let src = inp.map_or(out.as_ptr(), |i| i.as_ptr());
        let f = if seal {
            self.kernels.seal
        } else {
            self.kernels.open
        };
        // SAFETY: reads `whole` blocks at `src` and writes them at `out`
        // (`src` is `out` itself or a distinct slice of the same length);
        // the state is a local.
        unsafe {
            f(
                self.ctx(),
                (&mut st as *mut GcmState).cast::<u8>(),
                src,
                out.as_mut_ptr(),
                whole,
            )
        };
        // Tag mask E_K(J0), and the keystream of a final partial block.
        let mut ks = [j0, st.ctr];
        let rest = len - whole * 16;
        self.encrypt_blocks(&mut ks[..1 + usize::from(rest > 0)]);
        let mut last = [0u8; 32];
        if rest > 0 {
            let tail_in = inp.map_or(&out[whole * 16..], |i| &i[whole * 16..]);
            last[..rest].copy_from_slice(tail_in);
            if seal {
                for (c, k) in last[..rest].iter_mut().zip(&ks[1]) {
                    *c ^= k;
                }
                out[whole * 16..].copy_from_slice(&last[..rest]);
            } else {
                for ((o, c), k) in out[whole * 16..].iter_mut().zip(&last[..rest]).zip(&ks[1]) {
                    *o = c ^ k;
                }
            }
        }
        // Length block after the zero-padded final ciphertext block.
        let lens = if rest > 0 { 16 } else { 0 };
        last[lens..lens + 8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        last[lens + 8..lens + 16].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        // SAFETY: one or two blocks from a local buffer.
        unsafe {
            (self.kernels.ghash)(self.ctx(), st.xi.as_mut_ptr(), last.as_ptr(), 1 + lens / 16)
        };
        // Tag = GHASH ^ E_K(J0); the state is reflected (byte-reversed).
        let mut tag = [0u8; 16];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = ks[0][i] ^ st.xi[15 - i];
        }
        tag
    }

    /// Short messages in two kernel calls: one ECB call for `E_K(J0)` and
    /// every keystream block, the XOR here, and one GHASH call over the
    /// zero-padded AAD, ciphertext and length block gathered in a local
    /// buffer (`SHORT_BLOCKS` blocks at most, so the GHASH kernel takes
    /// them as one aggregated tail with a single reduction).
    fn crypt_short(
        &self,
        seal: bool,
        j0: [u8; 16],
        aad: &[u8],
        inp: Option<&[u8]>,
        out: &mut [u8],
    ) -> [u8; 16] {
        let len = out.len();
        let (ab, cb) = (aad.len().div_ceil(16), len.div_ceil(16));
        let mut ks = [[0u8; 16]; SHORT_BLOCKS];
        ks[0] = j0;
        let mut ctr = j0;
        for k in &mut ks[1..=cb] {
            inc32(&mut ctr);
            *k = ctr;
        }
        self.encrypt_blocks(&mut ks[..=cb]);
        let mut buf = [0u8; 16 * SHORT_BLOCKS];
        buf[..aad.len()].copy_from_slice(aad);
        let ct = &mut buf[16 * ab..16 * ab + len];
        ct.copy_from_slice(inp.unwrap_or(out));
        let stream = &ks.as_flattened()[16..16 + len];
        if seal {
            for (c, k) in ct.iter_mut().zip(stream) {
                *c ^= k;
            }
            out.copy_from_slice(ct);
        } else {
            for ((o, c), k) in out.iter_mut().zip(ct.iter()).zip(stream) {
                *o = c ^ k;
            }
        }
        let lens = 16 * (ab + cb);
        buf[lens..lens + 8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        buf[lens + 8..lens + 16].copy_from_slice(&(len as u64 * 8).to_be_bytes());
        let mut xi = [0u8; 16];
        // SAFETY: `ab + cb + 1 <= SHORT_BLOCKS` blocks of a local buffer.
        unsafe { (self.kernels.ghash)(self.ctx(), xi.as_mut_ptr(), buf.as_ptr(), ab + cb + 1) };
        // Tag = GHASH ^ E_K(J0); the state is reflected (byte-reversed).
        let mut tag = [0u8; 16];
        for (i, t) in tag.iter_mut().enumerate() {
            *t = ks[0][i] ^ xi[15 - i];
        }
        tag
    }

    /// Encrypts `buf` in place; returns the tag. `nonce` is 12 bytes in
    /// every protocol we speak; other lengths follow SP 800-38D.
    pub fn seal_in_place(&self, nonce: &[u8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.crypt(true, nonce, aad, None, buf)
    }

    /// Encrypts `input` into `output` (same length); returns the tag.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn seal(&self, nonce: &[u8], aad: &[u8], input: &[u8], output: &mut [u8]) -> [u8; 16] {
        assert_eq!(
            input.len(),
            output.len(),
            "seal: input and output lengths differ"
        );
        self.crypt(true, nonce, aad, Some(input), output)
    }

    /// Checks `tag` and decrypts `buf` in place. On a mismatch `buf` is
    /// zeroed and the result is [`Unauthentic`].
    pub fn open_in_place(
        &self,
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Unauthentic> {
        let want = self.crypt(false, nonce, aad, None, buf);
        check_tag(&want, tag, buf)
    }

    /// Checks `tag` and decrypts `input` into `output` (same length). On a
    /// mismatch `output` is zeroed.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn open(
        &self,
        nonce: &[u8],
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

/// Branch-free comparison of the whole tag; zeroes `out` on a mismatch.
fn check_tag(want: &[u8; 16], got: &[u8], out: &mut [u8]) -> Result<(), Unauthentic> {
    let mut diff = u8::from(got.len() != TAG_LEN);
    for (a, b) in want.iter().zip(got) {
        diff |= a ^ b;
    }
    if core::hint::black_box(diff) == 0 {
        Ok(())
    } else {
        out.fill(0);
        Err(Unauthentic)
    }
}

/// Messages whose AAD and data take fewer than this many (zero-padded)
/// blocks go through [`AesGcm::crypt_short`]: AAD + data + length block fit
/// one aggregated GHASH tail (`H^16..H^1`).
const SHORT_BLOCKS: usize = 16;

/// The 32-bit counter increment `inc32` of SP 800-38D.
fn inc32(block: &mut [u8; 16]) {
    let c = u32::from_be_bytes([block[12], block[13], block[14], block[15]]).wrapping_add(1);
    block[12..].copy_from_slice(&c.to_be_bytes());
}

macro_rules! fixed_key_type {
    ($name:ident, $len:literal, $doc:literal) => {
        #[doc = $doc]
        pub struct $name(AesGcm);

        impl $name {
            /// Expands the key with the selected kernels.
            ///
            /// # Panics
            /// When the CPU lacks AES-NI/PCLMULQDQ (see [`aes_gcm_supported`]).
            pub fn new(key: &[u8; $len]) -> $name {
                $name(AesGcm::new(key))
            }

            /// Encrypts `buf` in place; returns the tag.
            pub fn seal_in_place(
                &self,
                nonce: &[u8; NONCE_LEN],
                aad: &[u8],
                buf: &mut [u8],
            ) -> [u8; TAG_LEN] {
                self.0.seal_in_place(nonce, aad, buf)
            }

            /// Encrypts `input` into `output` (same length); returns the tag.
            pub fn seal(
                &self,
                nonce: &[u8; NONCE_LEN],
                aad: &[u8],
                input: &[u8],
                output: &mut [u8],
            ) -> [u8; TAG_LEN] {
                self.0.seal(nonce, aad, input, output)
            }

            /// Checks `tag` and decrypts `buf` in place (zeroed on a mismatch).
            pub fn open_in_place(
                &self,
                nonce: &[u8; NONCE_LEN],
                aad: &[u8],
                buf: &mut [u8],
                tag: &[u8; TAG_LEN],
            ) -> Result<(), Unauthentic> {
                self.0.open_in_place(nonce, aad, buf, tag)
            }

            /// Checks `tag` and decrypts `input` into `output` (zeroed on a mismatch).
            pub fn open(
                &self,
                nonce: &[u8; NONCE_LEN],
                aad: &[u8],
                input: &[u8],
                output: &mut [u8],
                tag: &[u8; TAG_LEN],
            ) -> Result<(), Unauthentic> {
                self.0.open(nonce, aad, input, output, tag)
            }
        }
    };
}

fixed_key_type!(
    Aes128Gcm,
    16,
    "AES-128-GCM (16-byte key, 12-byte nonce, 16-byte tag)."
);
fixed_key_type!(
    Aes256Gcm,
    32,
    "AES-256-GCM (32-byte key, 12-byte nonce, 16-byte tag)."
);
