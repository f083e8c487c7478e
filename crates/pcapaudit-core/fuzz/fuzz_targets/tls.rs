//! Fuzz target: tls. The first byte picks the direction and where the stream is cut; the stream is
//! fed as two growing prefixes (records split anywhere), and the standalone parsers read the raw bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::tls;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let is_client = ctl & 1 == 1;
    let cut = if rest.is_empty() {
        0
    } else {
        (ctl as usize >> 1) * rest.len() / 128
    };
    let mut whole = tls::TlsStream::new(is_client);
    whole.feed(rest);
    let mut split = tls::TlsStream::new(is_client);
    split.feed(&rest[..cut.min(rest.len())]);
    split.feed(rest);
    // feeding in pieces must give what feeding at once gives
    assert_eq!(whole.pos, split.pos);
    assert_eq!(whole.records, split.records);
    assert_eq!(whole.alerts, split.alerts);
    assert_eq!(whole.error, split.error);
    assert_eq!(whole.client_hello, split.client_hello);
    assert_eq!(whole.server_hello, split.server_hello);
    assert_eq!(whole.hs_types, split.hs_types);
    assert_eq!(whole.sh_record, split.sh_record);
    let _ = whole.done();
    // the server flight's lengths: the same from either feed, bounded, for any cut
    let flight = tls::server_flight(&whole.records, whole.sh_record, cut);
    assert!(flight.len() <= tls::MAX_FLIGHT_RECORDS);
    assert_eq!(
        flight,
        tls::server_flight(&split.records, split.sh_record, cut)
    );
    if let Some(sh) = &whole.server_hello {
        let _ = tls::server_shape(sh, is_client);
    }
    let _ = tls::parse_client_hello(rest);
    if let Ok(sh) = tls::parse_server_hello(rest) {
        assert!(sh.extensions.len() <= tls::MAX_SH_EXTENSIONS);
        let _ = tls::server_shape(&sh, false);
    }
    let _ = tls::parse_certificate_list(rest);
    let _ = tls::hostname(rest);
});
