//! Subjects for the HTTP/1.1 scanning kernels (`kernels::http1`).

use crate::guard::{Guarded, Placement};
use crate::{Case, Subject, MAX_WIDTH};
use kernels::http1::asm::{self, DigitsFn, Find1Fn, Find2Fn, Find3Fn, ScanFn};
use kernels::http1::reference::{self, Digits};
use marg_gen::rt::{Kernel, KernelMeta, VariantMeta};
use proptest::prelude::*;
use proptest::strategy::BoxedStrategy;

/// Bytes that decide the outcome of the scanners: delimiters, CTLs, DEL,
/// obs-text, and bytes on either side of each class boundary.
const SPECIAL: &[u8] = b"\r\n\t \x00\x01\x08\x0b\x1f\x20\x21\x7e\x7f\x80\xff:;,\"()/\\{}?=@[]";
const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const HEADER_BYTES: &[u8] = b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
const DIGITS: &[u8] = b"0123456789";
const HEX: &[u8] = b"0123456789abcdefABCDEF";

/// Lengths biased to 0..=3x the widest vector, with a tail of longer inputs
/// so that unrolled main loops run too.
fn length() -> BoxedStrategy<usize> {
    prop_oneof![
        8 => 0..=3 * MAX_WIDTH,
        1 => 3 * MAX_WIDTH..2048usize,
    ]
    .boxed()
}

/// Bytes drawn mostly from `common`, sometimes from [`SPECIAL`], rarely any.
fn bytes_from(common: &'static [u8]) -> BoxedStrategy<Vec<u8>> {
    let byte = prop_oneof![
        12 => prop::sample::select(common),
        1 => prop::sample::select(SPECIAL),
        1 => any::<u8>(),
    ];
    length()
        .prop_flat_map(move |n| prop::collection::vec(byte.clone(), n))
        .boxed()
}

fn call_scan(f: ScanFn, g: &Guarded) -> usize {
    let b = g.bytes();
    // SAFETY: scanning kernels read only `b` (the guard page proves it) and
    // have no other preconditions.
    unsafe { f(b.as_ptr(), b.len()) }
}

/// A kernel of type `(ptr, len) -> index` checked against a reference.
struct Scan {
    kernel: &'static Kernel<ScanFn>,
    reference: fn(&[u8]) -> usize,
    common: &'static [u8],
}

impl Subject for Scan {
    fn meta(&self) -> &'static KernelMeta {
        self.kernel.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        bytes_from(self.common)
            .prop_map(|a| Case {
                a,
                ..Case::default()
            })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let f = self.kernel.variant_of(v).map_err(|e| e.to_string())?;
        let g = Guarded::new(&case.a, p);
        let got = call_scan(f, &g);
        let want = (self.reference)(&case.a);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "got {got}, reference {want} on {}",
                crate::show(&case.a)
            ))
        }
    }
}

/// `find_byte` / `find_byte2` / `find_byte3`.
struct FindBytes {
    kernel1: Option<&'static Kernel<Find1Fn>>,
    kernel2: Option<&'static Kernel<Find2Fn>>,
    kernel3: Option<&'static Kernel<Find3Fn>>,
}

