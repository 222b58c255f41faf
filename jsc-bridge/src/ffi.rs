//! Minimal hand-written bindings to the JavaScriptCore C API (WebKitGTK 2.50,
//! `libjavascriptcoregtk-4.0`), only the entry points this bridge calls.
//!
//! The library is not linked: it is opened with `dlopen` on first use ([`load`]) and each
//! entry point is resolved with `dlsym` into a table of function pointers, so a `marg serve`
//! without a JavaScript app never maps JavaScriptCore (~8 MiB of resident pages otherwise).
//! The functions below keep the C API's names and signatures; each one calls through the
//! table. [`load`] reports a missing library as an error; calling a function when the library
//! could not be loaded panics with the same message.
//!
//! `JSContextGroupSetExecutionTimeLimit` is exported by the library but declared only in the
//! private `JSContextRefPrivate.h`, which Debian does not install; its prototype is copied here.
#![allow(non_camel_case_types, non_snake_case, dead_code)]

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_uint, c_void};
use std::sync::OnceLock;

#[repr(C)]
pub struct OpaqueJSContextGroup {
    _p: [u8; 0],
}
#[repr(C)]
pub struct OpaqueJSContext {
    _p: [u8; 0],
}
#[repr(C)]
pub struct OpaqueJSString {
    _p: [u8; 0],
}
#[repr(C)]
pub struct OpaqueJSClass {
    _p: [u8; 0],
}
#[repr(C)]
pub struct OpaqueJSValue {
    _p: [u8; 0],
}

pub type JSContextGroupRef = *const OpaqueJSContextGroup;
pub type JSContextRef = *const OpaqueJSContext;
pub type JSGlobalContextRef = *mut OpaqueJSContext;
pub type JSStringRef = *mut OpaqueJSString;
pub type JSClassRef = *mut OpaqueJSClass;
pub type JSValueRef = *const OpaqueJSValue;
pub type JSObjectRef = *mut OpaqueJSValue;
pub type JSChar = u16;
pub type JSPropertyAttributes = c_uint;

pub type JSObjectCallAsFunctionCallback = Option<
    unsafe extern "C" fn(
        ctx: JSContextRef,
        function: JSObjectRef,
        this_object: JSObjectRef,
        argument_count: usize,
        arguments: *const JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSValueRef,
>;
pub type JSTypedArrayBytesDeallocator =
    Option<unsafe extern "C" fn(bytes: *mut c_void, deallocator_context: *mut c_void)>;
pub type JSShouldTerminateCallback =
    Option<unsafe extern "C" fn(ctx: JSContextRef, context: *mut c_void) -> bool>;

/// `JSType`.
pub const K_JS_TYPE_UNDEFINED: c_uint = 0;
pub const K_JS_TYPE_NULL: c_uint = 1;
pub const K_JS_TYPE_BOOLEAN: c_uint = 2;
pub const K_JS_TYPE_NUMBER: c_uint = 3;
pub const K_JS_TYPE_STRING: c_uint = 4;
pub const K_JS_TYPE_OBJECT: c_uint = 5;
pub const K_JS_TYPE_SYMBOL: c_uint = 6;

/// `JSTypedArrayType`.
pub const K_JS_TYPED_ARRAY_TYPE_UINT8_ARRAY: c_uint = 3;
pub const K_JS_TYPED_ARRAY_TYPE_ARRAY_BUFFER: c_uint = 9;
pub const K_JS_TYPED_ARRAY_TYPE_NONE: c_uint = 10;

pub const K_JS_PROPERTY_ATTRIBUTE_NONE: JSPropertyAttributes = 0;
pub const K_JS_PROPERTY_ATTRIBUTE_READ_ONLY: JSPropertyAttributes = 1 << 1;
pub const K_JS_PROPERTY_ATTRIBUTE_DONT_ENUM: JSPropertyAttributes = 1 << 2;

/// The library's SONAME (Debian's `libjavascriptcoregtk-4.0-18`).
pub const LIBRARY: &str = "libjavascriptcoregtk-4.0.so.18";

/// What to tell the user when the library cannot be opened.
const MISSING: &str =
    "JavaScript support needs libjavascriptcoregtk-4.0 (apt install libjavascriptcoregtk-4.0-18)";

/// Declares the table of entry points, its loader and one wrapper per entry point.
macro_rules! jsc_api {
    ($(
        $(#[$attr:meta])*
        pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?;
    )*) => {
        /// The resolved entry points.
        struct Api {
            $($name: unsafe extern "C" fn($($ty),*) $(-> $ret)?,)*
        }

        impl Api {
            /// Resolves every entry point in `handle` (from `dlopen`).
            fn resolve(handle: *mut c_void) -> Result<Api, String> {
                Ok(Api {
                    $($name: {
                        let sym = concat!(stringify!($name), "\0");
                        // SAFETY: `handle` is a live handle from dlopen (never closed) and
                        // `sym` is NUL-terminated.
                        let p = unsafe { libc::dlsym(handle, sym.as_ptr().cast()) };
                        if p.is_null() {
                            return Err(format!(
                                "{MISSING}: {} lacks {}",
                                LIBRARY,
                                stringify!($name)
                            ));
                        }
                        // SAFETY: the symbol is the C function of that name, whose prototype
                        // (from the JavaScriptCore headers) is the one declared here; a data
                        // pointer and a function pointer have the same size on this platform.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($ty),*) $(-> $ret)?>(p)
                        }
                    },)*
                })
            }
        }

        $(
            $(#[$attr])*
            ///
            /// # Safety
            ///
            /// As for the C function of the same name.
            #[inline]
            pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller upholds the C function's contract; the pointer was
                // resolved from the library under this name with this prototype.
                unsafe { (api().$name)($($arg),*) }
            }
        )*
    };
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// Opens JavaScriptCore and resolves the entry points (once per process); the error says
/// how to install the library.
pub fn load() -> Result<(), String> {
    match API.get_or_init(open) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.clone()),
    }
}

