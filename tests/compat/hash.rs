//! Differential tests of the consistent hashes against the real
//! implementations from Debian: Python carbon's `ConsistentHashingRouter`
//! (graphite-carbon) and `carbon-c-relay -t`. 12,000 generated names,
//! tagged and non-ASCII ones included, over rings big enough (60 members)
//! that ring collisions occur, which is where the two families differ.
//!
//! Run with `cargo test --test compat hash -- --include-ignored`.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use carbonwatch::config::Config;
use carbonwatch::route::crelay_key;

const NAMES: usize = 12_000;

/// Deterministic, varied metric names.
fn names() -> Vec<String> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let words = [
        "servers",
        "web",
        "db",
        "cpu",
        "user",
        "system",
        "requests",
        "p99",
        "auth",
        "failed_logins",
        "iptables",
        "DENY",
    ];
    (0..NAMES)
        .map(|i| {
            let depth = 2 + (next() % 5) as usize;
            let mut parts: Vec<String> = (0..depth)
                .map(|_| {
                    let w = words[(next() % words.len() as u64) as usize];
                    if next() % 3 == 0 {
                        format!("{w}{}", next() % 1000)
                    } else {
                        w.to_string()
                    }
                })
                .collect();
            match i % 10 {
                0 => parts.push(format!("caf\u{e9}{}", next() % 100)),
                1 => parts.push(format!(
                    "\u{43c}\u{435}\u{442}\u{440}\u{438}\u{43a}\u{430}{}",
                    next() % 100
                )),
                _ => {}
            }
            let mut name = parts.join(".");
            if i % 7 == 0 {
                name.push_str(&format!(";host=h{};dc=eu{}", next() % 50, next() % 3));
            }
            name
        })
        .collect()
}

/// `n` members on distinct hosts, so `host:port` identifies each.
fn members(n: usize, net: u8, instance: impl Fn(usize) -> Option<String>) -> Vec<String> {
    (0..n)
        .map(|i| {
            let base = format!("10.{net}.{}.{}:2003", i / 200, i % 200 + 1);
            match instance(i) {
                Some(inst) => format!("{base}:{inst}"),
                None => base,
            }
        })
        .collect()
}

fn router(kind: &str, replication: usize, members: &[String]) -> Config {
    let list: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    let text = format!(
        "[[cluster]]\nname = \"c\"\ntype = \"{kind}\"\nreplication = {replication}\ndestinations = [{}]\n\
         [[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
        list.join(", ")
    );
    Config::parse(&text, std::path::Path::new("diff.toml")).unwrap()
}

/// Our answer per name: the destinations as written in the config.
fn ours(config: &Config, names: &[String]) -> Vec<Vec<String>> {
    names
        .iter()
        .map(|n| {
            config
                .router
                .explain(n, "")
                .split(' ')
                .skip(1)
                .map(str::to_string)
                .collect()
        })
        .collect()
}

const PYTHON: &str = r#"
import json, sys
from carbon.routers import ConsistentHashingRouter
from carbon.util import parseDestinations
class Settings(dict):
    __getattr__ = dict.get
spec = json.load(open(sys.argv[1]))
s = Settings(REPLICATION_FACTOR=spec["replication"], DIVERSE_REPLICAS=True, ROUTER_HASH_TYPE=spec["hash"])
r = ConsistentHashingRouter(s)
for d in parseDestinations(spec["members"]):
    r.addDestination(d)
out = []
for name in spec["names"]:
    out.append(["%s:%d%s" % (h, p, (":" + i) if i else "") for (h, p, i) in r.getDestinations(name)])
json.dump(out, sys.stdout)
"#;

fn python(
    hash: &str,
    replication: usize,
    members: &[String],
    names: &[String],
) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("spec.json");
    let json = serde_json::json!({"hash": hash, "replication": replication, "members": members, "names": names});
    std::fs::write(&spec, json.to_string()).unwrap();
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(PYTHON)
        .arg(&spec)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python's JSON answer")
}

