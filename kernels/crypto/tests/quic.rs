//! QUIC packet and header protection of every suite of
//! `marg_crypto::cipher_suites()`, checked byte for byte against rustls'
//! *ring* suites with keys derived the same way, and cross-decrypted.

use rustls::quic::{Suite, Version};
use rustls::{Side, Tls13CipherSuite};

fn pairs() -> Vec<(&'static Tls13CipherSuite, &'static Tls13CipherSuite)> {
    let ring = rustls::crypto::ring::default_provider();
    marg_crypto::cipher_suites()
        .iter()
        .map(|ours| {
            let theirs = ring
                .cipher_suites
                .iter()
                .find(|s| s.suite() == ours.suite())
                .unwrap();
            (ours.tls13().unwrap(), theirs.tls13().unwrap())
        })
        .collect()
}

#[test]
fn packet_and_header_protection_match_ring() {
    // RFC 9001 A.1's client destination connection ID.
    let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
    let pairs = pairs();
    assert!(!pairs.is_empty());
    for (ours, ring) in pairs {
        let name = ours.common.suite;
        let ok = Suite {
            suite: ours,
            quic: ours.quic.expect("quic"),
        }
        .keys(&dcid, Side::Client, Version::V1);
        let rk = Suite {
            suite: ring,
            quic: ring.quic.unwrap(),
        }
        .keys(&dcid, Side::Client, Version::V1);
        let server = Suite {
            suite: ours,
            quic: ours.quic.unwrap(),
        }
        .keys(&dcid, Side::Server, Version::V1);
        for (i, len) in [20usize, 64, 200, 1162, 1350].into_iter().enumerate() {
            let pn = [0u64, 1, 2, 654_360_564, (1 << 40) + 7][i];
            let header: Vec<u8> = (0..22).map(|j| (j * 7 + i) as u8 | 0xc0).collect();
            let payload: Vec<u8> = (0..len).map(|j| (j * 13 + len) as u8).collect();
            let mut p1 = payload.clone();
            let t1 = ok
                .local
                .packet
                .encrypt_in_place(pn, &header, &mut p1)
                .unwrap();
            let mut p2 = payload.clone();
            let t2 = rk
                .local
                .packet
                .encrypt_in_place(pn, &header, &mut p2)
                .unwrap();
            assert!(p1 == p2, "{name:?}: payload, {len} bytes");
            assert_eq!(t1.as_ref(), t2.as_ref(), "{name:?}: tag");
            for first0 in [0xc3u8, 0x41] {
                let sample = &p1[4..20];
                let (mut f1, mut n1) = (first0, [1u8, 2, 3, 4]);
                ok.local
                    .header
                    .encrypt_in_place(sample, &mut f1, &mut n1)
                    .unwrap();
                let (mut f2, mut n2) = (first0, [1u8, 2, 3, 4]);
                rk.local
                    .header
                    .encrypt_in_place(sample, &mut f2, &mut n2)
                    .unwrap();
                assert_eq!((f1, n1), (f2, n2), "{name:?}: header protection");
                server
                    .remote
                    .header
                    .decrypt_in_place(sample, &mut f1, &mut n1)
                    .unwrap();
                assert_eq!(
                    (f1, n1),
                    (first0, [1, 2, 3, 4]),
                    "{name:?}: header unprotection"
                );
            }
            // The server opens what ring's client sealed; a flipped bit fails.
            let mut sealed = p2.clone();
            sealed.extend_from_slice(t2.as_ref());
            let mut forged = sealed.clone();
            let plain = server
                .remote
                .packet
                .decrypt_in_place(pn, &header, &mut sealed)
                .unwrap();
            assert!(plain == payload, "{name:?}: open");
            forged[len / 2] ^= 4;
            assert!(server
                .remote
                .packet
                .decrypt_in_place(pn, &header, &mut forged)
                .is_err());
        }
    }
}
