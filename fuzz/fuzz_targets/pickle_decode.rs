//! The restricted unpickler on arbitrary bytes: it must never panic, hang
//! or allocate beyond the frame's size, and what it decodes must survive
//! the encoder.
#![no_main]

use carbonwatch::codec::pickle::{decode, Encoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = decode(data, |_| {}) {
        let mut enc = Encoder::new(500);
        let mut out = bytes::BytesMut::new();
        for i in items.iter().filter(|i| i.timestamp.is_finite() && i.timestamp.abs() < 9e18) {
            enc.push(&i.name, i.timestamp as i64, i.value, &mut out);
        }
        enc.finish(&mut out);
    }
});
