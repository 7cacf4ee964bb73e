//! carbon-aggregator rules text: never a panic, and whatever converts is
//! `[[aggregate]]` tables that carbonwatch loads.
#![no_main]

use carbonwatch::config::{aggrules, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tables) = aggrules::convert_text(text, "fuzz.conf", 5) {
        let full = format!("[alerting]\nstore = ''\n{tables}");
        if let Err(e) = Config::parse(&full, std::path::Path::new("fuzz.toml")) {
            panic!("converted to TOML that fails: {e}\n{tables}");
        }
    }
});
