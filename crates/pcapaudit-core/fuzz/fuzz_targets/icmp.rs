//! Fuzz target: icmp (parse_quoted, describe).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::icmp;

fuzz_target!(|data: &[u8]| {
    if let Ok(q) = icmp::parse_quoted(data) {
        assert!(q.ipver == 4 || q.ipver == 6);
    }
    if data.len() >= 3 {
        let ver = if data[0] & 1 == 0 { 4 } else { 6 };
        let _ = icmp::describe(ver, data[1], data[2]);
        let _ = icmp::blocks(ver, data[1], data[2]) && icmp::is_error(ver, data[1]);
    }
});
