//! Graphite globs against graphite-web's own matching code (Debian
//! graphite-web): the standard finder removes backslashes, splits the
//! pattern on dots and matches node by node with `match_entries`
//! (brace expansion, then `fnmatch`). Every pair of a table of patterns and
//! names must get the same answer from carbonwatch's `Glob` and from the
//! live-check pattern index.
//!
//! Not compared: `**`, and braces that contain a dot, which graphite-web
//! splits apart before expanding (carbonwatch treats the dot as part of the
//! alternative).

use std::process::Command;

use carbonwatch::route::index::PatternIndex;
use carbonwatch::route::Glob;

const PATTERNS: &[&str] = &[
    "servers.*",
    "servers.*.cpu",
    "servers.web*.cpu",
    "servers.*web*.cpu",
    "servers.w?b01.cpu",
    "servers.web0[1-3].cpu",
    "servers.web0[!1].cpu",
    "servers.web0[!1-2].cpu",
    "servers.{web,db}01.cpu",
    "servers.{web,db}0{1,2}.cpu",
    "servers.{web{01,02},db01}.cpu",
    "servers.web01.{cpu,mem}",
    "servers.*.{cpu,mem}.*",
    "{servers,hosts}.*.*",
    "servers.[a-d]*.cpu",
    "servers.[-a]*.cpu",
    "servers.[]]*.cpu",
    "a+b.c",
    "a(b).c",
    "x$.^y",
    "caf\u{e9}.*",
    "auth.*.sshd.failed",
    "*.*.*.*",
    "*",
    "servers..cpu",
    "servers.*.",
    "servers.web\\01.cpu",
    "servers.{,web}01.cpu",
    "servers.*0*1*.cpu",
    "servers.???????.cpu",
    "servers.[w]eb01.cpu",
    "servers.web01*.cpu*",
];

const NAMES: &[&str] = &[
    "servers.web01.cpu",
    "servers.web02.cpu",
    "servers.web03.cpu",
    "servers.db01.cpu",
    "servers.db02.cpu",
    "servers.web01.mem",
    "servers.web01.cpu.user",
    "servers.web01",
    "servers",
    "hosts.web01.cpu",
    "servers.-web.cpu",
    "servers.]x.cpu",
    "servers.dweb.cpu",
    "a+b.c",
    "a(b).c",
    "x$.^y",
    "caf\u{e9}.x",
    "auth.host1.sshd.failed",
    "servers..cpu",
    "servers.web01.",
    "servers.01.cpu",
    "servers.wab01.cpu",
    "servers.Web01.cpu",
    "a.b.c.d",
    "x",
    "servers.web011.cpu",
    "servers.web01.cpu1",
];

#[test]
#[ignore = "needs Debian graphite-web"]
fn globs_match_like_graphite_web() {
    const PYTHON: &str = r#"
import json, sys
from graphite.finders import match_entries
spec = json.load(sys.stdin)
out = []
for p in spec["patterns"]:
    parts = p.replace("\\", "").split(".")
    row = []
    for n in spec["names"]:
        nodes = n.split(".")
        row.append(len(nodes) == len(parts) and all(match_entries([x], q) for x, q in zip(nodes, parts)))
    out.append(row)
json.dump(out, sys.stdout)
"#;
    let spec = serde_json::json!({"patterns": PATTERNS, "names": NAMES});
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PYTHON])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 with Debian graphite-web");
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        spec.to_string().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: Vec<Vec<bool>> = serde_json::from_slice(&out.stdout).unwrap();
    let (index, errors) =
        PatternIndex::build(PATTERNS.iter().enumerate().map(|(i, p)| (i as u32, *p)), 1);
    assert!(errors.is_empty(), "{errors:?}");
    let mut differ = Vec::new();
    let mut positives = 0;
    for (pi, p) in PATTERNS.iter().enumerate() {
        let glob = Glob::new(p).unwrap();
        for (ni, n) in NAMES.iter().enumerate() {
            let w = want[pi][ni];
            positives += usize::from(w);
            let mut hits = Vec::new();
            index.matches(n, &mut hits);
            let (g, ix) = (glob.is_match(n), hits.contains(&(pi as u32)));
            if g != w || ix != w {
                differ.push(format!(
                    "{p:?} vs {n:?}: graphite-web {w}, Glob {g}, index {ix}"
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} differences:\n{}",
        differ.len(),
        differ.join("\n")
    );
    assert!(
        positives > 40,
        "the table must exercise matches too ({positives})"
    );
}
