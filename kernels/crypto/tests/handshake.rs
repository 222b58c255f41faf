//! In-memory rustls client <-> server handshakes and data exchange over
//! each TLS 1.3 suite of `marg_crypto::provider()`, with the suite forced on
//! both ends.

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
};
use std::io::{Read, Write};
use std::sync::Arc;

fn provider_with(suite: CipherSuite) -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = marg_crypto::provider();
    p.cipher_suites.retain(|s| s.suite() == suite);
    assert_eq!(
        p.cipher_suites.len(),
        1,
        "{suite:?} missing from the provider"
    );
    Arc::new(p)
}

/// Moves the client's pending TLS bytes to the server; returns the
/// plaintext the server received.
fn client_to_server(c: &mut ClientConnection, s: &mut ServerConnection) -> Vec<u8> {
    let mut buf = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut buf).unwrap();
    }
    let mut got = Vec::new();
    let mut rd = &buf[..];
    while !rd.is_empty() {
        s.read_tls(&mut rd).unwrap();
        s.process_new_packets().unwrap();
        drain(s.reader(), &mut got);
    }
    got
}

/// Moves the server's pending TLS bytes to the client; returns the
/// plaintext the client received.
fn server_to_client(s: &mut ServerConnection, c: &mut ClientConnection) -> Vec<u8> {
    let mut buf = Vec::new();
    while s.wants_write() {
        s.write_tls(&mut buf).unwrap();
    }
    let mut got = Vec::new();
    let mut rd = &buf[..];
    while !rd.is_empty() {
        c.read_tls(&mut rd).unwrap();
        c.process_new_packets().unwrap();
        drain(c.reader(), &mut got);
    }
    got
}

/// Appends every plaintext byte `r` has now.
fn drain(mut r: rustls::Reader<'_>, out: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    loop {
        match r.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => panic!("{e}"),
        }
    }
}

fn handshake_and_exchange(suite: CipherSuite) {
    if !marg_crypto::cipher_suites()
        .iter()
        .any(|s| s.suite() == suite)
    {
        eprintln!("no AES-NI/PCLMULQDQ on this CPU: the provider uses ring's suites; skipped");
        return;
    }
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let server_cfg = ServerConfig::builder_with_provider(provider_with(suite))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_cfg = ClientConfig::builder_with_provider(provider_with(suite))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut client = ClientConnection::new(
        Arc::new(client_cfg),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut server = ServerConnection::new(Arc::new(server_cfg)).unwrap();
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        client_to_server(&mut client, &mut server);
        server_to_client(&mut server, &mut client);
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(client.negotiated_cipher_suite().unwrap().suite(), suite);
    assert_eq!(server.negotiated_cipher_suite().unwrap().suite(), suite);

    // Records of many sizes both ways, including several full 16 KiB ones.
    for n in [0usize, 1, 15, 16, 17, 255, 1350, 16384, 40000] {
        let msg: Vec<u8> = (0..n).map(|i| (i * 31 + n) as u8).collect();
        let mut got = Vec::new();
        for piece in msg.chunks(8192) {
            client.writer().write_all(piece).unwrap();
            got.extend(client_to_server(&mut client, &mut server));
        }
        assert!(got == msg, "client -> server, {n} bytes");
        let mut got = Vec::new();
        for piece in msg.chunks(8192) {
            server.writer().write_all(piece).unwrap();
            got.extend(server_to_client(&mut server, &mut client));
        }
        assert!(got == msg, "server -> client, {n} bytes");
    }

    // A flipped bit in a record is a decrypt error, not garbage.
    client.writer().write_all(b"tamper with me").unwrap();
    let mut buf = Vec::new();
    client.write_tls(&mut buf).unwrap();
    let last = buf.len() - 1;
    buf[last] ^= 1;
    server.read_tls(&mut &buf[..]).unwrap();
    assert!(matches!(
        server.process_new_packets(),
        Err(rustls::Error::DecryptError)
    ));
}

#[test]
fn tls13_aes_128_gcm_sha256() {
    handshake_and_exchange(CipherSuite::TLS13_AES_128_GCM_SHA256);
}

#[test]
fn tls13_aes_256_gcm_sha384() {
    handshake_and_exchange(CipherSuite::TLS13_AES_256_GCM_SHA384);
}

#[test]
fn tls13_chacha20_poly1305_sha256() {
    handshake_and_exchange(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}

#[test]
fn provider_uses_the_kernels_for_its_tls13_suites() {
    let ours = marg_crypto::cipher_suites();
    if ours.is_empty() {
        return;
    }
    let p = marg_crypto::provider();
    for s in ours {
        let in_provider = p
            .cipher_suites
            .iter()
            .find(|c| c.suite() == s.suite())
            .unwrap();
        let (a, b) = (in_provider.tls13().unwrap(), s.tls13().unwrap());
        assert!(core::ptr::eq(a, b), "{:?} is not ours", s.suite());
    }
}