/// `carbon-c-relay -t` fed the bare, cleansed names a live relay hashes.
fn crelay(
    kind: &str,
    replication: usize,
    members: &[String],
    names: &[String],
) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("relay.conf");
    let servers: Vec<String> = members
        .iter()
        .map(|m| {
            let mut p = m.splitn(3, ':');
            let (h, port, inst) = (p.next().unwrap(), p.next().unwrap(), p.next());
            match inst {
                Some(i) => format!("{h}:{port}={i}"),
                None => format!("{h}:{port}"),
            }
        })
        .collect();
    std::fs::write(
        &conf,
        format!(
            "cluster c {kind} replication {replication}\n    {}\n;\nmatch * send to c;\n",
            servers.join("\n    ")
        ),
    )
    .unwrap();
    let mut child = Command::new("carbon-c-relay")
        .args(["-t", "-f"])
        .arg(&conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("carbon-c-relay");
    let mut input = Vec::new();
    for n in names {
        input.extend_from_slice(&crelay_key(n));
        input.push(b'\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // Blocks: "match\n    * -> NAME\n    type(c)\n        host:port\n..."
    let mut answers: Vec<Vec<String>> = Vec::new();
    let mut in_match = false;
    for line in text.lines() {
        if line == "match" {
            in_match = true;
            answers.push(Vec::new());
        } else if in_match && line.starts_with("        ") && !line.trim().starts_with("hash_pos") {
            answers.last_mut().unwrap().push(line.trim().to_string());
        }
    }
    assert_eq!(
        answers.len(),
        names.len(),
        "carbon-c-relay answered {} of {} names:\n{}",
        answers.len(),
        names.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    answers
}

/// Drops the `:instance` that carbon-c-relay does not print.
fn host_port(v: &[String]) -> Vec<String> {
    v.iter()
        .map(|d| d.splitn(3, ':').take(2).collect::<Vec<_>>().join(":"))
        .collect()
}

fn compare(what: &str, names: &[String], ours: &[Vec<String>], theirs: &[Vec<String>]) {
    assert_eq!(ours.len(), names.len(), "{what}: our answers");
    assert_eq!(theirs.len(), names.len(), "{what}: their answers");
    assert!(
        theirs.iter().all(|v| !v.is_empty()),
        "{what}: every name has a destination"
    );
    let mut mismatches = Vec::new();
    for ((n, a), b) in names.iter().zip(ours).zip(theirs) {
        if a != b {
            mismatches.push(format!("{n}: ours {a:?} theirs {b:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{what}: {} of {} names differ, e.g.\n{}",
        mismatches.len(),
        names.len(),
        mismatches[..mismatches.len().min(10)].join("\n")
    );
}

#[test]
#[ignore = "needs Debian graphite-carbon"]
fn python_carbon_ch_and_fnv1a_ch_match_graphite_carbon() {
    let names = names();
    let cases: Vec<(&str, &str, usize, Vec<String>)> = vec![
        (
            "carbon_ch",
            "carbon_ch",
            2,
            members(60, 1, |i| Some(format!("i{i}"))),
        ),
        ("carbon_ch", "carbon_ch", 1, members(7, 2, |_| None)),
        (
            "carbon_ch",
            "carbon_ch",
            3,
            members(12, 3, |i| Some(["a", "b", "c"][i % 3].to_string()))
                .into_iter()
                .map(|m| m.replacen(&format!("10.3.0.{}", 0), "10.3.0.0", 1))
                .collect(),
        ),
        (
            "fnv1a_ch",
            "fnv1a_ch",
            2,
            members(60, 4, |i| Some(format!("10.4.0.{}:2003", i % 200 + 1))),
        ),
    ];
    for (kind, hash, repl, m) in cases {
        let config = router(kind, repl, &m);
        compare(
            &format!("{kind} x{} r{repl}", m.len()),
            &names,
            &ours(&config, &names),
            &python(hash, repl, &m, &names),
        );
    }
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn crelay_hashes_match_carbon_c_relay() {
    let names = names();
    let numeric = |i: usize| Some(format!("{}", (i * 7) % 23));
    let cases: Vec<(&str, &str, usize, Vec<String>)> = vec![
        (
            "carbon_ch_crelay",
            "carbon_ch",
            2,
            members(60, 5, |i| Some(format!("i{i}"))),
        ),
        ("carbon_ch_crelay", "carbon_ch", 1, members(9, 6, |_| None)),
        ("fnv1a_ch_crelay", "fnv1a_ch", 2, members(60, 7, |_| None)),
        (
            "fnv1a_ch_crelay",
            "fnv1a_ch",
            2,
            members(20, 8, |i| Some(format!("n{i}"))),
        ),
        ("jump_fnv1a_ch", "jump_fnv1a_ch", 2, members(23, 9, numeric)),
        (
            "jump_fnv1a_ch",
            "jump_fnv1a_ch",
            3,
            members(10, 10, |_| None),
        ),
    ];
    for (kind, crelay_kind, repl, m) in cases {
        let config = router(kind, repl, &m);
        let ours: Vec<Vec<String>> = ours(&config, &names).iter().map(|v| host_port(v)).collect();
        compare(
            &format!("{kind} x{} r{repl}", m.len()),
            &names,
            &ours,
            &crelay(crelay_kind, repl, &m, &names),
        );
    }
}

#[test]
#[ignore = "needs Debian graphite-carbon and carbon-c-relay"]
fn the_two_families_really_differ_on_collisions() {
    // Sanity check that the tests above can fail: on a 60-member ring the
    // Python and c-relay placements must disagree for some names.
    let names = names();
    let m = members(60, 11, |i| Some(format!("i{i}")));
    let untagged: Vec<String> = names
        .iter()
        .filter(|n| !n.contains(';') && n.is_ascii())
        .cloned()
        .collect();
    let py = ours(&router("carbon_ch", 1, &m), &untagged);
    let cr = ours(&router("carbon_ch_crelay", 1, &m), &untagged);
    let differ = py.iter().zip(&cr).filter(|(a, b)| a != b).count();
    assert!(
        differ > 0 && differ < untagged.len() / 10,
        "{differ} of {} differ",
        untagged.len()
    );
    let mut by_host: HashMap<&String, usize> = HashMap::new();
    py.iter()
        .for_each(|v| *by_host.entry(&v[0]).or_default() += 1);
    assert!(by_host.len() > 50, "names spread over the ring");
}
