//! Fuzz target: dns (parse, parse_nbns, question_end, read_name).
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::proto::dns;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = dns::parse(data) {
        let _ = m.zone();
        let _ = m.names();
        for q in &m.questions {
            let _ = dns::qtype_name(q.1);
        }
        let _ = dns::rcode_name(m.rcode);
    }
    let _ = dns::parse_nbns(data);
    let _ = dns::question_end(data);
    if data.len() > 2 {
        let _ = dns::read_name(data, data[0] as usize);
    }
});
