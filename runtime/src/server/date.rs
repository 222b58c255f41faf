//! The cached `Date` header value (RFC 9110 §5.6.7 IMF-fixdate), refreshed
//! at most once a second per worker.

use std::time::{SystemTime, UNIX_EPOCH};

/// A per-worker cache of the current IMF-fixdate.
#[derive(Debug, Clone)]
pub struct DateCache {
    secs: u64,
    buf: [u8; 29],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut d = DateCache {
            secs: u64::MAX,
            buf: [b' '; 29],
        };
        d.refresh();
        d
    }
}

impl DateCache {
    /// Re-formats the date if the second changed (cheap otherwise).
    #[inline]
    pub fn refresh(&mut self) {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if secs != self.secs {
            self.secs = secs;
            self.buf = format_imf_fixdate(secs);
        }
    }

    /// The 29 bytes `Sun, 06 Nov 1994 08:49:37 GMT`.
    #[inline]
    pub fn get(&self) -> &[u8] {
        &self.buf
    }
}

/// Formats Unix seconds as an IMF-fixdate.
pub fn format_imf_fixdate(secs: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    let (y, mo, d) = civil_from_days(days as i64);
    let mut b = [0u8; 29];
    b[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    b[3..5].copy_from_slice(b", ");
    two(&mut b[5..7], d as u64);
    b[7] = b' ';
    b[8..11].copy_from_slice(MONTHS[(mo - 1) as usize]);
    b[11] = b' ';
    let y = y.clamp(0, 9999) as u64;
    two(&mut b[12..14], y / 100);
    two(&mut b[14..16], y % 100);
    b[16] = b' ';
    two(&mut b[17..19], h);
    b[19] = b':';
    two(&mut b[20..22], m);
    b[22] = b':';
    two(&mut b[23..25], s);
    b[25..29].copy_from_slice(b" GMT");
    b
}

fn two(out: &mut [u8], v: u64) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Howard Hinnant's days-to-civil algorithm: (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_example() {
        assert_eq!(
            &format_imf_fixdate(784_111_777),
            b"Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(&format_imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            &format_imf_fixdate(951_782_400),
            b"Tue, 29 Feb 2000 00:00:00 GMT"
        );
    }
}
