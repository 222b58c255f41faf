//! Small safe-ish helpers over the raw C API: string conversion, property access,
//! errors. Every function takes a live context; none of them panics.

use crate::ffi::*;
use std::ptr;

/// An owned `JSStringRef`, released on drop.
pub(crate) struct JsString(pub(crate) JSStringRef);

impl JsString {
    /// The string's UTF-16 code units (empty for a null string).
    ///
    /// This is how text leaves JSC: the C API has no access to an 8-bit string's bytes, so JSC
    /// makes (and caches) a 16-bit copy, widening about a character per cycle, and
    /// [`utf16_to_utf8`] narrows it again, about one instruction per character when it is
    /// ASCII. `JSStringGetUTF8CString`, which converts 8-bit strings directly, measured 29
    /// instructions per character (callgrind, Debian's libjavascriptcoregtk-4.0 2.48).
    pub(crate) fn units(&self) -> &[u16] {
        if self.0.is_null() {
            return &[];
        }
        // SAFETY: the string is live while `self` is; the characters pointer stays valid
        // while it lives and holds `JSStringGetLength` code units.
        unsafe {
            let len = JSStringGetLength(self.0);
            let p = JSStringGetCharactersPtr(self.0);
            if p.is_null() || len == 0 {
                return &[];
            }
            std::slice::from_raw_parts(p, len)
        }
    }

    /// Creates a JS string from UTF-8 text.
    pub(crate) fn new(s: &str) -> JsString {
        let utf16: Vec<u16> = s.encode_utf16().collect();
        Self::from_utf16(&utf16)
    }

    /// Creates a JS string from UTF-16 code units.
    pub(crate) fn from_utf16(units: &[u16]) -> JsString {
        // SAFETY: the pointer/length pair describes a live slice; JSC copies it.
        JsString(unsafe { JSStringCreateWithCharacters(units.as_ptr(), units.len()) })
    }

    /// Creates a JS string from Latin-1 bytes (header bytes, targets), using `scratch`. ASCII
    /// without NUL (the usual case) becomes an 8-bit JSC string through the UTF-8 constructor;
    /// anything else goes through UTF-16 units (a 16-bit string: slower to compare and copy).
    pub(crate) fn from_latin1(bytes: &[u8], scratch: &mut Vec<u16>) -> JsString {
        if bytes.iter().all(|&b| b != 0 && b < 0x80) {
            let mut z = std::mem::take(scratch);
            z.clear();
            // The u16 scratch doubles as a NUL-terminated byte buffer.
            z.resize(bytes.len() / 2 + 1, 0);
            let p = z.as_mut_ptr() as *mut u8;
            // SAFETY: `z` holds `2·(len/2 + 1) > len` bytes; we write `len` bytes and the NUL,
            // and JSC copies the NUL-terminated ASCII (valid UTF-8) it is given.
            let s = unsafe {
                ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
                *p.add(bytes.len()) = 0;
                JsString(JSStringCreateWithUTF8CString(
                    p as *const std::os::raw::c_char,
                ))
            };
            *scratch = z;
            return s;
        }
        scratch.clear();
        scratch.extend(bytes.iter().map(|&b| b as u16));
        Self::from_utf16(scratch)
    }
}

impl Drop for JsString {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: we own one reference to this string.
            unsafe { JSStringRelease(self.0) }
        }
    }
}

/// Appends the UTF-8 encoding of a JS string to `out` (lone surrogates become U+FFFD).
pub(crate) fn append_utf8(s: &JsString, out: &mut Vec<u8>) {
    utf16_to_utf8(s.units(), out);
}

/// Whether UTF-16 code units are all ASCII (an OR-reduction rather than `all`: no early exit,
/// so it vectorises).
pub(crate) fn is_ascii(units: &[u16]) -> bool {
    units.iter().fold(0u16, |a, &u| a | u) < 0x80
}

/// Appends UTF-16 code units that are all ASCII to `out`, one byte each.
pub(crate) fn narrow_ascii(units: &[u16], out: &mut Vec<u8>) {
    debug_assert!(is_ascii(units));
    out.reserve(units.len());
    out.extend(units.iter().map(|&u| u as u8));
}

/// Appends the UTF-8 encoding of UTF-16 code units to `out` (lone surrogates become U+FFFD).
pub(crate) fn utf16_to_utf8(units: &[u16], out: &mut Vec<u8>) {
    if is_ascii(units) {
        narrow_ascii(units, out);
        return;
    }
    out.reserve(units.len() * 3);
    let mut buf = [0u8; 4];
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
}

