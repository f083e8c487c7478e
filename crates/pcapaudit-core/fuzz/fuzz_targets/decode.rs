//! Fuzz target: decode. The first two bytes pick the link type, the next byte nudges the timestamp;
//! one Decoder is kept across inputs so fragments of earlier inputs meet later ones.
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use pcapaudit_core::decode::{Decoded, Decoder};

const LINKTYPES: [u32; 18] = [
    1, 0, 9, 12, 14, 50, 101, 105, 108, 113, 149, 204, 228, 229, 258, 276, 147, 1,
];

thread_local! {
    static DEC: RefCell<(Decoder, f64)> = RefCell::new((Decoder::with_limits(64, 5.0), 0.0));
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let lt = if data[0] & 0x80 != 0 {
        u32::from(u16::from_le_bytes([data[0] & 0x7f, data[1]]))
    } else {
        LINKTYPES[usize::from(data[1]) % LINKTYPES.len()]
    };
    let frame = &data[3..];
    DEC.with(|d| {
        let (dec, ts) = &mut *d.borrow_mut();
        *ts += f64::from(data[2]) * 0.05;
        if let Decoded::Packet(p) = dec.decode(frame, lt, *ts) {
            assert!(p.payload.len() <= frame.len().max(65535 + 131072));
            assert!(p.ipver == 4 || p.ipver == 6);
        }
        assert!(dec.held_datagrams() <= 64);
    });
});
