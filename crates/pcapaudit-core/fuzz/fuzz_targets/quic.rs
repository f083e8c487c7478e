//! Fuzz target: quic. The input is cut into datagrams (a u16 length before each) fed to one
//! QuicClientState; the first byte chooses whether the first datagram gets a v1 Initial prefix so the
//! decryption path is reached often.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::quic::{version_name, QuicClientState};

fuzz_target!(|data: &[u8]| {
    let mut st = QuicClientState::new();
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut first = true;
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
        } else {
            st.feed(dg);
        }
        first = false;
        rest = tail;
        let _ = st.done();
        let _ = st.sni();
        let _ = st.crypto_stream();
    }
    if let Some(v) = st.version {
        let _ = version_name(v);
    }
});
