//! carbonwatch: a Graphite-protocol streaming proxy with inline alerting.
//!
//! # Crate map, in the order data flows
//!
//! | stage | module | what it does |
//! |---|---|---|
//! | 1 | [`listen`] | carbon plaintext (TCP, UDP) and pickle ports; limits; backpressure |
//! | 2 | [`codec`] | lines and pickle frames to [`codec::Metric`], with carbon's rules |
//! | 3 | [`route`] | rules, clusters, bit-exact carbon and carbon-c-relay hashing; the glob and `seriesByTag` index |
//! | 4 | [`relay`] | dispatch, per-destination bounded queues, disk spools, writers; the alerting tap |
//! | 5 | [`alert`] | Seyren checks evaluated on the stream: state machine, engine, handle |
//! | 6 | [`poll`] | checks on any Graphite expression, from the render API; live-check seeding |
//! | 7 | [`notify`] | one notifier per subscription type; the outbox |
//! | 8 | [`store`] | checks, series states, alert history, outbox (SQLite); the store writer |
//! | 9 | [`api`] | the admin HTTP port: Seyren's REST API, the web UI, `/metrics` |
//!
//! Underneath: [`check`] (the vocabulary of alerting: checks, alerts,
//! notifications, the storage port) and [`stats`] (shared counters), which
//! import no stage. Above: [`config`] (the file, whose sections belong to
//! the stages), [`app`] (wiring, reload, shutdown) and [`service`]
//! (systemd readiness, status and watchdog). Imports only go
//! down: `listen` drives `codec` and `relay`; `alert` reads the relay's tap
//! and names no store or notifier. ARCHITECTURE.md has the full map, its
//! invariants and the walk of one metric.
#![deny(missing_docs)]

pub mod alert;
pub mod api;
pub mod app;
pub mod check;
pub mod codec;
pub mod config;
pub mod listen;
pub mod notify;
pub mod poll;
pub mod relay;
pub mod route;
pub mod service;
pub mod stats;
pub mod store;

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Milliseconds since the Unix epoch.
pub fn unix_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The import rules of the crate map and ARCHITECTURE.md, checked against
/// the source: each stage may name only the stages below it.
#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Every module and the crate modules it may name.
    const MAY_USE: &[(&str, &[&str])] = &[
        ("check", &[]),
        ("codec", &[]),
        ("route", &[]),
        ("stats", &["codec"]),
        ("relay", &["codec", "route", "stats"]),
        ("listen", &["codec", "relay", "stats"]),
        ("alert", &["check", "relay", "route", "stats"]),
        ("notify", &["check", "stats"]),
        ("store", &["check", "stats"]),
        ("poll", &["alert", "check", "stats"]),
        ("service", &["relay"]),
        (
            "api",
            &[
                "alert", "check", "notify", "poll", "relay", "route", "stats", "store",
            ],
        ),
        (
            "config",
            &[
                "alert", "api", "check", "listen", "notify", "poll", "relay", "route",
            ],
        ),
    ];

    fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_stage_names_only_the_stages_below_it() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let modules: Vec<&str> = MAY_USE.iter().map(|(m, _)| *m).chain(["app"]).collect();
        let mut wrong = Vec::new();
        for (module, allowed) in MAY_USE {
            let mut files = Vec::new();
            let dir = src.join(module);
            if dir.is_dir() {
                sources(&dir, &mut files);
            } else {
                files.push(src.join(format!("{module}.rs")));
            }
            for file in files {
                let text = std::fs::read_to_string(&file).unwrap();
                for used in &modules {
                    let named = text.contains(&format!("crate::{used}::"))
                        || text.contains(&format!("crate::{used}}}"))
                        || text.contains(&format!("crate::{used};"));
                    if named && used != module && !allowed.contains(used) {
                        wrong.push(format!("{} names {used}", file.display()));
                    }
                }
                if *module == "listen" && text.to_ascii_lowercase().contains("alert") {
                    wrong.push(format!("{} mentions alerting", file.display()));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