/// The table; panics with [`load`]'s message when JavaScriptCore is not available.
#[inline]
fn api() -> &'static Api {
    match API.get_or_init(open) {
        Ok(api) => api,
        Err(e) => panic!("{e}"),
    }
}

/// `dlopen`s the library: first from the `libdir` that `pkg-config` reported at build time,
/// then by SONAME through the dynamic loader's search path.
fn open() -> Result<Api, String> {
    let mut candidates = Vec::new();
    if let Some(dir) = option_env!("MARG_JSC_LIBDIR") {
        candidates.push(format!("{dir}/{LIBRARY}"));
    }
    candidates.push(LIBRARY.to_string());
    let mut last = String::new();
    for name in candidates {
        let Ok(c) = CString::new(name) else { continue };
        // SAFETY: NUL-terminated path; the handle is kept for the life of the process.
        let handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            return Api::resolve(handle);
        }
        // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl call.
        let err = unsafe { libc::dlerror() };
        if !err.is_null() {
            // SAFETY: non-null, NUL-terminated (checked above), read before any other dl call.
            last = unsafe { CStr::from_ptr(err) }
                .to_string_lossy()
                .into_owned();
        }
    }
    Err(format!("{MISSING}: {last}"))
}

jsc_api! {
    pub fn JSContextGroupCreate() -> JSContextGroupRef;
    pub fn JSContextGroupRelease(group: JSContextGroupRef);
    pub fn JSGlobalContextCreateInGroup(
        group: JSContextGroupRef,
        global_object_class: JSClassRef,
    ) -> JSGlobalContextRef;
    pub fn JSGlobalContextRelease(ctx: JSGlobalContextRef);
    pub fn JSContextGetGlobalObject(ctx: JSContextRef) -> JSObjectRef;
    pub fn JSGlobalContextSetName(ctx: JSGlobalContextRef, name: JSStringRef);
    pub fn JSGlobalContextSetUnhandledRejectionCallback(
        ctx: JSGlobalContextRef,
        function: JSObjectRef,
        exception: *mut JSValueRef,
    );

    pub fn JSContextGroupSetExecutionTimeLimit(
        group: JSContextGroupRef,
        limit: f64,
        callback: JSShouldTerminateCallback,
        context: *mut c_void,
    );
    pub fn JSContextGroupClearExecutionTimeLimit(group: JSContextGroupRef);

    /// GLib-API option setter (`jsc/JSCOptions.h`); must run before the first VM exists.
    pub fn jsc_options_set_boolean(option: *const c_char, value: i32) -> i32;
    /// GLib-API option setter for size options (`gsize`).
    pub fn jsc_options_set_size(option: *const c_char, value: usize) -> i32;

    pub fn JSEvaluateScript(
        ctx: JSContextRef,
        script: JSStringRef,
        this_object: JSObjectRef,
        source_url: JSStringRef,
        starting_line_number: i32,
        exception: *mut JSValueRef,
    ) -> JSValueRef;
    pub fn JSCheckScriptSyntax(
        ctx: JSContextRef,
        script: JSStringRef,
        source_url: JSStringRef,
        starting_line_number: i32,
        exception: *mut JSValueRef,
    ) -> bool;
    pub fn JSGarbageCollect(ctx: JSContextRef);

    pub fn JSStringCreateWithCharacters(chars: *const JSChar, num_chars: usize) -> JSStringRef;
    pub fn JSStringCreateWithUTF8CString(string: *const c_char) -> JSStringRef;
    pub fn JSStringRelease(string: JSStringRef);
    pub fn JSStringGetLength(string: JSStringRef) -> usize;
    pub fn JSStringGetCharactersPtr(string: JSStringRef) -> *const JSChar;
    pub fn JSStringGetMaximumUTF8CStringSize(string: JSStringRef) -> usize;
    pub fn JSStringGetUTF8CString(string: JSStringRef, buffer: *mut c_char, size: usize) -> usize;

    pub fn JSValueGetType(ctx: JSContextRef, value: JSValueRef) -> c_uint;
    pub fn JSValueIsUndefined(ctx: JSContextRef, value: JSValueRef) -> bool;
    pub fn JSValueIsNull(ctx: JSContextRef, value: JSValueRef) -> bool;
    pub fn JSValueIsString(ctx: JSContextRef, value: JSValueRef) -> bool;
    pub fn JSValueIsObject(ctx: JSContextRef, value: JSValueRef) -> bool;
    pub fn JSValueMakeUndefined(ctx: JSContextRef) -> JSValueRef;
    pub fn JSValueMakeNull(ctx: JSContextRef) -> JSValueRef;
    pub fn JSValueMakeBoolean(ctx: JSContextRef, boolean: bool) -> JSValueRef;
    pub fn JSValueMakeNumber(ctx: JSContextRef, number: f64) -> JSValueRef;
    pub fn JSValueMakeString(ctx: JSContextRef, string: JSStringRef) -> JSValueRef;
    pub fn JSValueToBoolean(ctx: JSContextRef, value: JSValueRef) -> bool;
    pub fn JSValueToNumber(ctx: JSContextRef, value: JSValueRef, exception: *mut JSValueRef)
        -> f64;
    pub fn JSValueToStringCopy(
        ctx: JSContextRef,
        value: JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSStringRef;
    pub fn JSValueToObject(
        ctx: JSContextRef,
        value: JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSObjectRef;
    pub fn JSValueProtect(ctx: JSContextRef, value: JSValueRef);
    pub fn JSValueUnprotect(ctx: JSContextRef, value: JSValueRef);
    pub fn JSValueGetTypedArrayType(
        ctx: JSContextRef,
        value: JSValueRef,
        exception: *mut JSValueRef,
    ) -> c_uint;

    pub fn JSObjectMakeFunctionWithCallback(
        ctx: JSContextRef,
        name: JSStringRef,
        call_as_function: JSObjectCallAsFunctionCallback,
    ) -> JSObjectRef;
    pub fn JSObjectMake(ctx: JSContextRef, js_class: JSClassRef, data: *mut c_void) -> JSObjectRef;
    pub fn JSObjectMakeArray(
        ctx: JSContextRef,
        argument_count: usize,
        arguments: *const JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSObjectRef;
    pub fn JSObjectMakeError(
        ctx: JSContextRef,
        argument_count: usize,
        arguments: *const JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSObjectRef;
    pub fn JSObjectCallAsFunction(
        ctx: JSContextRef,
        object: JSObjectRef,
        this_object: JSObjectRef,
        argument_count: usize,
        arguments: *const JSValueRef,
        exception: *mut JSValueRef,
    ) -> JSValueRef;
    pub fn JSObjectGetProperty(
        ctx: JSContextRef,
        object: JSObjectRef,
        property_name: JSStringRef,
        exception: *mut JSValueRef,
    ) -> JSValueRef;
    pub fn JSObjectSetProperty(
        ctx: JSContextRef,
        object: JSObjectRef,
        property_name: JSStringRef,
        value: JSValueRef,
        attributes: JSPropertyAttributes,
        exception: *mut JSValueRef,
    );
    pub fn JSObjectGetPropertyAtIndex(
        ctx: JSContextRef,
        object: JSObjectRef,
        property_index: c_uint,
        exception: *mut JSValueRef,
    ) -> JSValueRef;
    pub fn JSObjectSetPropertyAtIndex(
        ctx: JSContextRef,
        object: JSObjectRef,
        property_index: c_uint,
        value: JSValueRef,
        exception: *mut JSValueRef,
    );

    pub fn JSObjectMakeArrayBufferWithBytesNoCopy(
        ctx: JSContextRef,
        bytes: *mut c_void,
        byte_length: usize,
        bytes_deallocator: JSTypedArrayBytesDeallocator,
        deallocator_context: *mut c_void,
        exception: *mut JSValueRef,
    ) -> JSObjectRef;
    pub fn JSObjectMakeTypedArrayWithBytesNoCopy(
        ctx: JSContextRef,
        array_type: c_uint,
        bytes: *mut c_void,
        byte_length: usize,
        bytes_deallocator: JSTypedArrayBytesDeallocator,
        deallocator_context: *mut c_void,
        exception: *mut JSValueRef,
    ) -> JSObjectRef;
    pub fn JSObjectGetArrayBufferBytesPtr(
        ctx: JSContextRef,
        object: JSObjectRef,
        exception: *mut JSValueRef,
    ) -> *mut c_void;
    pub fn JSObjectGetArrayBufferByteLength(
        ctx: JSContextRef,
        object: JSObjectRef,
        exception: *mut JSValueRef,
    ) -> usize;
    pub fn JSObjectGetTypedArrayBytesPtr(
        ctx: JSContextRef,
        object: JSObjectRef,
        exception: *mut JSValueRef,
    ) -> *mut c_void;
    pub fn JSObjectGetTypedArrayByteLength(
        ctx: JSContextRef,
        object: JSObjectRef,
        exception: *mut JSValueRef,
    ) -> usize;
    pub fn JSObjectGetTypedArrayByteOffset(
        ctx: JSContextRef,
        object: JSObjectRef,
        exception: *mut JSValueRef,
    ) -> usize;
}
