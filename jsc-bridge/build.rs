//! Links Debian's `libjavascriptcoregtk-4.0` found through `pkg-config`.
//!
//! The bindings in `src/ffi.rs` are hand-written against the C API of WebKitGTK 2.50's
//! JavaScriptCore (the `rusty_jsc_sys` crate targets a different library name and lacks the
//! private execution-time-limit entry points this bridge needs).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let lib = "javascriptcoregtk-4.0";
    let out = Command::new("pkg-config").args(["--libs", lib]).output();
    let libs = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        _ => {
            println!(
                "cargo:warning=pkg-config could not find {lib}; install libjavascriptcoregtk-4.0-dev and pkg-config"
            );
            format!("-l{lib}")
        }
    };
    for flag in libs.split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(name) = flag.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={name}");
        }
    }
}
