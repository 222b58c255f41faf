//! The `marg` binary: the runtime's command line, with the JavaScript
//! bridge as its app loader when the `js` feature (default) is on.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "js")]
    let js: Option<runtime::cli::JsLoader> = Some(jsc_bridge::load);
    #[cfg(not(feature = "js"))]
    let js: Option<runtime::cli::JsLoader> = None;
    runtime::cli::main(js)
}
