//! Fuzz target: capture. Arbitrary bytes as a capture file (plain or compressed) through `from_read`,
//! all batches drained with a small and a large batch size; every row must lie inside its batch.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pcapaudit_core::capture::CaptureReader;

fuzz_target!(|data: &[u8]| {
    for max_bytes in [61usize, 1 << 20] {
        let r = std::io::Cursor::new(data.to_vec());
        let Ok(mut cap) = CaptureReader::from_read(Box::new(r), "fuzz.pcap") else {
            continue;
        };
        let mut rows = 0u64;
        while let Some(b) = cap.next_batch(max_bytes) {
            assert!(!b.is_empty());
            assert_eq!(b.first_index, rows);
            for i in 0..b.len() {
                assert_eq!(b.data(i).len(), b.caplen[i] as usize);
                assert!(b.caplen[i] <= b.wirelen[i]);
            }
            assert!(b.iface.is_empty() || b.iface.len() == b.len());
            assert!(b.proc.is_empty() || b.proc.len() == b.len());
            for &p in &b.proc {
                assert!(p < cap.processes.len() as i32);
            }
            for &f in &b.iface {
                assert!(f < cap.ifnames.len() as i32);
            }
            rows += b.len() as u64;
        }
        assert_eq!(rows, cap.packets);
        if let Some(e) = &cap.error {
            assert!(!e.contains('\n'));
        }
    }
});
