//! The HTTP/1.1 request-head parser and chunked-body decoder (RFC 9112),
//! one tight pass over a byte slice that records offsets, built on the
//! scanning kernels. No allocation, no copies: the caller keeps the bytes.
//!
//! The parser is strict where leniency opens request-smuggling doors: every
//! line must end in CRLF (bare CR or LF is an error), no obs-fold, no
//! whitespace between a field name and its colon, no control bytes in
//! values, exactly one well-formed `Content-Length`, `Transfer-Encoding` only
//! as a lone `chunked` and never together with `Content-Length`, exactly one
//! `Host` in HTTP/1.1.

use kernels::http1::{
    classify_head, eq_ignore_ascii_case, find_byte2, find_header_end, parse_decimal, parse_hex,
    scan_field_value, scan_target, scan_token, Digits,
};

use crate::handler::{HeaderSpan, Version};

/// Size limits for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest header block (request line + fields + CRLF CRLF) -> 431.
    pub max_header_bytes: usize,
    /// Longest request-target -> 414.
    pub max_target: usize,
    /// Largest request body (after de-chunking) -> 413.
    pub max_body: u64,
    /// Most header fields -> 431.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_target: 8 * 1024,
            max_body: 1024 * 1024,
            max_headers: 100,
        }
    }
}

/// Why a request was rejected. [`ParseError::status`] gives the response
/// status; the connection is closed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The method is empty or not a token, or not followed by one SP.
    InvalidMethod,
    /// The request-target is empty, has a byte outside `0x21..=0x7E`, or is
    /// not followed by one SP.
    InvalidTarget,
    /// The request-target is longer than [`Limits::max_target`].
    TargetTooLong,
    /// The HTTP-version is malformed.
    InvalidVersion,
    /// The HTTP-version is well-formed but not 1.0 or 1.1.
    UnsupportedVersion,
    /// A line ends in LF without CR.
    BareLf,
    /// A CR is not followed by LF.
    BareCr,
    /// A field line starts with whitespace (obsolete line folding).
    ObsFold,
    /// Whitespace between a field name and its colon.
    WhitespaceBeforeColon,
    /// A field name is empty, not a token, or has no colon.
    InvalidHeaderName,
    /// A field value contains NUL, DEL or another control byte.
    InvalidHeaderValue,
    /// The header block exceeds [`Limits::max_header_bytes`].
    HeadersTooLarge,
    /// More than [`Limits::max_headers`] fields.
    TooManyHeaders,
    /// HTTP/1.1 request without `Host`.
    MissingHost,
    /// More than one `Host` field.
    DuplicateHost,
    /// Both `Transfer-Encoding` and `Content-Length`.
    ContentLengthWithTransferEncoding,
    /// More than one `Content-Length` field.
    DuplicateContentLength,
    /// `Content-Length` is not a plain decimal number (or overflows).
    InvalidContentLength,
    /// `Transfer-Encoding` other than a single final `chunked`, or any
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    UnsupportedTransferEncoding,
    /// The declared or de-chunked body exceeds [`Limits::max_body`].
    BodyTooLarge,
    /// A chunk-size line is malformed.
    InvalidChunkSize,
    /// A chunk size does not fit in 64 bits.
    ChunkSizeOverflow,
    /// Chunk data is not followed by CRLF.
    InvalidChunkTerminator,
    /// A malformed trailer field.
    InvalidTrailer,
    /// An `Expect` other than `100-continue`.
    UnsupportedExpectation,
}

impl ParseError {
    /// The status code the server answers with.
    pub fn status(self) -> u16 {
        match self {
            ParseError::TargetTooLong => 414,
            ParseError::HeadersTooLarge | ParseError::TooManyHeaders => 431,
            ParseError::BodyTooLarge => 413,
            ParseError::UnsupportedVersion => 505,
            ParseError::UnsupportedExpectation => 417,
            _ => 400,
        }
    }

