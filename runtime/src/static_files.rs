//! The static-files handler (`--static DIR`): `GET`/`HEAD` of files under a
//! root directory, sent with `sendfile(2)`, with `Content-Type` by
//! extension, `ETag`/`Last-Modified` and `304`, single `Range` requests
//! (`206`/`416`), and no way out of the root (`..` segments, encoded
//! slashes and NULs are refused; symlinks are resolved and must stay inside).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::handler::{CompletionSink, Handled, Handler, Method, Request, RequestId, Response};
use crate::server::date::format_imf_fixdate;

/// Serves files under `root`; requests for missing files go to `fallback`
/// (or get 404).
pub struct StaticFiles {
    root: PathBuf,
    fallback: Option<Box<dyn Handler>>,
}

impl StaticFiles {
    /// A handler serving `root` (canonicalised now; errors if missing).
    pub fn new(root: &Path, fallback: Option<Box<dyn Handler>>) -> Result<StaticFiles, String> {
        let root = root
            .canonicalize()
            .map_err(|e| format!("--static {}: {e}", root.display()))?;
        if !root.is_dir() {
            return Err(format!("--static {}: not a directory", root.display()));
        }
        Ok(StaticFiles { root, fallback })
    }

    fn not_found(&mut self, req: &Request<'_>, res: &mut Response<'_>) -> Handled {
        match &mut self.fallback {
            Some(f) => f.handle(req, res),
            None => {
                res.status(404).header(b"Content-Type", b"text/plain");
                res.send(b"not found\n");
                Handled::Done
            }
        }
    }
}

/// Why a request path cannot name a file under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `..` segment (after percent-decoding).
    Traversal,
    /// A malformed percent escape, an encoded `/` or `\`, or a NUL.
    BadEncoding,
}

/// Maps a request path to a relative file path: percent-decoded, `.` and
/// empty segments dropped, `..` refused.
pub fn resolve(path: &[u8]) -> Result<PathBuf, PathError> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = PathBuf::new();
    for seg in path.split(|&b| b == b'/') {
        let mut dec = Vec::with_capacity(seg.len());
        let mut i = 0;
        while i < seg.len() {
            let b = seg[i];
            if b == b'%' {
                let hex = |c: u8| (c as char).to_digit(16);
                let (Some(h), Some(l)) = (
                    seg.get(i + 1).and_then(|&c| hex(c)),
                    seg.get(i + 2).and_then(|&c| hex(c)),
                ) else {
                    return Err(PathError::BadEncoding);
                };
                let v = (h * 16 + l) as u8;
                if v == b'/' || v == b'\\' || v == 0 {
                    return Err(PathError::BadEncoding);
                }
                dec.push(v);
                i += 3;
            } else {
                if b == b'\\' {
                    return Err(PathError::BadEncoding);
                }
                dec.push(b);
                i += 1;
            }
        }
        match &dec[..] {
            b"" | b"." => {}
            b".." => return Err(PathError::Traversal),
            d => out.push(std::ffi::OsStr::from_bytes(d)),
        }
    }
    Ok(out)
}

/// `Content-Type` by file extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// A parsed `Range: bytes=...` for a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Serve the whole representation (no or unsupported Range).
    Full,
    /// Serve `start..=end`.
    Partial(u64, u64),
    /// 416.
    Unsatisfiable,
}

/// Parses a single byte range (multiple ranges are served as `Full`, which
/// RFC 9110 §14.2 allows).
pub fn parse_range(v: &[u8], size: u64) -> RangeSpec {
    let Some(spec) = v.strip_prefix(b"bytes=") else {
        return RangeSpec::Full;
    };
    if spec.contains(&b',') {
        return RangeSpec::Full;
    }
    let spec = std::str::from_utf8(spec).unwrap_or("").trim();
    let Some((a, b)) = spec.split_once('-') else {
        return RangeSpec::Full;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeSpec::Full,
        (true, false) => match num(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(n) if size == 0 => {
                let _ = n;
                RangeSpec::Unsatisfiable
            }
            Some(n) => RangeSpec::Partial(size.saturating_sub(n), size - 1),
            None => RangeSpec::Full,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeSpec::Full;
            };
            let end = if b.is_empty() {
                Some(u64::MAX)
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeSpec::Full,
                }
            };
            if start >= size {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Partial(start, end.unwrap_or(u64::MAX).min(size - 1))
        }
    }
}

