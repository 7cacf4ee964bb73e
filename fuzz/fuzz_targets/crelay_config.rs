//! carbon-c-relay config text: never a panic, and whatever converts is
//! TOML that carbonwatch loads.
#![no_main]

use carbonwatch::config::{crelay, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Includes would read the machine's files; the fuzzer keeps to text.
    if text.contains("include") {
        return;
    }
    if let Ok(c) = crelay::convert_text(text, "fuzz.conf", 2003) {
        if let Err(e) = Config::parse(&c.toml, std::path::Path::new("fuzz.conf")) {
            panic!("converted to TOML that fails: {e}\n{}", c.toml);
        }
    }
});