    /// A short human-readable explanation (also the response body).
    pub fn message(self) -> &'static str {
        match self {
            ParseError::InvalidMethod => "invalid method",
            ParseError::InvalidTarget => "invalid request-target",
            ParseError::TargetTooLong => "request-target too long",
            ParseError::InvalidVersion => "invalid HTTP version",
            ParseError::UnsupportedVersion => "HTTP version not supported",
            ParseError::BareLf => "line ends in LF without CR",
            ParseError::BareCr => "CR not followed by LF",
            ParseError::ObsFold => "obsolete line folding",
            ParseError::WhitespaceBeforeColon => "whitespace before colon in field",
            ParseError::InvalidHeaderName => "invalid field name",
            ParseError::InvalidHeaderValue => "control byte in field value",
            ParseError::HeadersTooLarge => "header block too large",
            ParseError::TooManyHeaders => "too many header fields",
            ParseError::MissingHost => "missing Host",
            ParseError::DuplicateHost => "duplicate Host",
            ParseError::ContentLengthWithTransferEncoding => {
                "both Content-Length and Transfer-Encoding"
            }
            ParseError::DuplicateContentLength => "duplicate Content-Length",
            ParseError::InvalidContentLength => "invalid Content-Length",
            ParseError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            ParseError::BodyTooLarge => "body too large",
            ParseError::InvalidChunkSize => "invalid chunk size",
            ParseError::ChunkSizeOverflow => "chunk size overflow",
            ParseError::InvalidChunkTerminator => "chunk data not followed by CRLF",
            ParseError::InvalidTrailer => "invalid trailer field",
            ParseError::UnsupportedExpectation => "unsupported expectation",
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for ParseError {}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body.
    None,
    /// `Content-Length: n` (n > 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head: offsets relative to the start of the parsed slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Length of the head including the final CRLF CRLF (and any leading
    /// empty lines that were skipped).
    pub len: usize,
    /// Method: start and end offsets.
    pub method: (u32, u32),
    /// Request-target: start and end offsets.
    pub target: (u32, u32),
    /// The version.
    pub version: Version,
    /// Number of header spans written.
    pub headers: usize,
    /// Body framing.
    pub body: BodyKind,
    /// Whether the connection may stay open after the response (version
    /// default adjusted by `Connection`).
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
}

/// Result of parsing a possibly incomplete head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete.
    Complete(Head),
    /// More bytes are needed; nothing wrong so far.
    Partial,
}

/// Parses a request head from the start of `buf` into `spans` (at most
/// `spans.len()` fields; the limit is `limits.max_headers` capped at that).
/// Detects errors in incomplete input as early as possible (bare LF, a
/// target or head over its limit), so that a bad client is answered without
/// waiting for a timeout.
pub fn parse_head(
    buf: &[u8],
    limits: &Limits,
    spans: &mut [HeaderSpan],
) -> Result<Parsed, ParseError> {
    // RFC 9112 §2.2: ignore at least one empty line before the request-line
    // (we ignore up to four).
    let mut skip = 0;
    while skip < 8 && buf.len() >= skip + 2 && buf[skip] == b'\r' && buf[skip + 1] == b'\n' {
        skip += 2;
    }
    if buf.len() == skip || (buf.len() == skip + 1 && buf[skip] == b'\r') {
        return Ok(Parsed::Partial);
    }
    // Only the first `max_header_bytes` count; the result is the same
    // however the input was split into reads.
    let window = &buf[..buf.len().min(skip + limits.max_header_bytes)];
    // With the whole head present, the field lines are walked on SIMD
    // structural bitmaps; otherwise (or for anything unusual) line by line.
    let (bytes, complete) = match find_header_end(&window[skip..]) {
        Some(e) => (&window[..skip + e], true),
        None => (window, false),
    };
    match parse_lines(bytes, skip, complete, limits, spans)? {
        Some(head) => Ok(Parsed::Complete(head)),
        None if buf.len() >= skip + limits.max_header_bytes => Err(ParseError::HeadersTooLarge),
        None => Ok(Parsed::Partial),
    }
}

/// Ends of a line at `buf[i]`: `Ok(Some(()))` for CRLF, `Ok(None)` if more
/// input is needed, an error for bare CR / bare LF.
#[inline(always)]
fn expect_crlf(buf: &[u8], i: usize) -> Result<Option<()>, ParseError> {
    match buf.get(i) {
        None => Ok(None),
        Some(b'\r') => match buf.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(())),
            Some(_) => Err(ParseError::BareCr),
        },
        Some(b'\n') => Err(ParseError::BareLf),
        Some(_) => Err(ParseError::InvalidHeaderValue),
    }
}

