//! HTTP/1.1 scanning kernels: everything the HTTP/1.1 parser needs from SIMD.
//!
//! | entry point | finds |
//! |---|---|
//! | [`find_header_end`] | the end of the header block (`\r\n\r\n`) |
//! | [`scan_token`] | the first byte outside RFC 9110 `tchar` |
//! | [`scan_target`] | the first byte not allowed in a request-target |
//! | [`scan_field_value`] | CR/LF or a forbidden control byte in a field value |
//! | [`find_byte`], [`find_byte2`], [`find_byte3`] | the first of 1, 2 or 3 candidate bytes |
//! | [`eq_ignore_ascii_case`] | ASCII case-insensitive equality |
//! | [`parse_decimal`], [`parse_hex`] | Content-Length / chunk-size digits, with overflow detection |
//! | [`classify_head`] | structural bitmaps of a whole header block (CR/LF/CTLs, `:`, non-tchars) |
//!
//! [`reference`] is the specification; each entry point calls the variant
//! that the CPU selects (see `marg_gen::rt`).

pub mod asm;
pub mod reference;

pub use reference::{ChunkMasks, Digits};

use marg_gen::rt::{KernelMeta, SelectError};

/// The kernels of this family.
pub static REGISTRY: &[&KernelMeta] = &[
    asm::FIND_HEADER_END.meta(),
    asm::SCAN_TOKEN.meta(),
    asm::SCAN_TARGET.meta(),
    asm::SCAN_FIELD_VALUE.meta(),
    asm::FIND_BYTE.meta(),
    asm::FIND_BYTE2.meta(),
    asm::FIND_BYTE3.meta(),
    asm::EQ_IGNORE_ASCII_CASE.meta(),
    asm::PARSE_DECIMAL.meta(),
    asm::PARSE_HEX.meta(),
    asm::CLASSIFY_HEAD.meta(),
];

/// Selects and places every kernel of the family.
pub fn init() -> Result<Vec<(&'static str, &'static str)>, SelectError> {
    Ok(vec![
        ("find_header_end", asm::FIND_HEADER_END.init()?.name),
        ("scan_token", asm::SCAN_TOKEN.init()?.name),
        ("scan_target", asm::SCAN_TARGET.init()?.name),
        ("scan_field_value", asm::SCAN_FIELD_VALUE.init()?.name),
        ("find_byte", asm::FIND_BYTE.init()?.name),
        ("find_byte2", asm::FIND_BYTE2.init()?.name),
        ("find_byte3", asm::FIND_BYTE3.init()?.name),
        (
            "eq_ignore_ascii_case",
            asm::EQ_IGNORE_ASCII_CASE.init()?.name,
        ),
        ("parse_decimal", asm::PARSE_DECIMAL.init()?.name),
        ("parse_hex", asm::PARSE_HEX.init()?.name),
        ("classify_head", asm::CLASSIFY_HEAD.init()?.name),
    ])
}

// SAFETY (for every call below): each kernel reads only `[ptr, ptr + len)`
// of its inputs (and the pages those bytes lie in, never another page; the
// guard-page differential tests in `verify` check both), writes only through
// its `out` argument, and is otherwise a pure function. The slices passed
// are valid for their length.

/// Index just past the first `\r\n\r\n` in `buf` (the start of the body), or
/// `None` if the header block is not complete yet.
#[inline]
pub fn find_header_end(buf: &[u8]) -> Option<usize> {
    // SAFETY: see the note above `find_header_end`.
    let i = unsafe { (asm::FIND_HEADER_END.get())(buf.as_ptr(), buf.len()) };
    (i < buf.len()).then_some(i + 4)
}

/// Length of the leading run of `tchar` bytes; `buf[result]`, if it exists,
/// is the first byte outside the set.
#[inline]
pub fn scan_token(buf: &[u8]) -> usize {
    // SAFETY: see the note above `find_header_end`.
    unsafe { (asm::SCAN_TOKEN.get())(buf.as_ptr(), buf.len()) }
}

/// Length of the leading run of request-target bytes (`0x21..=0x7E`).
#[inline]
pub fn scan_target(buf: &[u8]) -> usize {
    // SAFETY: see the note above `find_header_end`.
    unsafe { (asm::SCAN_TARGET.get())(buf.as_ptr(), buf.len()) }
}

/// Length of the leading run of field-value bytes (HTAB, SP, VCHAR,
/// obs-text); `buf[result]` is then CR, LF, another CTL or DEL.
#[inline]
pub fn scan_field_value(buf: &[u8]) -> usize {
    // SAFETY: see the note above `find_header_end`.
    unsafe { (asm::SCAN_FIELD_VALUE.get())(buf.as_ptr(), buf.len()) }
}

