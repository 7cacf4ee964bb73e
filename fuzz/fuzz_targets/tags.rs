//! Tag normalisation on arbitrary names: it must never panic, stay fast
//! on thousands of tags, and be idempotent on what it accepts.
#![no_main]

use carbonwatch::codec::tags::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    if !name.contains(';') {
        return;
    }
    if let Ok(normal) = normalize(name) {
        assert_eq!(normalize(&normal).as_deref(), Ok(normal.as_str()));
    }
});