/// The line parser. `Ok(None)` means the input ended before the head did.
#[inline]
fn parse_lines(
    buf: &[u8],
    skip: usize,
    complete: bool,
    limits: &Limits,
    spans: &mut [HeaderSpan],
) -> Result<Option<Head>, ParseError> {
    let mut i = skip;
    match buf.get(i) {
        None => return Ok(None),
        Some(b'\n') => return Err(ParseError::BareLf),
        Some(b'\r') if buf.get(i + 1).is_some_and(|&b| b != b'\n') => {
            return Err(ParseError::BareCr)
        }
        _ => {}
    }

    // method SP
    let m0 = i;
    let mlen = scan_name(&buf[i..]);
    i += mlen;
    match buf.get(i) {
        None => return Ok(None),
        Some(b' ') if mlen > 0 => {}
        Some(b'\n') => return Err(ParseError::BareLf),
        _ => return Err(ParseError::InvalidMethod),
    }
    let method = (m0 as u32, i as u32);
    i += 1;

    // request-target SP
    let t0 = i;
    let tlen = scan_target(&buf[i..]);
    if tlen > limits.max_target {
        return Err(ParseError::TargetTooLong);
    }
    i += tlen;
    match buf.get(i) {
        None => return Ok(None),
        Some(b' ') if tlen > 0 => {}
        Some(b'\n') => return Err(ParseError::BareLf),
        _ => return Err(ParseError::InvalidTarget),
    }
    let target = (t0 as u32, i as u32);
    // RFC 9112 §3.2: origin-form (`/...`) is the common case; otherwise the
    // target must be absolute-form, authority-form for CONNECT, or `*` for
    // OPTIONS.
    if buf[t0] != b'/' && !other_target_form_ok(&buf[m0..method.1 as usize], &buf[t0..i]) {
        return Err(ParseError::InvalidTarget);
    }
    i += 1;

    // HTTP-version CRLF
    let v = &buf[i..];
    let version = if v.len() < 8 {
        if !could_be_version(v) {
            return Err(ParseError::InvalidVersion);
        }
        return Ok(None);
    } else {
        match &v[..8] {
            b"HTTP/1.1" => Version::Http11,
            b"HTTP/1.0" => Version::Http10,
            other => return Err(version_error(other)),
        }
    };
    i += 8;
    match expect_crlf(buf, i) {
        Ok(Some(())) => i += 2,
        Ok(None) => return Ok(None),
        Err(ParseError::InvalidHeaderValue) => return Err(ParseError::InvalidVersion),
        Err(e) => return Err(e),
    }

    let mut n = 0usize;
    let max_headers = limits.max_headers.min(spans.len());
    let mut st = Fields::default();

    if complete {
        // Fast path; stops at the first line it does not fully like and
        // leaves that line (and the state before it) to the loop below,
        // which then reports exactly what the line-by-line parser reports.
        let (next, done) = walk_fields(buf, i, max_headers, spans, &mut n, &mut st)?;
        i = next;
        if done {
            return finish(i, method, target, version, n, &st, limits).map(Some);
        }
    }

    loop {
        // End of head, or the next field line.
        match buf.get(i) {
            None => return Ok(None),
            Some(b'\r') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => {
                    i += 2;
                    break;
                }
                Some(_) => return Err(ParseError::BareCr),
            },
            Some(b'\n') => return Err(ParseError::BareLf),
            Some(b' ') | Some(b'\t') => return Err(ParseError::ObsFold),
            Some(_) => {}
        }
        let n0 = i;
        let nlen = scan_name(&buf[i..]);
        i += nlen;
        match buf.get(i) {
            None => return Ok(None),
            Some(b':') if nlen > 0 => {}
            Some(b' ') | Some(b'\t') if nlen > 0 => return Err(ParseError::WhitespaceBeforeColon),
            Some(b'\n') => return Err(ParseError::BareLf),
            Some(b'\r') => match buf.get(i + 1) {
                None => return Ok(None),
                Some(b'\n') => return Err(ParseError::InvalidHeaderName),
                Some(_) => return Err(ParseError::BareCr),
            },
            _ => return Err(ParseError::InvalidHeaderName),
        }
        let name_end = i;
        i += 1;
        while matches!(buf.get(i), Some(b' ') | Some(b'\t')) {
            i += 1;
        }
        let v0 = i;
        i += scan_field_value(&buf[i..]);
        let mut v1 = i;
        match expect_crlf(buf, i)? {
            Some(()) => i += 2,
            None => return Ok(None),
        }
        while v1 > v0 && matches!(buf[v1 - 1], b' ' | b'\t') {
            v1 -= 1;
        }
        if n >= max_headers {
            return Err(ParseError::TooManyHeaders);
        }
        spans[n] = HeaderSpan {
            name: (n0 as u32, name_end as u32),
            value: (v0 as u32, v1 as u32),
        };
        n += 1;

        st.field(&buf[n0..name_end], &buf[v0..v1])?;
    }
    finish(i, method, target, version, n, &st, limits).map(Some)
}