impl Subject for FindBytes {
    fn meta(&self) -> &'static KernelMeta {
        match (self.kernel1, self.kernel2, self.kernel3) {
            (Some(k), _, _) => k.meta(),
            (_, Some(k), _) => k.meta(),
            (_, _, Some(k)) => k.meta(),
            _ => unreachable!("one kernel is always set"),
        }
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        (
            bytes_from(b"abcdefghijklmnopqrstuvwxyz"),
            any::<[u8; 3]>(),
            prop::sample::select(SPECIAL),
        )
            .prop_map(|(a, mut params, special)| {
                // Usually look for bytes that occur; sometimes for ones that do not.
                if !a.is_empty() && params[0] % 4 != 0 {
                    params[1] = a[a.len() * usize::from(params[1]) / 256];
                }
                params[2] = special;
                Case {
                    a,
                    b: Vec::new(),
                    params,
                }
            })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let g = Guarded::new(&case.a, p);
        let b = g.bytes();
        let [x, y, z] = case.params;
        let (got, want) = if let Some(k) = self.kernel1 {
            let f = k.variant_of(v).map_err(|e| e.to_string())?;
            // SAFETY: reads only `b`; the needle is a plain value.
            let got = unsafe { f(b.as_ptr(), b.len(), u32::from(x)) };
            (got, reference::find_byte(&case.a, x))
        } else if let Some(k) = self.kernel2 {
            let f = k.variant_of(v).map_err(|e| e.to_string())?;
            // SAFETY: reads only `b`; the needles are plain values.
            let got = unsafe { f(b.as_ptr(), b.len(), u32::from(x), u32::from(y)) };
            (got, reference::find_byte2(&case.a, x, y))
        } else {
            let k = self.kernel3.expect("one kernel is always set");
            let f = k.variant_of(v).map_err(|e| e.to_string())?;
            // SAFETY: reads only `b`; the needles are plain values.
            let got = unsafe {
                f(
                    b.as_ptr(),
                    b.len(),
                    u32::from(x),
                    u32::from(y),
                    u32::from(z),
                )
            };
            (got, reference::find_byte3(&case.a, x, y, z))
        };
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "needles {:?}: got {got}, reference {want} on {}",
                case.params,
                crate::show(&case.a)
            ))
        }
    }
}

/// `eq_ignore_ascii_case` on two guarded operands of equal length.
struct EqIgnoreCase;

impl Subject for EqIgnoreCase {
    fn meta(&self) -> &'static KernelMeta {
        asm::EQ_IGNORE_ASCII_CASE.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        bytes_from(b"content-typeCONTENT-LENGTHxX@[`{")
            .prop_flat_map(|a| {
                let n = a.len();
                (Just(a), prop::collection::vec(0u8..=40, n))
            })
            .prop_map(|(a, edits)| {
                // b is a with case flips and, rarely, a changed byte.
                let b = a
                    .iter()
                    .zip(&edits)
                    .map(|(&c, &e)| match e {
                        0 => c ^ 0x20,
                        1 => c.wrapping_add(1),
                        2..=20 if c.is_ascii_alphabetic() => c ^ 0x20,
                        _ => c,
                    })
                    .collect();
                Case {
                    a,
                    b,
                    params: [0; 3],
                }
            })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let f = asm::EQ_IGNORE_ASCII_CASE
            .variant_of(v)
            .map_err(|e| e.to_string())?;
        let ga = Guarded::new(&case.a, p);
        let gb = Guarded::new(&case.b, p);
        let n = case.a.len().min(case.b.len());
        let a = &ga.bytes()[..n];
        let b = &gb.bytes()[..n];
        // SAFETY: both pointers are valid for `n` bytes.
        let got = unsafe { f(a.as_ptr(), b.as_ptr(), n) } != 0;
        let want = reference::eq_ignore_ascii_case(&case.a[..n], &case.b[..n]);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "got {got}, reference {want} on {} vs {}",
                crate::show(a),
                crate::show(b)
            ))
        }
    }
}

/// `parse_decimal` / `parse_hex`.
struct ParseDigits {
    kernel: &'static Kernel<DigitsFn>,
    reference: fn(&[u8]) -> Digits,
    digits: &'static [u8],
}

impl Subject for ParseDigits {
    fn meta(&self) -> &'static KernelMeta {
        self.kernel.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        let digits = self.digits;
        let run = prop_oneof![
            4 => 0usize..=20,
            2 => 0usize..=40,
            1 => 0usize..=3 * MAX_WIDTH,
        ];
        (
            run,
            prop::collection::vec(prop::sample::select(digits), 3 * MAX_WIDTH),
            0usize..=24,
            prop::collection::vec(prop::sample::select(SPECIAL), 0..8),
        )
            .prop_map(move |(n, pool, zeros, tail)| {
                let mut a = vec![b'0'; zeros];
                a.extend_from_slice(&pool[..n]);
                a.extend_from_slice(&tail);
                Case {
                    a,
                    ..Case::default()
                }
            })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let f = self.kernel.variant_of(v).map_err(|e| e.to_string())?;
        let g = Guarded::new(&case.a, p);
        let b = g.bytes();
        let mut value = 0u64;
        // SAFETY: reads only `b`, writes only `value`.
        let end = unsafe { f(b.as_ptr(), b.len(), &mut value) };
        let got = if end == usize::MAX {
            Digits::Overflow
        } else {
            Digits::Run { end, value }
        };
        let want = (self.reference)(&case.a);
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "got {got:?}, reference {want:?} on {}",
                crate::show(&case.a)
            ))
        }
    }
}

