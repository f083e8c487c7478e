//! Fuzz target: x509 (cert_info on arbitrary DER).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::x509;

fuzz_target!(|data: &[u8]| {
    let info = x509::cert_info(data).expect("cert_info never fails");
    assert_eq!(info.sha256.len(), 64);
    assert!(info.san.len() <= x509::MAX_SAN);
});
