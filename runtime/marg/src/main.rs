//! The `marg` binary. The JavaScript bridge plugs in here:
//! `runtime::cli::main(Some(jsc_bridge::load))` once it is a dependency.

fn main() -> std::process::ExitCode {
    runtime::cli::main(Some(jsc_bridge::load))
}
