//! Glob compilation and matching on arbitrary patterns and names: never
//! a panic or a stack overflow, and the index's node matcher agrees with
//! the regex-based glob wherever both accept a single-node pattern.
#![no_main]

use carbonwatch::route::index::PatternIndex;
use carbonwatch::route::glob::NodeGlob;
use carbonwatch::route::Glob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, name) = text.split_once('\n').unwrap_or((text, "a.b"));
    let glob = Glob::new(pattern);
    if let Ok(g) = &glob {
        let whole = g.is_match(name);
        if !pattern.contains('.') && !name.contains('.') {
            if let Some(node) = NodeGlob::new(pattern) {
                assert_eq!(node.is_match(name), whole, "{pattern:?} vs {name:?}");
            }
        }
    }
    let (index, _errors) = PatternIndex::build([(0, pattern)], 1);
    drop(index);
});
