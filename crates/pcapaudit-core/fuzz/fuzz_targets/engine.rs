//! Fuzz target: engine. Arbitrary decoded packets (built from the fuzz bytes by
//! `pcapaudit_core::flow::fuzzing::fuzz_engine`) are fed into an Engine with a small flow cap, then
//! flushed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pcapaudit_core::flow::fuzzing::fuzz_engine(data);
});
