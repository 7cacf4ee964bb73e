//! Broken carbon-c-relay files: carbonwatch names file, line and column
//! with carets under the offending text, and carbon-c-relay refuses the
//! same files.

use std::process::Command;

use super::common::BIN;

/// `(config, expected "line:col: message" start, expected caret line,
/// the line carbon-c-relay names)`. c-relay names the token it read
/// last, often the statement's end; carbonwatch names the offending one,
/// on the same line except for an unterminated string, which c-relay
/// reports on the next.
const CORPUS: &[(&str, &str, &str, usize)] = &[
    (
        "cluster a forward\n  127.0.0.1:2003;\nmatch * send to nope;\n",
        "3:16: unknown cluster",
        "                ^^^^",
        3,
    ),
    (
        "cluster a forward 127.0.0.1:99999;\n",
        "1:18: invalid port number '99999'",
        "                  ^^^^^^^^^^^^^^^",
        1,
    ),
    (
        "cluster a forward 127.0.0.1:2003;\n\tmatch ( send to a;\n",
        "2:7: invalid expression '(':",
        "\t      ^",
        2,
    ),
    (
        "cluster a bogus 127.0.0.1:2003;\n",
        "1:10: syntax error, unknown cluster type 'bogus'",
        "          ^^^^^",
        1,
    ),
    (
        "cluster a forward 127.0.0.1:2003;\nmatch * send to a\n",
        "3:0: syntax error, unexpected end of file, expecting ';'",
        "^",
        3,
    ),
    (
        "cluster a carbon_ch replication 0 127.0.0.1:2003;\n",
        "1:20: replication count must be between 1 and 255",
        "                    ^^^^^^^^^^^",
        1,
    ),
    (
        "cluster a carbon_ch replication 3 127.0.0.1:2003 127.0.0.2:2003;\n",
        "1:8: invalid cluster 'a': replication count (3) is larger than the number of servers (2)",
        "        ^",
        1,
    ),
    (
        "cluster a forward 127.0.0.1:2003;\ncluster a forward 127.0.0.1:2004;\n",
        "2:8: cluster with the same name already defined",
        "        ^",
        2,
    ),
    (
        "cluster a forward 127.0.0.1:2003;\nmatch * send to a;\nrewrite ^(x into y;\n",
        "3:8: invalid expression '^(x':",
        "        ^^^",
        3,
    ),
    (
        "match \"^a\n",
        "1:6: unterminated string",
        "      ^^^",
        2,
    ),
    (
        "aggregate ^a every 10 seconds expire after 5 seconds compute sum write to b;\n",
        "1:43: expire must be greater than interval",
        "                                           ^",
        1,
    ),
    (
        "aggregate ^a every 10 seconds expire after 10 seconds compute sum write to b;\n",
        "1:43: expire must be greater than interval",
        "                                           ^^",
        1,
    ),
    (
        "cluster a forward 127.0.0.1:2003;\naggregate ^a every 1 seconds expire after 2 seconds compute sum write to b send to nope;\n",
        "2:83: unknown cluster",
        "                                                                                   ^^^^",
        2,
    ),
    (
        "aggregate ^a every 10 seconds expire after 20 seconds compute percentile0 write to b;\n",
        "1:62: percentile<x>: value x must be between 1 and 99",
        "                                                              ^^^^^^^^^^^",
        1,
    ),
    (
        "statistics submit every 0 seconds;\n",
        "1:24: interval must be > 0",
        "                        ^",
        1,
    ),
    (
        "cluster a fnv1a_ch 127.0.0.1:2003=x;\ncluster b forward 127.0.0.1:2003=y;\n",
        "2:18: cannot set instance 'y' for server 127.0.0.1:2003: server was previously defined with instance 'x'",
        "                  ^^^^^^^^^^^^^^",
        2,
    ),
    (
        "listen type linemode 2003 proto sctp;\n",
        "1:32: syntax error, unexpected 'sctp', expecting tcp or udp or unix",
        "                                ^^^^",
        1,
    ),
];

fn check(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.conf");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{text:?} was accepted");
    String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "broken.conf")
}

#[test]
fn broken_files_are_refused_at_their_line_and_column() {
    for (text, at, carets, _) in CORPUS {
        let got = check(text);
        let want = format!("broken.conf:{at}");
        assert!(got.contains(&want), "{text:?}: want {want:?}, got:\n{got}");
        let line: usize = at.split(':').next().unwrap().parse().unwrap();
        let quoted = text.lines().nth(line - 1).unwrap_or_default();
        assert!(
            got.contains(&format!("\n{quoted}\n{carets}\n")),
            "{text:?}: want the line and carets {carets:?}, got:\n{got}"
        );
    }
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn carbon_c_relay_refuses_the_same_files() {
    for (text, _, _, line) in CORPUS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.conf");
        std::fs::write(&path, text).unwrap();
        let out = Command::new("carbon-c-relay")
            .args(["-tt", "-f"])
            .arg(&path)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("failed to read configuration") || !out.status.success(),
            "{text:?} is accepted by carbon-c-relay:\n{log}"
        );
        assert!(
            log.contains(&format!("broken.conf:{line}:")),
            "{text:?}: carbon-c-relay puts it elsewhere:\n{log}"
        );
    }
}

/// What carbonwatch reads but cannot do yet is refused, not ignored.
#[test]
fn constructs_carbonwatch_cannot_apply_are_refused_by_name() {
    let cases = [
        (
            "cluster a forward 127.0.0.1:2003 proto udp 127.0.0.1:2004;\n",
            "mixing proto udp and tcp members",
        ),
        (
            "cluster a forward 127.0.0.1:2003 transport gzip;\n",
            "transport gzip is not supported",
        ),
        (
            "cluster a file /tmp/x;\n",
            "cluster type file is not supported",
        ),
        (
            "cluster a forward 127.0.0.1:2003;\nmatch \\<a send to a;\n",
            "are not supported; use \\b",
        ),
    ];
    for (text, want) in cases {
        let got = check(text);
        assert!(got.contains(want), "{text:?}: want {want:?}, got:\n{got}");
    }
}
