//! A real QUIC connection over loopback UDP: a quinn server and client, both
//! on rustls configs built from `marg_crypto::provider()` restricted to one
//! TLS 1.3 suite, echo 100 KB on a bidirectional stream. The handshake's
//! Initial/Handshake packets use the suite's QUIC keys too, so this covers
//! packet and header protection on Marg's kernels end to end.

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ClientConfig, Endpoint, ServerConfig};
use rustls::crypto::cipher::{AeadKey, Iv};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::quic;
use rustls::{
    CipherSuite, CipherSuiteCommon, RootCertStore, SupportedCipherSuite, Tls13CipherSuite,
};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ALPN: &[u8] = b"marg-test";
const LEN: usize = 100_000;

/// Counts the QUIC keys rustls derives through the negotiated suite (the
/// Handshake and 1-RTT packet keys), passing Marg's keys through unchanged.
struct Counting {
    inner: &'static dyn quic::Algorithm,
    packet_keys: AtomicUsize,
}

impl quic::Algorithm for Counting {
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn quic::PacketKey> {
        self.packet_keys.fetch_add(1, Ordering::Relaxed);
        self.inner.packet_key(key, iv)
    }

    fn header_protection_key(&self, key: AeadKey) -> Box<dyn quic::HeaderProtectionKey> {
        self.inner.header_protection_key(key)
    }

    fn aead_key_len(&self) -> usize {
        self.inner.aead_key_len()
    }
}

/// A provider whose only suite is Marg's `suite` (record and QUIC
/// protection on the kernels), its QUIC keys counted by the returned
/// counter.
fn provider_with(suite: CipherSuite) -> (Arc<CryptoProvider>, &'static Counting) {
    let ours = marg_crypto::cipher_suites()
        .iter()
        .find(|s| s.suite() == suite)
        .unwrap()
        .tls13()
        .unwrap();
    let counting: &'static Counting = Box::leak(Box::new(Counting {
        inner: ours.quic.expect("QUIC support"),
        packet_keys: AtomicUsize::new(0),
    }));
    let wrapped: &'static Tls13CipherSuite = Box::leak(Box::new(Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: ours.common.suite,
            hash_provider: ours.common.hash_provider,
            confidentiality_limit: ours.common.confidentiality_limit,
        },
        hkdf_provider: ours.hkdf_provider,
        aead_alg: ours.aead_alg,
        quic: Some(counting),
    }));
    let mut p = marg_crypto::provider();
    p.cipher_suites = vec![SupportedCipherSuite::Tls13(wrapped)];
    (Arc::new(p), counting)
}

/// QUIC Initial packets always use AES-128-GCM (RFC 9001 5.2): Marg's.
fn initial_suite() -> quic::Suite {
    marg_crypto::provider()
        .cipher_suites
        .iter()
        .find(|s| s.suite() == CipherSuite::TLS13_AES_128_GCM_SHA256)
        .and_then(|s| s.tls13())
        .and_then(|s| s.quic_suite())
        .expect("AES-128-GCM with QUIC support")
}

struct Setup {
    server: ServerConfig,
    client: ClientConfig,
    server_keys: &'static Counting,
    client_keys: &'static Counting,
}

fn configs(suite: CipherSuite) -> Setup {
    let (server_provider, server_keys) = provider_with(suite);
    let (client_provider, client_keys) = provider_with(suite);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));

    let mut server_tls = rustls::ServerConfig::builder_with_provider(server_provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server_tls.alpn_protocols = vec![ALPN.to_vec()];
    server_tls.max_early_data_size = u32::MAX;
    let server = ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::with_initial(Arc::new(server_tls), initial_suite()).unwrap(),
    ));

    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client_tls = rustls::ClientConfig::builder_with_provider(client_provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    let client = ClientConfig::new(Arc::new(
        QuicClientConfig::with_initial(Arc::new(client_tls), initial_suite()).unwrap(),
    ));
    Setup {
        server,
        client,
        server_keys,
        client_keys,
    }
}

fn check_alpn(conn: &quinn::Connection) {
    let data = conn.handshake_data().expect("handshake done");
    let data = data
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .unwrap();
    assert_eq!(data.protocol.as_deref(), Some(ALPN));
}

async fn echo(suite: CipherSuite) {
    let Setup {
        server: server_cfg,
        client: client_cfg,
        server_keys,
        client_keys,
    } = configs(suite);
    let localhost = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let server = Endpoint::server(server_cfg, localhost).unwrap();
    let server_addr = server.local_addr().unwrap();

    let server_task = tokio::spawn(async move {
        let conn = server.accept().await.expect("an incoming connection");
        let conn = conn.await.expect("server handshake");
        check_alpn(&conn);
        let (mut send, mut recv) = conn.accept_bi().await.unwrap();
        let got = recv.read_to_end(LEN * 2).await.unwrap();
        // Echo it back reversed, so the reply differs from the request.
        let reply: Vec<u8> = got.iter().rev().copied().collect();
        send.write_all(&reply).await.unwrap();
        send.finish().unwrap();
        conn.closed().await;
        got.len()
    });

    let mut client = Endpoint::client(localhost).unwrap();
    client.set_default_client_config(client_cfg);
    let conn = client
        .connect(server_addr, "localhost")
        .unwrap()
        .await
        .expect("client handshake");
    check_alpn(&conn);

    let msg: Vec<u8> = (0..LEN).map(|i| (i * 131 + i / 256) as u8).collect();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&msg).await.unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(LEN * 2).await.unwrap();
    let expected: Vec<u8> = msg.iter().rev().copied().collect();
    assert!(reply == expected, "echo mismatch over {suite:?}");

    conn.close(0u32.into(), b"done");
    assert_eq!(server_task.await.unwrap(), LEN);
    client.wait_idle().await;

    // The only suite either side offers is Marg's `suite`, so the handshake
    // negotiated it; its Handshake and 1-RTT packet keys (both directions)
    // came from its QUIC algorithm, i.e. Marg's kernels, on both ends.
    for (side, keys) in [("server", server_keys), ("client", client_keys)] {
        let n = keys.packet_keys.load(Ordering::Relaxed);
        assert!(n >= 4, "{side}: {n} packet keys from {suite:?}");
    }
}

fn run(suite: CipherSuite) {
    if !marg_crypto::cipher_suites()
        .iter()
        .any(|s| s.suite() == suite)
    {
        eprintln!("no AES-NI/PCLMULQDQ on this CPU: the provider uses ring's suites; skipped");
        return;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), echo(suite))
            .await
            .expect("QUIC echo timed out")
    });
}

#[test]
fn quic_tls13_aes_128_gcm_sha256() {
    run(CipherSuite::TLS13_AES_128_GCM_SHA256);
}

#[test]
fn quic_tls13_aes_256_gcm_sha384() {
    run(CipherSuite::TLS13_AES_256_GCM_SHA384);
}

#[test]
fn quic_tls13_chacha20_poly1305_sha256() {
    run(CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
}
