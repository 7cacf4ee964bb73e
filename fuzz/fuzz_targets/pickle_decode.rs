//! The restricted unpickler on arbitrary bytes: it must never panic, hang
//! or allocate beyond its bounds (run with -rss_limit_mb and -timeout so a
//! bomb is a finding), and what it decodes must survive the encoder.
#![no_main]

use carbonwatch::codec::pickle::{decode_with, Encoder, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(items) = decode_with(data, &limits, |_| {}) {
        let names: usize = items.iter().map(|i| i.name.len()).sum();
        assert!(names <= data.len().max(1) * limits.max_expansion + (64 << 10));
        let mut enc = Encoder::new(500);
        let mut out = bytes::BytesMut::new();
        for i in items.iter().filter(|i| i.timestamp.is_finite() && i.timestamp.abs() < 9e18) {
            assert!(i.name.len() <= limits.max_name_bytes);
            enc.push(&i.name, i.timestamp as i64, i.value, &mut out);
        }
        enc.finish(&mut out);
    }
});