/// Index of the first byte equal to `a` (memchr).
#[inline]
pub fn find_byte(buf: &[u8], a: u8) -> Option<usize> {
    // SAFETY: see the note above `find_header_end`.
    let i = unsafe { (asm::FIND_BYTE.get())(buf.as_ptr(), buf.len(), a.into()) };
    (i < buf.len()).then_some(i)
}

/// Index of the first byte equal to `a` or `b`.
#[inline]
pub fn find_byte2(buf: &[u8], a: u8, b: u8) -> Option<usize> {
    // SAFETY: see the note above `find_header_end`.
    let i = unsafe { (asm::FIND_BYTE2.get())(buf.as_ptr(), buf.len(), a.into(), b.into()) };
    (i < buf.len()).then_some(i)
}

/// Index of the first byte equal to `a`, `b` or `c`.
#[inline]
pub fn find_byte3(buf: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    // SAFETY: see the note above `find_header_end`.
    let i =
        unsafe { (asm::FIND_BYTE3.get())(buf.as_ptr(), buf.len(), a.into(), b.into(), c.into()) };
    (i < buf.len()).then_some(i)
}

/// ASCII case-insensitive equality.
#[inline]
pub fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // SAFETY: see the note above `find_header_end`; both are `a.len()` long.
    unsafe { (asm::EQ_IGNORE_ASCII_CASE.get())(a.as_ptr(), b.as_ptr(), a.len()) != 0 }
}

/// Leading decimal digits of `buf` and their value (see [`Digits`]).
#[inline]
pub fn parse_decimal(buf: &[u8]) -> Digits {
    digits(asm::PARSE_DECIMAL.get(), buf)
}

/// Leading hex digits of `buf` and their value (see [`Digits`]).
#[inline]
pub fn parse_hex(buf: &[u8]) -> Digits {
    digits(asm::PARSE_HEX.get(), buf)
}

#[inline]
fn digits(f: asm::DigitsFn, buf: &[u8]) -> Digits {
    let mut value = 0u64;
    // SAFETY: see the note above `find_header_end`; `value` is writable.
    let end = unsafe { f(buf.as_ptr(), buf.len(), &mut value) };
    if end == usize::MAX {
        Digits::Overflow
    } else {
        Digits::Run { end, value }
    }
}

/// Classifies `buf` into [`ChunkMasks`], one per 64-byte chunk, in one SIMD
/// pass; classifies at most `out.len() * 64` bytes and returns the number of
/// chunks written. Bits past the classified length are zero.
#[inline]
pub fn classify_head(buf: &[u8], out: &mut [ChunkMasks]) -> usize {
    let len = buf.len().min(out.len() * 64);
    // SAFETY: see the note above `find_header_end`; `out` has room for
    // ceil(len / 64) chunks (`len <= out.len() * 64`), and `ChunkMasks` is
    // `repr(C)` with three `u64`s, the layout the kernel writes.
    unsafe { (asm::CLASSIFY_HEAD.get())(buf.as_ptr(), len, out.as_mut_ptr().cast::<u64>()) }
}

/// Which of the [`ChunkMasks`] to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// CR, LF, other CTLs, DEL.
    Special,
    /// `:`.
    Colon,
    /// Not a tchar.
    NonTchar,
}

/// Bit-level queries over the masks of a classified block (what a parser
/// uses instead of per-field scanning calls).
#[derive(Debug, Clone, Copy)]
pub struct HeadMasks<'a> {
    masks: &'a [ChunkMasks],
}

impl<'a> HeadMasks<'a> {
    /// Wraps the masks written by [`classify_head`].
    pub fn new(masks: &'a [ChunkMasks]) -> Self {
        HeadMasks { masks }
    }

    #[inline]
    fn word(&self, kind: MaskKind, chunk: usize) -> u64 {
        let m = &self.masks[chunk];
        match kind {
            MaskKind::Special => m.special,
            MaskKind::Colon => m.colon,
            MaskKind::NonTchar => m.non_tchar,
        }
    }

    /// The first position `>= from` whose bit is set in `kind`.
    #[inline]
    pub fn next(&self, kind: MaskKind, from: usize) -> Option<usize> {
        let mut c = from / 64;
        if c >= self.masks.len() {
            return None;
        }
        let mut w = self.word(kind, c) & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                return Some(c * 64 + w.trailing_zeros() as usize);
            }
            c += 1;
            if c == self.masks.len() {
                return None;
            }
            w = self.word(kind, c);
        }
    }

    /// Whether any bit of `kind` is set in positions `from..to`.
    #[inline]
    pub fn any(&self, kind: MaskKind, from: usize, to: usize) -> bool {
        self.next(kind, from).is_some_and(|p| p < to)
    }
}