/// What the framing-relevant fields said so far.
#[derive(Debug, Default)]
struct Fields {
    content_length: Option<u64>,
    chunked: bool,
    te_seen: bool,
    hosts: u32,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
}

impl Fields {
    /// Records one field; rejects framing the server will not guess at.
    #[inline(always)]
    fn field(&mut self, name: &[u8], value: &[u8]) -> Result<(), ParseError> {
        // The first byte filters out most fields before a comparison.
        match (name.len(), name[0] | 0x20) {
            (4, b'h') if eq_ignore_ascii_case(name, b"host") => self.hosts += 1,
            (6, b'e') if eq_ignore_ascii_case(name, b"expect") => {
                if eq_ignore_ascii_case(value, b"100-continue") {
                    self.expect_continue = true;
                } else {
                    return Err(ParseError::UnsupportedExpectation);
                }
            }
            (10, b'c') if eq_ignore_ascii_case(name, b"connection") => {
                for token in value.split(|&b| b == b',') {
                    let t = trim_ows(token);
                    if t.len() == 5 && eq_ignore_ascii_case(t, b"close") {
                        self.conn_close = true;
                    } else if t.len() == 10 && eq_ignore_ascii_case(t, b"keep-alive") {
                        self.conn_keep_alive = true;
                    }
                }
            }
            (14, b'c') if eq_ignore_ascii_case(name, b"content-length") => {
                if self.content_length.is_some() {
                    return Err(ParseError::DuplicateContentLength);
                }
                match parse_decimal(value) {
                    Digits::Run { end, value: len } if end == value.len() && end > 0 => {
                        self.content_length = Some(len)
                    }
                    _ => return Err(ParseError::InvalidContentLength),
                }
            }
            (17, b't') if eq_ignore_ascii_case(name, b"transfer-encoding") => {
                // Only a single, lone `chunked` is accepted: anything else
                // would leave the body length to a coding we do not decode.
                if self.te_seen || !eq_ignore_ascii_case(value, b"chunked") {
                    return Err(ParseError::UnsupportedTransferEncoding);
                }
                self.te_seen = true;
                self.chunked = true;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Chunks of structural masks kept on the stack: heads up to 2 KiB take the
/// fast path.
const MASK_CHUNKS: usize = 32;

/// Walks the field lines of a complete head (`buf` ends with the final
/// CRLF) from `i` on SIMD structural masks: each line's end is the next
/// special byte (which must be CR with LF right after), its name the run of
/// tchars up to the first colon. Returns where it stopped and whether that
/// is the end of the head; it stops early, without error, at a line it
/// does not accept outright, for the line parser to judge.
#[inline]
fn walk_fields(
    buf: &[u8],
    mut i: usize,
    max_headers: usize,
    spans: &mut [HeaderSpan],
    n: &mut usize,
    st: &mut Fields,
) -> Result<(usize, bool), ParseError> {
    use kernels::http1::{ChunkMasks, HeadMasks, MaskKind};
    let end = buf.len();
    if end > MASK_CHUNKS * 64 {
        return Ok((i, false));
    }
    let mut masks = [ChunkMasks::default(); MASK_CHUNKS];
    let chunks = classify_head(buf, &mut masks);
    let masks = &masks[..chunks];
    let hm = HeadMasks::new(masks);
    // Special bytes (CR, LF, CTLs) in order, by clearing the lowest bit.
    let mut c = i / 64;
    let Some(first) = masks.get(c) else {
        return Ok((i, false));
    };
    let mut special = first.special & (!0u64 << (i % 64));
    let mut next_special = || -> Option<usize> {
        while special == 0 {
            c += 1;
            special = masks.get(c)?.special;
        }
        let at = c * 64 + special.trailing_zeros() as usize;
        special &= special - 1;
        Some(at)
    };
    loop {
        if i + 2 == end {
            // The final CRLF (guaranteed by find_header_end).
            return Ok((end, true));
        }
        let (Some(cr), Some(lf)) = (next_special(), next_special()) else {
            return Ok((i, false));
        };
        if lf != cr + 1 || buf[cr] != b'\r' || buf[lf] != b'\n' {
            return Ok((i, false));
        }
        let Some(colon) = hm.next(MaskKind::Colon, i) else {
            return Ok((i, false));
        };
        if colon == i
            || colon > cr
            || hm.next(MaskKind::NonTchar, i) != Some(colon)
            || *n >= max_headers
        {
            return Ok((i, false));
        }
        let mut v0 = colon + 1;
        while v0 < cr && matches!(buf[v0], b' ' | b'\t') {
            v0 += 1;
        }
        let mut v1 = cr;
        while v1 > v0 && matches!(buf[v1 - 1], b' ' | b'\t') {
            v1 -= 1;
        }
        spans[*n] = HeaderSpan {
            name: (i as u32, colon as u32),
            value: (v0 as u32, v1 as u32),
        };
        *n += 1;
        st.field(&buf[i..colon], &buf[v0..v1])?;
        i = lf + 1;
    }
}

/// Checks the framing decided by the fields and builds the head.
#[inline]
fn finish(
    len: usize,
    method: (u32, u32),
    target: (u32, u32),
    version: Version,
    headers: usize,
    st: &Fields,
    limits: &Limits,
) -> Result<Head, ParseError> {
    if st.chunked && st.content_length.is_some() {
        return Err(ParseError::ContentLengthWithTransferEncoding);
    }
    if st.te_seen && version == Version::Http10 {
        return Err(ParseError::UnsupportedTransferEncoding);
    }
    if st.hosts > 1 {
        return Err(ParseError::DuplicateHost);
    }
    if st.hosts == 0 && version == Version::Http11 {
        return Err(ParseError::MissingHost);
    }
    let body = if st.chunked {
        BodyKind::Chunked
    } else {
        match st.content_length {
            Some(0) | None => BodyKind::None,
            Some(len) if len > limits.max_body => return Err(ParseError::BodyTooLarge),
            Some(len) => BodyKind::Length(len),
        }
    };
    let keep_alive = match version {
        Version::Http11 => !st.conn_close,
        _ => st.conn_keep_alive && !st.conn_close,
    };
    Ok(Head {
        len,
        method,
        target,
        version,
        headers,
        body,
        keep_alive,
        expect_continue: st.expect_continue,
    })
}

fn version_error(v: &[u8]) -> ParseError {
    // `HTTP/x.y` with digits: a version we do not speak; anything else is
    // garbage.
    if v.len() >= 8
        && v.starts_with(b"HTTP/")
        && v[5].is_ascii_digit()
        && v[6] == b'.'
        && v[7].is_ascii_digit()
    {
        ParseError::UnsupportedVersion
    } else {
        ParseError::InvalidVersion
    }
}

/// `tchar` membership, one entry per byte.
static TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = kernels::http1::reference::is_tchar(b as u8);
        b += 1;
    }
    t
};

/// Length of the field name at the start of `buf`. Field names are short
/// (a dozen bytes on average), where a table walk inlined here beats a call
/// into the [`scan_token`] kernel; names of 32 bytes or more go to the
/// kernel.
#[inline(never)]
fn scan_name(buf: &[u8]) -> usize {
    let n = buf.len().min(32);
    let mut i = 0;
    // Four table lookups per step, combined, then find which one failed.
    while i + 4 <= n {
        let ok = TCHAR[buf[i] as usize]
            & TCHAR[buf[i + 1] as usize]
            & TCHAR[buf[i + 2] as usize]
            & TCHAR[buf[i + 3] as usize];
        if !ok {
            break;
        }
        i += 4;
    }
    while i < n && TCHAR[buf[i] as usize] {
        i += 1;
    }
    if i == 32 {
        32 + scan_token(&buf[32..])
    } else {
        i
    }
}

/// Whether a target that does not start with `/` has a form the method
/// allows: `*` for OPTIONS, `host:port` for CONNECT, `scheme://...` (with
/// a scheme of letters, digits, `+`, `-`, `.`) for any method.
fn other_target_form_ok(method: &[u8], target: &[u8]) -> bool {
    match method {
        b"OPTIONS" if target == b"*" => true,
        b"CONNECT" => target.contains(&b':') && !target.contains(&b'/'),
        _ => {
            let Some(colon) = target.iter().position(|&b| b == b':') else {
                return false;
            };
            colon > 0
                && target[0].is_ascii_alphabetic()
                && target[..colon]
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
                && target[colon..].starts_with(b"://")
        }
    }
}

/// Whether `v` (shorter than 8 bytes) is a prefix of `HTTP/d.d`.
fn could_be_version(v: &[u8]) -> bool {
    v.iter().enumerate().all(|(i, &b)| match i {
        0..=4 => b == b"HTTP/"[i],
        5 | 7 => b.is_ascii_digit(),
        _ => b == b'.',
    })
}

#[inline]
fn trim_ows(s: &[u8]) -> &[u8] {
    let mut a = 0;
    let mut b = s.len();
    while a < b && matches!(s[a], b' ' | b'\t') {
        a += 1;
    }
    while b > a && matches!(s[b - 1], b' ' | b'\t') {
        b -= 1;
    }
    &s[a..b]
}

/// Longest chunk-size line (size, extensions, CRLF) accepted.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line at `pos`.
    Size,
    /// Copying chunk data; this many bytes remain.
    Data(u64),
    /// Expecting CRLF after chunk data.
    DataEnd,
    /// Reading trailer fields (after the last chunk).
    Trailers,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body in place: encoded bytes are read at `pos` and the
/// data is moved down to `out`, so that the decoded body ends up contiguous
/// right after the head. Resumable: call [`ChunkedDecoder::advance`] again
/// when more bytes arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Next encoded byte to read (absolute index into the buffer).
    pub pos: usize,
    /// End of the decoded data (absolute index into the buffer).
    pub out: usize,
    total: u64,
    trailer_bytes: usize,
}

impl ChunkedDecoder {
    /// A decoder whose body starts at `start`.
    pub fn new(start: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size,
            pos: start,
            out: start,
            total: 0,
            trailer_bytes: 0,
        }
    }

