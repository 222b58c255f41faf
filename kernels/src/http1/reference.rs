//! The specification of the HTTP/1.1 scanning kernels, in plain Rust.
//!
//! Every asm variant is differential-tested against these functions; they are
//! written to be obviously correct, not fast. Byte classes follow RFC 9110
//! §5.6.2 (`tchar`), §5.5 (field values) and RFC 9112 §3.2 (request target).

/// `tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
///          "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA` (RFC 9110 §5.6.2).
pub const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Bytes allowed in a request-target: visible ASCII, `0x21..=0x7E`.
/// SP ends the target; CTLs, DEL and non-ASCII bytes are rejected (a client
/// must percent-encode them, RFC 3986 §2.1).
pub const fn is_target_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e)
}

/// Bytes allowed inside a field value (RFC 9110 §5.5): HTAB, SP, VCHAR and
/// obs-text (`0x80..=0xFF`). CR and LF end the value; NUL, the other CTLs
/// and DEL are errors.
pub const fn is_field_value_byte(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7e | 0x80..=0xff)
}

/// Start of the first `\r\n\r\n` in `buf`, or `buf.len()` if there is none.
pub fn find_header_end(buf: &[u8]) -> usize {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(buf.len())
}

/// Index of the first byte that is not a `tchar`, or `buf.len()`.
pub fn scan_token(buf: &[u8]) -> usize {
    buf.iter().position(|&b| !is_tchar(b)).unwrap_or(buf.len())
}

/// Index of the first byte not allowed in a request-target, or `buf.len()`.
pub fn scan_target(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| !is_target_byte(b))
        .unwrap_or(buf.len())
}

/// Index of the first byte that ends or invalidates a field value (CR, LF,
/// NUL, other CTLs except HTAB, DEL), or `buf.len()`.
pub fn scan_field_value(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| !is_field_value_byte(b))
        .unwrap_or(buf.len())
}

/// Index of the first byte equal to `a`, or `buf.len()`.
pub fn find_byte(buf: &[u8], a: u8) -> usize {
    buf.iter().position(|&x| x == a).unwrap_or(buf.len())
}

/// Index of the first byte equal to `a` or `b`, or `buf.len()`.
pub fn find_byte2(buf: &[u8], a: u8, b: u8) -> usize {
    buf.iter()
        .position(|&x| x == a || x == b)
        .unwrap_or(buf.len())
}

/// Index of the first byte equal to `a`, `b` or `c`, or `buf.len()`.
pub fn find_byte3(buf: &[u8], a: u8, b: u8, c: u8) -> usize {
    buf.iter()
        .position(|&x| x == a || x == b || x == c)
        .unwrap_or(buf.len())
}

/// ASCII case-insensitive equality of two equally long byte strings
/// (only `A-Z`/`a-z` fold; every other byte must match exactly).
pub fn eq_ignore_ascii_case(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Result of the raw number-parsing kernels: how far the digits run and
/// their value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digits {
    /// `buf[..end]` are digits (possibly `end == 0`) and their value is
    /// `value`; `buf[end]`, if any, is the first non-digit.
    Run { end: usize, value: u64 },
    /// The leading digit run's value exceeds `u64::MAX`.
    Overflow,
}

/// Parses the leading run of ASCII decimal digits (`0-9`) of `buf`.
pub fn parse_decimal(buf: &[u8]) -> Digits {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if !b.is_ascii_digit() {
            return Digits::Run { end: i, value };
        }
        value = match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
        {
            Some(v) => v,
            None => return Digits::Overflow,
        };
    }
    Digits::Run {
        end: buf.len(),
        value,
    }
}

/// Parses the leading run of ASCII hex digits (`0-9a-fA-F`) of `buf`.
pub fn parse_hex(buf: &[u8]) -> Digits {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Digits::Run { end: i, value },
        };
        if value >> 60 != 0 {
            return Digits::Overflow;
        }
        value = value << 4 | u64::from(d);
    }
    Digits::Run {
        end: buf.len(),
        value,
    }
}

/// The three structural masks of one 64-byte chunk of a header block (bit
/// `j` describes byte `64c + j` of chunk `c`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ChunkMasks {
    /// Bytes that are not field-value bytes: CR, LF, other CTLs, DEL.
    pub special: u64,
    /// `:` bytes.
    pub colon: u64,
    /// Bytes that are not `tchar`s.
    pub non_tchar: u64,
}

/// Classifies `buf` in 64-byte chunks; bits past `buf.len()` are zero.
pub fn classify_head(buf: &[u8]) -> Vec<ChunkMasks> {
    buf.chunks(64)
        .map(|chunk| {
            let mut m = ChunkMasks::default();
            for (j, &b) in chunk.iter().enumerate() {
                m.special |= u64::from(!is_field_value_byte(b)) << j;
                m.colon |= u64::from(b == b':') << j;
                m.non_tchar |= u64::from(!is_tchar(b)) << j;
            }
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_set_matches_rfc() {
        let set: Vec<u8> = (0..=255u8).filter(|&b| is_tchar(b)).collect();
        assert_eq!(set.len(), 10 + 52 + 15);
        for b in b"\"(),/:;<=>?@[\\]{} \t\x7f" {
            assert!(!is_tchar(*b), "{b:#x}");
        }
    }

    #[test]
    fn header_end() {
        assert_eq!(
            find_header_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"),
            23
        );
        assert_eq!(find_header_end(b"\r\n\r"), 3);
        assert_eq!(find_header_end(b"\r\n\r\n"), 0);
    }

    #[test]
    fn numbers() {
        assert_eq!(
            parse_decimal(b"18446744073709551615"),
            Digits::Run {
                end: 20,
                value: u64::MAX
            }
        );
        assert_eq!(parse_decimal(b"18446744073709551616"), Digits::Overflow);
        assert_eq!(
            parse_decimal(b"00000000000000000000000042x"),
            Digits::Run { end: 26, value: 42 }
        );
        assert_eq!(parse_decimal(b""), Digits::Run { end: 0, value: 0 });
        assert_eq!(
            parse_hex(b"ffffffffffffffff;"),
            Digits::Run {
                end: 16,
                value: u64::MAX
            }
        );
        assert_eq!(parse_hex(b"10000000000000000"), Digits::Overflow);
        assert_eq!(
            parse_hex(b"00000000000000000001A\r"),
            Digits::Run {
                end: 21,
                value: 0x1a
            }
        );
    }

    #[test]
    fn field_values() {
        assert_eq!(scan_field_value(b"text/html; q=0.9\xff\t\r\n"), 18);
        assert_eq!(scan_field_value(b"a\x00b"), 1);
        assert_eq!(scan_field_value(b"a\x7fb"), 1);
        assert_eq!(scan_target(b"/a?b=c HTTP/1.1"), 6);
        assert_eq!(scan_target(b"/\x80"), 1);
    }
}
