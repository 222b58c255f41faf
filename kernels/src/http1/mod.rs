//! HTTP/1.1 scanning kernels: everything the HTTP/1.1 parser needs from SIMD.
//!
//! | entry point | finds |
//! |---|---|
//! | [`find_header_end`] | the end of the header block (`\r\n\r\n`) |
//! | [`scan_token`] | the first byte outside RFC 9110 `tchar` |
//! | [`scan_target`] | the first byte not allowed in a request-target |
//! | [`scan_field_value`] | CR/LF or a forbidden control byte in a field value |
//! | [`find_byte2`], [`find_byte3`] | the first of 2 or 3 candidate bytes |
//! | [`eq_ignore_ascii_case`] | ASCII case-insensitive equality |
//! | [`parse_decimal`], [`parse_hex`] | Content-Length / chunk-size digits, with overflow detection |
//!
//! [`reference`] is the specification; each entry point calls the variant
//! that the CPU selects (see `marg_gen::rt`).

pub mod reference;

pub use reference::Digits;

use marg_gen::rt::{KernelMeta, SelectError};

/// The kernels of this family.
pub static REGISTRY: &[&KernelMeta] = &[];

/// Selects and places every kernel of the family.
pub fn init() -> Result<Vec<(&'static str, &'static str)>, SelectError> {
    Ok(Vec::new())
}

/// Index just past the first `\r\n\r\n` in `buf` (the start of the body), or
/// `None` if the header block is not complete yet.
#[inline]
pub fn find_header_end(buf: &[u8]) -> Option<usize> {
    let i = reference::find_header_end(buf);
    (i < buf.len()).then_some(i + 4)
}

/// Length of the leading run of `tchar` bytes; `buf[result]`, if it exists,
/// is the first byte outside the set.
#[inline]
pub fn scan_token(buf: &[u8]) -> usize {
    reference::scan_token(buf)
}

/// Length of the leading run of request-target bytes (`0x21..=0x7E`).
#[inline]
pub fn scan_target(buf: &[u8]) -> usize {
    reference::scan_target(buf)
}

/// Length of the leading run of field-value bytes (HTAB, SP, VCHAR,
/// obs-text); `buf[result]` is then CR, LF, another CTL or DEL.
#[inline]
pub fn scan_field_value(buf: &[u8]) -> usize {
    reference::scan_field_value(buf)
}

/// Index of the first byte equal to `a` or `b`.
#[inline]
pub fn find_byte2(buf: &[u8], a: u8, b: u8) -> Option<usize> {
    let i = reference::find_byte2(buf, a, b);
    (i < buf.len()).then_some(i)
}

/// Index of the first byte equal to `a`, `b` or `c`.
#[inline]
pub fn find_byte3(buf: &[u8], a: u8, b: u8, c: u8) -> Option<usize> {
    let i = reference::find_byte3(buf, a, b, c);
    (i < buf.len()).then_some(i)
}

/// ASCII case-insensitive equality.
#[inline]
pub fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    reference::eq_ignore_ascii_case(a, b)
}

/// Leading decimal digits of `buf` and their value (see [`Digits`]).
#[inline]
pub fn parse_decimal(buf: &[u8]) -> Digits {
    reference::parse_decimal(buf)
}

/// Leading hex digits of `buf` and their value (see [`Digits`]).
#[inline]
pub fn parse_hex(buf: &[u8]) -> Digits {
    reference::parse_hex(buf)
}