    /// Decodes what `buf[self.pos..]` holds. `Ok(true)` when the body and
    /// its trailers are complete (`self.pos` is then the end of the message).
    pub fn advance(&mut self, buf: &mut [u8], limits: &Limits) -> Result<bool, ParseError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let line = &buf[self.pos..];
                    let (size, line_len) = match parse_chunk_size_line(line)? {
                        Some(x) => x,
                        None => {
                            if line.len() > MAX_CHUNK_LINE {
                                return Err(ParseError::InvalidChunkSize);
                            }
                            return Ok(false);
                        }
                    };
                    if line_len > MAX_CHUNK_LINE {
                        return Err(ParseError::InvalidChunkSize);
                    }
                    self.pos += line_len;
                    if size == 0 {
                        self.state = ChunkState::Trailers;
                    } else {
                        self.total = self.total.saturating_add(size);
                        if self.total > limits.max_body {
                            return Err(ParseError::BodyTooLarge);
                        }
                        self.state = ChunkState::Data(size);
                    }
                }
                ChunkState::Data(remaining) => {
                    let avail = (buf.len() - self.pos) as u64;
                    if avail == 0 {
                        return Ok(false);
                    }
                    let n = remaining.min(avail) as usize;
                    if self.out != self.pos {
                        buf.copy_within(self.pos..self.pos + n, self.out);
                    }
                    self.pos += n;
                    self.out += n;
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => match buf.get(self.pos..self.pos + 2) {
                    None if buf.len() - self.pos == 1 && buf[self.pos] != b'\r' => {
                        return Err(ParseError::InvalidChunkTerminator)
                    }
                    None => return Ok(false),
                    Some(b"\r\n") => {
                        self.pos += 2;
                        self.state = ChunkState::Size;
                    }
                    Some(_) => return Err(ParseError::InvalidChunkTerminator),
                },
                ChunkState::Trailers => {
                    let rest = &buf[self.pos..];
                    match rest {
                        [] | [b'\r'] => return Ok(false),
                        [b'\r', b'\n', ..] => {
                            self.pos += 2;
                            self.state = ChunkState::Done;
                            continue;
                        }
                        _ => {}
                    }
                    // Only the bytes still allowed by the limit are looked
                    // at, so the verdict does not depend on read sizes.
                    let allowed = limits.max_header_bytes.saturating_sub(self.trailer_bytes);
                    let window = &rest[..rest.len().min(allowed)];
                    match parse_trailer_line(window)? {
                        Some(len) => {
                            self.trailer_bytes += len;
                            self.pos += len;
                        }
                        None if rest.len() >= allowed => return Err(ParseError::HeadersTooLarge),
                        None => return Ok(false),
                    }
                }
            }
        }
    }

    /// Whether the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// `chunk-size [ chunk-ext ] CRLF`; returns the size and the line length,