/// Converts any value to a Rust string (via JS `String(value)`); `None` if that threw.
pub(crate) fn to_rust_string(ctx: JSContextRef, v: JSValueRef) -> Option<String> {
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx and v are live; the returned string is owned and released by JsString.
    let s = JsString(unsafe { JSValueToStringCopy(ctx, v, &mut exc) });
    if s.0.is_null() {
        return None;
    }
    let mut out = Vec::new();
    append_utf8(&s, &mut out);
    Some(String::from_utf8(out).unwrap_or_default())
}

/// Reads `obj[name]`; `undefined` on error.
pub(crate) fn get_prop(ctx: JSContextRef, obj: JSObjectRef, name: &str) -> JSValueRef {
    let n = JsString::new(name);
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx, obj and n are live.
    unsafe { JSObjectGetProperty(ctx, obj, n.0, &mut exc) }
}

/// Sets `obj[name] = v`.
pub(crate) fn set_prop(ctx: JSContextRef, obj: JSObjectRef, name: &str, v: JSValueRef) {
    let n = JsString::new(name);
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx, obj, n and v are live.
    unsafe { JSObjectSetProperty(ctx, obj, n.0, v, K_JS_PROPERTY_ATTRIBUTE_NONE, &mut exc) }
}

/// A JS string value from UTF-8 text.
pub(crate) fn make_string(ctx: JSContextRef, s: &str) -> JSValueRef {
    let js = JsString::new(s);
    // SAFETY: ctx and js are live; the value holds its own reference.
    unsafe { JSValueMakeString(ctx, js.0) }
}

/// A new `Error` object with `message` (or `undefined` if that failed).
pub(crate) fn make_error(ctx: JSContextRef, message: &str) -> JSValueRef {
    let msg = make_string(ctx, message);
    let mut exc: JSValueRef = ptr::null();
    // SAFETY: ctx is live; the argument array has one live value.
    let e = unsafe { JSObjectMakeError(ctx, 1, &msg, &mut exc) };
    if e.is_null() {
        // SAFETY: ctx is live.
        unsafe { JSValueMakeUndefined(ctx) }
    } else {
        e
    }
}

/// Whether `v` is an object (and not null).
pub(crate) fn is_object(ctx: JSContextRef, v: JSValueRef) -> bool {
    // SAFETY: ctx and v are live.
    !v.is_null() && unsafe { JSValueIsObject(ctx, v) }
}

/// Describes an exception value: `stack` if present, else `String(e)`.
pub(crate) fn describe_exception(ctx: JSContextRef, exc: JSValueRef) -> String {
    if exc.is_null() {
        return "unknown error".into();
    }
    let text = to_rust_string(ctx, exc).unwrap_or_else(|| "error".into());
    if is_object(ctx, exc) {
        let stack = get_prop(ctx, exc as JSObjectRef, "stack");
        // SAFETY: ctx is live; stack is a live value or null (checked).
        if !stack.is_null() && unsafe { JSValueIsString(ctx, stack) } {
            if let Some(s) = to_rust_string(ctx, stack) {
                if !s.is_empty() {
                    return format!("{text}\n{}", indent(&s));
                }
            }
        }
    }
    text
}

fn indent(stack: &str) -> String {
    stack
        .lines()
        .map(|l| format!("    at {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `file:line:column: message` of a syntax error reported by JSC.
pub(crate) fn syntax_error_location(ctx: JSContextRef, exc: JSValueRef, file: &str) -> String {
    let msg = to_rust_string(ctx, exc).unwrap_or_else(|| "SyntaxError".into());
    if !is_object(ctx, exc) {
        return format!("{file}: {msg}");
    }
    let num = |name: &str| -> Option<u64> {
        let v = get_prop(ctx, exc as JSObjectRef, name);
        let mut e: JSValueRef = ptr::null();
        // SAFETY: ctx and v are live.
        if v.is_null() || unsafe { JSValueGetType(ctx, v) } != K_JS_TYPE_NUMBER {
            return None;
        }
        // SAFETY: ctx and v are live.
        let n = unsafe { JSValueToNumber(ctx, v, &mut e) };
        (n.is_finite() && n >= 0.0).then_some(n as u64)
    };
    match (num("line"), num("column")) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}: {msg}"),
        (Some(l), None) => format!("{file}:{l}: {msg}"),
        _ => format!("{file}: {msg}"),
    }
}
