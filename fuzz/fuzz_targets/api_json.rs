//! The API's JSON bodies (checks and subscriptions) on arbitrary bytes:
//! parsing and validation never panic, and an accepted check survives a
//! round trip through its own JSON.
#![no_main]

use carbonwatch::alert::validate;
use carbonwatch::check::{Check, Subscription};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(check) = serde_json::from_slice::<Check>(data) {
        let _ = validate(&check);
        let json = serde_json::to_vec(&check).expect("a check serialises");
        let again: Check = serde_json::from_slice(&json).expect("its own JSON parses");
        assert_eq!(again.name, check.name);
        assert_eq!(again.target, check.target);
    }
    let _ = serde_json::from_slice::<Subscription>(data);
});