/// or `None` if the line is incomplete.
fn parse_chunk_size_line(line: &[u8]) -> Result<Option<(u64, usize)>, ParseError> {
    let (size, mut i) = match parse_hex(line) {
        Digits::Overflow => return Err(ParseError::ChunkSizeOverflow),
        Digits::Run { end, .. } if end == line.len() => return Ok(None),
        Digits::Run { end: 0, .. } => return Err(ParseError::InvalidChunkSize),
        Digits::Run { end, value } => (value, end),
    };
    // BWS before an extension.
    while matches!(line.get(i), Some(b' ') | Some(b'\t')) {
        i += 1;
    }
    match line.get(i) {
        None => return Ok(None),
        Some(b';') => {
            // chunk-ext: we ignore it but it must not hide CR/LF/CTLs.
            i += 1;
            i += scan_field_value(&line[i..]);
        }
        _ => {}
    }
    match line.get(i) {
        None => Ok(None),
        Some(b'\r') => match line.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some((size, i + 2))),
            Some(_) => Err(ParseError::InvalidChunkSize),
        },
        _ => Err(ParseError::InvalidChunkSize),
    }
}

/// One trailer field line; returns its length including CRLF, or `None` if
/// incomplete.
fn parse_trailer_line(line: &[u8]) -> Result<Option<usize>, ParseError> {
    if matches!(line.first(), Some(b' ') | Some(b'\t')) {
        return Err(ParseError::InvalidTrailer);
    }
    let nlen = scan_token(line);
    match line.get(nlen) {
        None => return Ok(None),
        Some(b':') if nlen > 0 => {}
        _ => return Err(ParseError::InvalidTrailer),
    }
    let v = nlen + 1;
    let end = v + scan_field_value(&line[v..]);
    match line.get(end) {
        None => Ok(None),
        Some(b'\r') => match line.get(end + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(end + 2)),
            Some(_) => Err(ParseError::InvalidTrailer),
        },
        _ => Err(ParseError::InvalidTrailer),
    }
}

