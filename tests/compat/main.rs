//! carbonwatch against what it replaces: hashing bit for bit against
//! carbon and carbon-c-relay, glob matching against graphite-web, and the
//! shipped configs. One test binary, since each links the whole crate.

mod configs;
mod glob;
mod hash;
