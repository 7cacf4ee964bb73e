//! `carbonwatch route` against `carbon-c-relay -t` on the same config
//! files: every name's destinations, in order.

use std::io::Write;
use std::process::{Command, Stdio};

use super::common::{output_ok, BIN};

/// A first rule that every config gets, so each name's trace in c-relay's
/// output starts after a marker's (c-relay prints no separator).
const MARK: &str = "zzmark";

fn names() -> Vec<String> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let heads = [
        "sys",
        "app",
        "web",
        "hosts",
        "servers",
        "APP",
        "dots",
        "drop",
        "q12",
        "extra",
        "other",
        "Mixed-Case_1",
        "a:b#c",
    ];
    for i in 0..260 {
        let head = heads[next(heads.len() as u64) as usize];
        let depth = 1 + next(4);
        let mut name = head.to_string();
        for d in 0..depth {
            let part = match next(4) {
                0 => format!("h{}", next(50)),
                1 => format!("Cpu{d}"),
                2 => format!("n-{i}"),
                _ => format!("x_{}", next(1000)),
            };
            name.push('.');
            name.push_str(&part);
        }
        out.push(name);
    }
    out
}

fn with_mark(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).unwrap();
    std::fs::write(path, format!("match ^{MARK} send to blackhole;\n{text}")).unwrap();
}

fn input(names: &[String]) -> Vec<u8> {
    let mut s = String::new();
    for (i, n) in names.iter().enumerate() {
        s.push_str(&format!("{MARK}.{i} 1 1\n{n} 1 1\n"));
    }
    s.into_bytes()
}

fn feed(cmd: &mut Command, input: Vec<u8>) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Each name's `host:port` destinations from c-relay's trace, in order.
fn theirs(conf: &std::path::Path, names: &[String]) -> Vec<Vec<String>> {
    let out = feed(
        Command::new("carbon-c-relay").args(["-t", "-f"]).arg(conf),
        input(names),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut answers: Vec<Vec<String>> = Vec::new();
    let mut started = false;
    for line in text.lines() {
        if line.trim() == format!("-> {MARK}.{}", answers.len()) {
            answers.push(Vec::new());
            started = true;
            continue;
        }
        // Destinations are indented eight spaces: `host:port`, `[v6]:port`.
        let d = line.trim();
        let is_dest = line.starts_with("        ")
            && !line.starts_with("         ")
            && !d.contains('(')
            && d.rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok());
        if started && is_dest {
            answers.last_mut().unwrap().push(d.to_string());
        }
    }
    assert_eq!(
        answers.len(),
        names.len(),
        "markers in c-relay's output:\n{text}"
    );
    answers
}

fn ours(conf: &std::path::Path, names: &[String]) -> Vec<Vec<String>> {
    let out = feed(
        Command::new(BIN).args(["route", "--config"]).arg(conf),
        input(names),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.starts_with(MARK))
        .map(|l| {
            l.split(' ')
                .skip(1)
                // carbon-c-relay prints members without their instance.
                .map(|d| match d.strip_prefix('[') {
                    Some(v6) => {
                        let (a, rest) = v6.split_once(']').unwrap();
                        let port = rest[1..].split(':').next().unwrap();
                        format!("[{a}]:{port}")
                    }
                    None => d.splitn(3, ':').take(2).collect::<Vec<_>>().join(":"),
                })
                .collect()
        })
        .collect()
}

fn compare(name: &str, spread: usize) {
    let dir = tempfile::tempdir().unwrap();
    let conf = super::conf(dir.path(), name);
    with_mark(&conf);
    let names = names();
    let (a, b) = (ours(&conf, &names), theirs(&conf, &names));
    assert_eq!(a.len(), names.len());
    let mut differ = Vec::new();
    for ((n, a), b) in names.iter().zip(&a).zip(&b) {
        if a != b {
            differ.push(format!("{n}: ours {a:?}, carbon-c-relay {b:?}"));
        }
    }
    assert!(
        differ.is_empty(),
        "{name}: {} of {} names differ:\n{}",
        differ.len(),
        names.len(),
        differ.join("\n")
    );
    // The test is only as good as the spread of answers it compares.
    let distinct: std::collections::HashSet<_> = b.iter().collect();
    assert!(
        distinct.len() >= spread,
        "{name}: only {} distinct answers",
        distinct.len()
    );
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn rings_route_as_carbon_c_relay_routes() {
    compare("rings.conf", 20);
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn rewrites_route_using_and_stop_route_as_carbon_c_relay_routes() {
    compare("rules.conf", 8);
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn included_files_route_as_carbon_c_relay_routes() {
    compare("main-with-include.conf", 4);
}

/// What `convert` prints is what `run` and `route` load: it is valid
/// TOML that routes every name the same way.
#[test]
fn converted_toml_routes_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["rings.conf", "rules.conf", "main-with-include.conf"] {
        let conf = super::conf(dir.path(), name);
        let out = output_ok(Command::new(BIN).arg("convert").arg(&conf));
        let toml = dir.path().join(format!("{name}.toml"));
        std::fs::write(&toml, &out.stdout).unwrap();
        let names = names();
        assert_eq!(ours(&conf, &names), ours(&toml, &names), "{name}");
    }
}