/// Whether `buf` (an incomplete head) contains a LF; used to skip re-parsing
/// partial heads that gained no complete line.
#[inline]
pub fn has_line_end(buf: &[u8]) -> bool {
    find_byte2(buf, b'\n', b'\n').is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<Parsed, ParseError> {
        let mut spans = [HeaderSpan::default(); 100];
        parse_head(s, &Limits::default(), &mut spans)
    }

    fn err(s: &[u8]) -> ParseError {
        parse(s).unwrap_err()
    }

    #[test]
    fn simple() {
        let Parsed::Complete(h) =
            parse(b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\nrest").unwrap()
        else {
            panic!()
        };
        assert_eq!(h.len, 41);
        assert_eq!(h.headers, 2);
        assert_eq!(h.body, BodyKind::None);
        assert!(h.keep_alive);
        assert_eq!(
            parse(b"GET /a?b HTTP/1.1\r\nHost: x\r\n").unwrap(),
            Parsed::Partial
        );
        assert_eq!(parse(b"GE").unwrap(), Parsed::Partial);
        assert_eq!(parse(b"GET / HTTP/1.").unwrap(), Parsed::Partial);
    }

    #[test]
    fn rejections() {
        use ParseError::*;
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"), ContentLengthWithTransferEncoding);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
            DuplicateContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"),
            InvalidContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            InvalidContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            InvalidContentLength
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
            UnsupportedTransferEncoding
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"),
            UnsupportedTransferEncoding
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n"),
            ObsFold
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            WhitespaceBeforeColon
        );
        assert_eq!(err(b"GET / HTTP/1.1\nHost: x\n\n"), BareLf);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n"), BareLf);
        assert_eq!(err(b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"), BareCr);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n"),
            InvalidHeaderValue
        );
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: x\x01\r\n\r\n"),
            InvalidHeaderValue
        );
        assert_eq!(err(b"GET / HTTP/1.1\r\n\r\n"), MissingHost);
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            DuplicateHost
        );
        assert_eq!(
            err(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            UnsupportedVersion
        );
        assert_eq!(err(b"GET / HTXP/1.1\r\n"), InvalidVersion);
        assert_eq!(err(b"GET  / HTTP/1.1\r\n"), InvalidTarget);
        assert_eq!(err(b"G(T / HTTP/1.1\r\n"), InvalidMethod);
        assert_eq!(err(b"GET /\x7f HTTP/1.1\r\n"), InvalidTarget);
        assert_eq!(err(b"GET abc HTTP/1.1\r\n"), InvalidTarget);
        assert_eq!(err(b"GET * HTTP/1.1\r\n"), InvalidTarget);
        assert_eq!(err(b"GET example.com:80 HTTP/1.1\r\n"), InvalidTarget);
        assert_eq!(err(b"GET 1http://x/ HTTP/1.1\r\n"), InvalidTarget);
        assert!(parse(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(parse(b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert!(parse(b"GET https://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n").is_ok());
        assert_eq!(
            err(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: nope\r\n\r\n"),
            UnsupportedExpectation
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n"),
            BodyTooLarge
        );
        assert_eq!(
            err(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            UnsupportedTransferEncoding
        );
        let long = [b"GET /".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(err(&long), TargetTooLong);
        let big = [
            b"GET / HTTP/1.1\r\nHost: a\r\nX: ".as_slice(),
            &[b'a'; 17000],
        ]
        .concat();
        assert_eq!(err(&big), HeadersTooLarge);
    }

    #[test]
    fn versions_and_keepalive() {
        let ka = |s: &[u8]| match parse(s).unwrap() {
            Parsed::Complete(h) => h.keep_alive,
            Parsed::Partial => panic!(),
        };
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n"
        ));
        assert!(ka(b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    }

    /// The structural fast path and the line parser agree on every complete
    /// head: same verdict, same spans.
    #[test]
    fn fast_path_matches_line_parser() {
        let seeds: &[&[u8]] = &[
            b"GET /a HTTP/1.1\r\nHost: x\r\nA: b\r\nCookie: k=v; k2=v2\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\nExpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
        ];
        let limits = Limits {
            max_headers: 6,
            ..Limits::default()
        };
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n.max(1) as u64) as usize
        };
        let bytes: &[u8] = b"\r\n \t:\0\x7f\x80aZ,;=";
        for _ in 0..20000 {
            let mut v = seeds[rnd(seeds.len())].to_vec();
            let body_start = v.len() - 4;
            for _ in 0..rnd(4) {
                let at = 16 + rnd(body_start - 16);
                match rnd(3) {
                    0 => v[at] = bytes[rnd(bytes.len())],
                    1 => v.insert(at, bytes[rnd(bytes.len())]),
                    _ => {
                        v.remove(at);
                    }
                }
            }
            if rnd(3) == 0 {
                let extra =
                    b"X-Pad: 0123456789abcdef0123456789abcdef0123456789abcdef\r\n".repeat(rnd(40));
                let at = v.iter().position(|&b| b == b'\n').unwrap_or(0) + 1;
                v.splice(at..at, extra);
            }
            let Some(end) = find_header_end(&v) else {
                continue;
            };
            let head = &v[..end];
            let mut a = [HeaderSpan::default(); 100];
            let mut b = [HeaderSpan::default(); 100];
            let fast = parse_lines(head, 0, true, &limits, &mut a);
            let slow = parse_lines(head, 0, false, &limits, &mut b);
            assert_eq!(fast, slow, "{:?}", String::from_utf8_lossy(head));
            if let Ok(Some(h)) = fast {
                assert_eq!(a[..h.headers], b[..h.headers]);
            }
        }
    }

    #[test]
    fn chunked() {
        let limits = Limits::default();
        let mut buf = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT".to_vec();
        let mut d = ChunkedDecoder::new(0);
        assert!(d.advance(&mut buf, &limits).unwrap());
        assert_eq!(&buf[..d.out], b"hello world");
        assert_eq!(&buf[d.pos..], b"NEXT");

        let cases: &[(&[u8], ParseError)] = &[
            (b"x\r\n", ParseError::InvalidChunkSize),
            (b"10000000000000000\r\n", ParseError::ChunkSizeOverflow),
            (b"5\r\nhelloXX", ParseError::InvalidChunkTerminator),
            (b"5\nhello", ParseError::InvalidChunkSize),
            (b"0\r\nBad Trailer\r\n\r\n", ParseError::InvalidTrailer),
            (b"200000\r\n", ParseError::BodyTooLarge),
            (b"-1\r\n", ParseError::InvalidChunkSize),
        ];
        for (input, want) in cases {
            let mut b = input.to_vec();
            let mut d = ChunkedDecoder::new(0);
            assert_eq!(
                d.advance(&mut b, &limits),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
