//! Fuzz target: quic. The input is cut into datagrams (a u16 length before each) fed to one
//! QuicClientState; the first byte chooses whether the first datagram gets a v1 Initial prefix so the
//! decryption path is reached often, and whether the datagrams also go to a QuicServerState (every
//! other one as the server's, the rest as the client's answer) with the client's first DCID.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::quic::{long_packets, version_name, QuicClientState, QuicServerState};

fuzz_target!(|data: &[u8]| {
    let mut st = QuicClientState::new();
    let mut srv = QuicServerState::new();
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut first = true;
    let mut i = 0u32;
    while rest.len() >= 2 {
        let n = u16::from_le_bytes([rest[0], rest[1]]) as usize;
        let body = &rest[2..];
        let n = n.min(body.len());
        let (dg, tail) = body.split_at(n);
        if first && mode & 1 == 1 {
            let mut d =
                b"\xc3\x00\x00\x00\x01\x08\x00\x01\x02\x03\x04\x05\x06\x07\x00\x00".to_vec();
            d.extend_from_slice(dg);
            st.feed(&d);
        } else if mode & 2 == 2 && i % 2 == 1 {
            let dcid = st
                .first_dcid
                .clone()
                .unwrap_or_else(|| vec![0, 1, 2, 3, 4, 5, 6, 7]);
            srv.feed(dg, &dcid);
            let _ = srv.done();
            let _ = srv.flight();
        } else {
            st.feed(dg);
            srv.client_datagram(dg);
        }
        let (pkts, _) = long_packets(dg);
        for p in pkts {
            assert!(p.start < p.pn_off && p.pn_off <= p.end && p.end <= dg.len());
        }
        first = false;
        i += 1;
        rest = tail;
        let _ = st.done();
        let _ = st.sni();
        let _ = st.crypto_stream();
    }
    if let Some(v) = st.version {
        let _ = version_name(v);
    }
    if let Some(sh) = &srv.server_hello {
        let _ = pcapaudit_core::proto::tls::server_shape(sh, true);
    }
});
