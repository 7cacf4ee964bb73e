//! carbonwatch reading carbon-c-relay's config files, against Debian's
//! carbon-c-relay itself: where each name goes (`carbonwatch route`
//! against `carbon-c-relay -t`), and what a broken file is told.

#[path = "../common/mod.rs"]
mod common;

mod aggregate;
mod errors;
mod live;
mod route;
mod udp;

use std::path::{Path, PathBuf};

/// The configs under `tests/crelay/conf`, with `@DIR@` replaced by that
/// directory, written to `dir`.
pub fn conf(dir: &Path, name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crelay/conf");
    let text = std::fs::read_to_string(src.join(name))
        .unwrap()
        .replace("@DIR@", &src.display().to_string());
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
