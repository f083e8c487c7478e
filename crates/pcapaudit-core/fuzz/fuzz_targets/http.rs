//! Fuzz target: http (parse_request, parse_status, split_authority, url_target, content_length).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::http;

fuzz_target!(|data: &[u8]| {
    let _ = http::looks_like_request(data);
    if let Ok(r) = http::try_parse_request(data) {
        let _ = r.connect_target();
        let _ = http::content_length(data.get(..r.head_len).unwrap_or(data));
    }
    let _ = http::parse_request(data);
    let _ = http::try_parse_status(data);
    let _ = http::parse_status(data);
    let s = String::from_utf8_lossy(data);
    let _ = http::split_authority(&s, Some(80));
    let _ = http::url_target(&s);
});
