//! `Marg.listen(port)`: the app's port is used when the command line has no `--port`; an
//! explicit `--port` wins.

mod js_common;

use js_common::JsServer;
use std::net::TcpListener;

/// A port that was free a moment ago (bound to port 0, then released).
fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    l.local_addr().unwrap().port()
}

fn app(port: u16) -> String {
    format!("Marg.get('/', (req, res) => res.send('listening'));\nMarg.listen({port});\n")
}

#[test]
fn app_port_is_used_without_a_port_flag() {
    let port = free_port();
    let s = JsServer::inline_with(&app(port), &[], 1, &[], &[]);
    assert_eq!(s.port, port, "{}", s.log());
    assert_eq!(s.get("/").text(), "listening");
}

#[test]
fn port_flag_wins_over_the_app() {
    let app_port = free_port();
    let cli_port = loop {
        let p = free_port();
        if p != app_port {
            break p;
        }
    };
    let p = cli_port.to_string();
    let s = JsServer::inline_with(&app(app_port), &[], 1, &[], &["--port", &p]);
    assert_eq!(s.port, cli_port, "{}", s.log());
    assert_eq!(s.get("/").text(), "listening");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", app_port)).is_err(),
        "nothing should listen on the app's port {app_port}"
    );
    // `--port 0` is explicit too: an ephemeral port, not the app's.
    let s = JsServer::inline_with(&app(app_port), &[], 1, &[], &["--port", "0"]);
    assert_ne!(s.port, app_port);
    assert_eq!(s.get("/").text(), "listening");
}
