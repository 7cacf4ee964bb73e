//! `aggregate` rules: carbon-c-relay and carbonwatch run one file and are
//! fed the same points, stamped relative to each run's start; every
//! destination gets the same lines, aggregates included, with the
//! timestamps taken relative to that start again.
//!
//! Buckets are emitted when their expiry passes (c-relay splays that
//! over an interval per series), so a destination's lines are compared
//! sorted: the order in which a relay emits aggregates that fall due
//! together says nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use super::common::signal;
use super::live::{connect_unix, free_port, start, Sink};

const DESTINATIONS: usize = 3;
const EVERY: i64 = 3;

/// The points, around `base` (the start of the bucket before the current
/// one): two buckets of every series, a point too old and one too new
/// for any bucket, and lines no aggregate takes.
fn input(base: i64) -> Vec<u8> {
    let mut s = String::new();
    for (b, t) in [(0, base), (1, base + EVERY)] {
        for (h, host) in ["web1", "web2", "db1"].iter().enumerate() {
            for (k, kind) in ["user", "system", "idle"].iter().enumerate() {
                // Values at least 1 apart: c-relay sorts for percentiles
                // with a comparator that truncates differences to int.
                let v = 10 * (b + 1) + 3 * h + 2 * k;
                s += &format!("sys.{host}.cpu.{kind} {v}.25 {}\n", t + (k as i64 % EVERY));
            }
        }
        for (a, app) in ["Shop", "api"].iter().enumerate() {
            for i in 0..4 {
                s += &format!("app.{app}.requests {} {}\n", 100 * (a + 1) + i + b, t + 1);
            }
        }
        for name in ["svc.a.latency", "svc.b.latency"] {
            s += &format!("{name} {}.5 {t}\n", 7 + b);
            s += &format!("{name} {}.5 {}\n", 9 + b, t + 2);
        }
        for i in 0..5 {
            s += &format!("lat.h{i}.p99 {i} {t}\n");
        }
    }
    s += &format!("sys.web1.cpu.user 1 {}\n", base - 60);
    s += &format!("sys.web1.cpu.user 1 {}\n", base + 120);
    for i in 0..3 {
        s += &format!("plain.metric{i} {i} {base}\n");
    }
    s.into_bytes()
}

/// Lines each destination gets: `out` the inputs no aggregate stopped,
/// `agg` 3 hosts × 9 computes × 2 buckets, `agg2` the request totals
/// (2 apps), the latency averages (2) and the one count, per bucket.
const EXPECTED: [usize; DESTINATIONS] = [2 * (8 + 4) + 3, 54, 2 * (2 + 2 + 1)];

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `relay` on the file; each destination's lines, sorted, with
/// timestamps made relative to the run's base.
fn run(relay: &str, dir: &std::path::Path) -> Vec<Vec<String>> {
    let sinks: Vec<Sink> = (0..DESTINATIONS).map(|_| Sink::start()).collect();
    let port = free_port();
    let sock = dir.join(format!("{relay}.sock"));
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crelay/conf/aggregate.conf"),
    )
    .unwrap()
    .replace("@PORT@", &port.to_string())
    .replace("@SOCK@", &sock.display().to_string());
    for (i, s) in sinks.iter().enumerate() {
        text = text.replace(&format!("@D{i}@"), &s.port.to_string());
    }
    let conf = dir.join(format!("{relay}.conf"));
    std::fs::write(&conf, text).unwrap();
    let child = start(relay, &conf, port);
    let base = unix_now().div_euclid(EVERY) * EVERY - EVERY;
    let mut c = connect_unix(&sock);
    c.write_all(&input(base)).unwrap();
    drop(c);
    // The last bucket falls due 7 s after it starts, plus a splay under
    // one interval, plus the expiry pass.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sinks.iter().zip(EXPECTED).any(|(s, n)| s.count() < n) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{relay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sinks
        .iter()
        .map(|s| {
            let mut lines: Vec<String> = s
                .lines()
                .iter()
                .map(|l| {
                    let (rest, ts) = l.rsplit_once(' ').expect("three fields");
                    let ts: i64 = ts.parse().expect("an integer timestamp");
                    format!("{rest} base{:+}", ts - base)
                })
                .collect();
            lines.sort();
            lines
        })
        .collect()
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn aggregates_are_what_carbon_c_relay_computes() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = run("carbon-c-relay", dir.path());
    let ours = run("carbonwatch", dir.path());
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            t.len(),
            EXPECTED[i],
            "carbon-c-relay, destination {i}: {t:#?}"
        );
        assert_eq!(t, o, "destination {i}");
    }
    // Spot checks that the comparison compares something.
    assert!(
        ours[1].contains(&"agg.web1.cpu.count 3 base+3".to_string()),
        "{:#?}",
        ours[1]
    );
    assert!(
        ours[2].contains(&"totals.requests.shop 406.000000 base+0".to_string()),
        "{:#?}",
        ours[2]
    );
}
