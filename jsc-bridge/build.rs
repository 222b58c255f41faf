//! Finds Debian's `libjavascriptcoregtk-4.0` through `pkg-config` without linking it.
//!
//! The bindings in `src/ffi.rs` are hand-written against the C API of WebKitGTK 2.50's
//! JavaScriptCore (the `rusty_jsc_sys` crate targets a different library name and lacks the
//! private execution-time-limit entry points this bridge needs). They `dlopen` the library on
//! first use, so that a server without a JavaScript app does not map it; this script only
//! records the library directory (`MARG_JSC_LIBDIR`) to try before the loader's search path.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = "javascriptcoregtk-4.0";
    let out = Command::new("pkg-config")
        .args(["--variable=libdir", lib])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let dir = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if !dir.is_empty() {
                println!("cargo:rustc-env=MARG_JSC_LIBDIR={dir}");
            }
        }
        _ => println!(
            "cargo:warning=pkg-config could not find {lib}; JavaScript apps will need \
             libjavascriptcoregtk-4.0.so.18 on the loader's search path at run time"
        ),
    }
}
