//! carbonwatch under a service manager, as systemd runs it: readiness once
//! the ports are bound, the watchdog fed, reload and stop announced, all
//! read from a test `NOTIFY_SOCKET`; and log lines that fit where they go
//! (plain in a file, `<N>`-prefixed for journald, JSON on request).

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_carbonwatch");

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.join("cw.toml");
    std::fs::write(
        &path,
        format!(
            "[listen]\nplaintext_tcp = \"127.0.0.1:{port}\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
             [admin]\nlisten = \"\"\n[stats]\nenabled = false\n[alerting]\nstore = \"cw.db\"\n\
             [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
             [[route]]\nmatch = \"*\"\nto = [\"out\"]\n",
            sink.local_addr().unwrap()
        ),
    )
    .unwrap();
    std::mem::forget(sink);
    path
}

#[test]
fn readiness_watchdog_reload_and_stop_reach_the_service_manager() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = common::free_port();
    let cfg = config(dir.path(), port);
    let child = common::Child(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let first = common::notifications_until(&sock, "READY=1");
    assert!(first.last().unwrap().contains("STATUS="), "{first:?}");
    // Ready means the port is bound already.
    std::net::TcpStream::connect(("127.0.0.1", port))
        .expect("the port is open when READY=1 arrives");
    // The watchdog wants a ping every 0.4 s: half that, from the runtime,
    // with the status line.
    let started = Instant::now();
    let mut pings = 0;
    while pings < 3 {
        for msg in common::notifications_until(&sock, "WATCHDOG=1") {
            if msg.lines().any(|l| l == "WATCHDOG=1") {
                pings += 1;
                assert!(
                    msg.lines().any(|l| l.starts_with("STATUS=")
                        && l.contains("metrics/s")
                        && l.contains("queued")
                        && l.contains("spooled")),
                    "{msg}"
                );
            }
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The state lands beside the config, not in the current directory.
    assert!(dir.path().join("cw.db").exists());
    common::signal(&child.0, "-HUP");
    let reload = common::notifications_until(&sock, "READY=1");
    assert!(
        reload.iter().any(|m| m.lines().any(|l| l == "RELOADING=1")),
        "{reload:?}"
    );
    assert!(
        reload.last().unwrap().contains("STATUS=reloaded"),
        "{reload:?}"
    );
    common::signal(&child.0, "-TERM");
    common::notifications_until(&sock, "STOPPING=1");
    let mut child = child;
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn logs_are_plain_in_a_file_prefixed_for_journald_and_json_on_request() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = config(dir.path(), port);
    // A run that starts and is stopped at once logs at info level.
    let run = |args: Vec<String>, env: Vec<(&'static str, String)>, log: &std::path::Path| {
        let err = std::fs::File::create(log).unwrap();
        let socket_path = log.with_extension("sock");
        let sock = UnixDatagram::bind(&socket_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(&args)
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("RUST_LOG")
            .stderr(err);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let child = common::Child(cmd.spawn().unwrap());
        common::notifications_until(&sock, "READY=1");
        common::signal(&child.0, "-TERM");
        common::notifications_until(&sock, "STOPPING=1");
        let mut child = child;
        child.0.wait().unwrap();
        let mut text = String::new();
        std::fs::File::open(log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.extend(["run".into(), "--config".into(), cfg.display().to_string()]);
        a
    };
    let plain = run(args(&[]), vec![], &dir.path().join("plain.log"));
    assert!(
        !plain.contains('\u{1b}'),
        "no colour codes in a file: {plain:?}"
    );
    assert!(plain.contains(" INFO "), "{plain}");

    // journald: stderr is the stream JOURNAL_STREAM names.
    let journal = dir.path().join("journal.log");
    std::fs::File::create(&journal).unwrap();
    let m = std::fs::metadata(&journal).unwrap();
    let stream = format!("{}:{}", m.dev(), m.ino());
    // `run` opens the file again with truncation: the inode stays.
    let text = run(args(&[]), vec![("JOURNAL_STREAM", stream)], &journal);
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("<6>"),
        "a priority prefix and no timestamp: {text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");

    let json = run(
        args(&["--log-format", "json"]),
        vec![],
        &dir.path().join("json.log"),
    );
    for line in json.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["fields"]["message"].is_string(),
            "{v}"
        );
    }
    assert!(json.lines().count() >= 1);
}

#[test]
fn the_version_names_the_commit() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!(
            "carbonwatch {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    let commit = text
        .split("(commit ")
        .nth(1)
        .unwrap()
        .trim_end()
        .trim_end_matches(')');
    assert!(!commit.is_empty());
}