/// `classify_head`: every mask word against the reference.
struct ClassifyHead;

impl Subject for ClassifyHead {
    fn meta(&self) -> &'static KernelMeta {
        asm::CLASSIFY_HEAD.meta()
    }

    fn strategy(&self) -> BoxedStrategy<Case> {
        bytes_from(b"GET / HTTP/1.1\r\nHost: a.example\r\nAccept: text/html\r\n\r\n")
            .prop_map(|a| Case {
                a,
                ..Case::default()
            })
            .boxed()
    }

    fn check(&self, v: &'static VariantMeta, case: &Case, p: Placement) -> Result<(), String> {
        let f = asm::CLASSIFY_HEAD
            .variant_of(v)
            .map_err(|e| e.to_string())?;
        let g = Guarded::new(&case.a, p);
        let b = g.bytes();
        let want = reference::classify_head(&case.a);
        // One spare chunk filled with a canary: the kernel must not write it.
        let canary = reference::ChunkMasks {
            special: 0xdead,
            colon: 0xbeef,
            non_tchar: 0xf00d,
        };
        let mut got = vec![canary; want.len() + 1];
        // SAFETY: reads only `b`; `got` has room for ceil(len / 64) chunks of
        // three u64s (ChunkMasks is repr(C)).
        let n = unsafe { f(b.as_ptr(), b.len(), got.as_mut_ptr().cast::<u64>()) };
        if n != want.len() || got[..n] != want[..] || got[n] != canary {
            return Err(format!(
                "chunks {n} vs {}; got {:x?}, reference {want:x?} on {}",
                want.len(),
                &got,
                crate::show(&case.a)
            ));
        }
        Ok(())
    }
}

static FIND_HEADER_END: Scan = Scan {
    kernel: &asm::FIND_HEADER_END,
    reference: reference::find_header_end,
    common: HEADER_BYTES,
};
static SCAN_TOKEN: Scan = Scan {
    kernel: &asm::SCAN_TOKEN,
    reference: reference::scan_token,
    common: TCHARS,
};
static SCAN_TARGET: Scan = Scan {
    kernel: &asm::SCAN_TARGET,
    reference: reference::scan_target,
    common: b"/abcdefghijklmnopqrstuvwxyz0123456789?=&%-._~+",
};
static SCAN_FIELD_VALUE: Scan = Scan {
    kernel: &asm::SCAN_FIELD_VALUE,
    reference: reference::scan_field_value,
    common: b"text/html, application/xhtml+xml; q=0.9 \t\x80\xff",
};
static FIND_BYTE: FindBytes = FindBytes {
    kernel1: Some(&asm::FIND_BYTE),
    kernel2: None,
    kernel3: None,
};
static FIND_BYTE2: FindBytes = FindBytes {
    kernel1: None,
    kernel2: Some(&asm::FIND_BYTE2),
    kernel3: None,
};
static FIND_BYTE3: FindBytes = FindBytes {
    kernel1: None,
    kernel2: None,
    kernel3: Some(&asm::FIND_BYTE3),
};
static EQ: EqIgnoreCase = EqIgnoreCase;
static PARSE_DECIMAL: ParseDigits = ParseDigits {
    kernel: &asm::PARSE_DECIMAL,
    reference: reference::parse_decimal,
    digits: DIGITS,
};
static PARSE_HEX: ParseDigits = ParseDigits {
    kernel: &asm::PARSE_HEX,
    reference: reference::parse_hex,
    digits: HEX,
};

/// The HTTP/1.1 scanning subjects.
pub fn subjects() -> Vec<&'static dyn Subject> {
    vec![
        &FIND_HEADER_END,
        &SCAN_TOKEN,
        &SCAN_TARGET,
        &SCAN_FIELD_VALUE,
        &FIND_BYTE,
        &FIND_BYTE2,
        &FIND_BYTE3,
        &EQ,
        &PARSE_DECIMAL,
        &PARSE_HEX,
        &ClassifyHead,
    ]
}
