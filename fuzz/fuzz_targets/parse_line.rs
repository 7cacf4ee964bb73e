//! The plaintext parser on arbitrary bytes: it must never panic, and
//! whatever it accepts must survive a canonical round trip.
#![no_main]

use bytes::BytesMut;
use carbonwatch::codec::{parse_line, ParseOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for normalize_tags in [false, true] {
        let opts = ParseOptions { normalize_tags, now: 1_700_000_000 };
        if let Ok(m) = parse_line(data, &opts) {
            assert!(!m.value.is_nan());
            let mut out = BytesMut::new();
            m.write_line(&mut out);
            let again = parse_line(&out[..out.len() - 1], &opts).expect("canonical output parses");
            assert_eq!(again.into_owned(), m.into_owned());
        }
    }
});