/// Parses an IMF-fixdate to Unix seconds.
pub fn parse_http_date(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2])? as u64 + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<_>>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days_from_civil
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days)
        .ok()
        .map(|d| d * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

impl Handler for StaticFiles {
    fn handle(&mut self, req: &Request<'_>, res: &mut Response<'_>) -> Handled {
        let method = req.method_kind();
        let rel = match resolve(req.path()) {
            Ok(p) => p,
            Err(_) => {
                res.status(400).header(b"Content-Type", b"text/plain");
                res.send(b"bad path\n");
                return Handled::Done;
            }
        };
        if method != Method::Get && method != Method::Head {
            return self.not_found(req, res);
        }
        let mut full = self.root.join(&rel);
        if full.is_dir() {
            full.push("index.html");
        }
        // Resolve symlinks and make sure we are still under the root.
        let Ok(real) = full.canonicalize() else {
            return self.not_found(req, res);
        };
        if !real.starts_with(&self.root) {
            return self.not_found(req, res);
        }
        let Ok(file) = File::open(&real) else {
            return self.not_found(req, res);
        };
        let Ok(meta) = file.metadata() else {
            return self.not_found(req, res);
        };
        if !meta.is_file() {
            return self.not_found(req, res);
        }
        let size = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let etag = format!("\"{:x}-{:x}-{:x}\"", size, meta.mtime(), meta.mtime_nsec());
        let last_modified = format_imf_fixdate(mtime);

        let not_modified = match req.header(b"if-none-match") {
            Some(inm) => inm.split(|&b| b == b',').map(trim).any(|t| {
                t == b"*" || t == etag.as_bytes() || t.strip_prefix(b"W/") == Some(etag.as_bytes())
            }),
            None => req
                .header(b"if-modified-since")
                .and_then(parse_http_date)
                .is_some_and(|since| mtime <= since),
        };
        let ctype = content_type(&real);
        if not_modified {
            res.status(304)
                .header(b"ETag", etag.as_bytes())
                .header(b"Last-Modified", &last_modified);
            res.send(b"");
            return Handled::Done;
        }
        let mut range = match req.header(b"range") {
            Some(r) if method == Method::Get || method == Method::Head => parse_range(r, size),
            _ => RangeSpec::Full,
        };
        if let Some(ir) = req.header(b"if-range") {
            if ir != etag.as_bytes() && ir != last_modified.as_slice() {
                range = RangeSpec::Full;
            }
        }
        match range {
            RangeSpec::Unsatisfiable => {
                let cr = format!("bytes */{size}");
                res.status(416)
                    .header(b"Content-Range", cr.as_bytes())
                    .header(b"Content-Type", b"text/plain");
                res.send(b"range not satisfiable\n");
            }
            RangeSpec::Partial(a, b) => {
                let cr = format!("bytes {a}-{b}/{size}");
                res.status(206)
                    .header(b"Content-Type", ctype.as_bytes())
                    .header(b"Content-Range", cr.as_bytes())
                    .header(b"Accept-Ranges", b"bytes")
                    .header(b"ETag", etag.as_bytes())
                    .header(b"Last-Modified", &last_modified);
                res.send_file(file, a, b - a + 1);
            }
            RangeSpec::Full => {
                res.header(b"Content-Type", ctype.as_bytes())
                    .header(b"Accept-Ranges", b"bytes")
                    .header(b"ETag", etag.as_bytes())
                    .header(b"Last-Modified", &last_modified);
                res.send_file(file, 0, size);
            }
        }
        Handled::Done
    }

    fn tick(&mut self, sink: &mut CompletionSink<'_>) {
        if let Some(f) = &mut self.fallback {
            f.tick(sink);
        }
    }

    fn cancelled(&mut self, id: RequestId) {
        if let Some(f) = &mut self.fallback {
            f.cancelled(id);
        }
    }

    fn next_deadline(&mut self) -> Option<std::time::Instant> {
        self.fallback.as_mut().and_then(|f| f.next_deadline())
    }

    fn busy(&self) -> bool {
        self.fallback.as_ref().is_some_and(|f| f.busy())
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let b = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(a, |i| i + 1);
    &s[a..b]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            resolve(b"/a/./b//c.txt").unwrap(),
            PathBuf::from("a/b/c.txt")
        );
        assert_eq!(resolve(b"/../etc/passwd"), Err(PathError::Traversal));
        assert_eq!(resolve(b"/a/%2e%2e/b"), Err(PathError::Traversal));
        assert_eq!(resolve(b"/a%2f..%2fb"), Err(PathError::BadEncoding));
        assert_eq!(resolve(b"/a%00"), Err(PathError::BadEncoding));
        assert_eq!(resolve(b"/a%zz"), Err(PathError::BadEncoding));
        assert_eq!(resolve(b"/..\\x"), Err(PathError::BadEncoding));
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-9", 100), RangeSpec::Partial(0, 9));
        assert_eq!(parse_range(b"bytes=90-", 100), RangeSpec::Partial(90, 99));
        assert_eq!(parse_range(b"bytes=-10", 100), RangeSpec::Partial(90, 99));
        assert_eq!(parse_range(b"bytes=-1000", 100), RangeSpec::Partial(0, 99));
        assert_eq!(parse_range(b"bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=5-1", 100), RangeSpec::Full);
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), RangeSpec::Full);
        assert_eq!(parse_range(b"items=0-1", 100), RangeSpec::Full);
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date(b"garbage"), None);
    }
}
