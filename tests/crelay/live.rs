//! carbon-c-relay and carbonwatch run with the same carbon-c-relay file
//! and fed the same lines: each destination receives the same lines, in
//! the same order. Both are stopped with SIGTERM, which flushes them, and
//! each destination is read to the end of its connections.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{signal, BIN};

const DESTINATIONS: usize = 8;

/// A destination: every connection read to its end, in arrival order.
pub struct Sink {
    pub port: u16,
    data: Arc<Mutex<Vec<u8>>>,
    open: Arc<Mutex<usize>>,
}

impl Sink {
    pub fn start() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let data = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(Mutex::new(0));
        let (d, o) = (data.clone(), open.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { break };
                *o.lock().unwrap() += 1;
                let (d, o) = (d.clone(), o.clone());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 65536];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        d.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    *o.lock().unwrap() -= 1;
                });
            }
        });
        Sink { port, data, open }
    }

    pub fn count(&self) -> usize {
        self.data
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    /// The lines, once no connection is open; self-metrics left out.
    pub fn lines(&self) -> Vec<String> {
        let start = Instant::now();
        while *self.open.lock().unwrap() > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "a connection stayed open"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        String::from_utf8_lossy(&self.data.lock().unwrap())
            .lines()
            .filter(|l| !l.starts_with("carbon.relays."))
            .map(str::to_string)
            .collect()
    }
}

/// Connects to a relay's unix socket, which it may bind a moment after
/// the TCP port that `start` waited for.
pub fn connect_unix(path: &std::path::Path) -> std::os::unix::net::UnixStream {
    let start = Instant::now();
    loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(c) => return c,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(20),
                "{}: {e}",
                path.display()
            ),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The input: names needing cleansing, rewrites with modifiers, every
/// cluster, tags. Only well-formed lines: carbon-c-relay forwards
/// `name garbage garbage` unread, where carbonwatch applies carbon's rules
/// and counts such a line as bad (README, "Moving from carbon-c-relay").
fn input() -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..40 {
        for name in [
            format!("servers.WEB{}.cpu.user", i % 7),
            format!("APP.front{i}.Latency.p99"),
            format!("app.svc{i}.requests"),
            format!("any.q{i}.depth"),
            format!("drop.me{i}"),
            format!("plain.metric{i}"),
            format!("caf\u{e9}.s{i}..x."),
            format!(".lead{i}.dot"),
            format!("tag.name{i};dc=ams;host=w{i}"),
            format!("odd/chars{i}@x+y"),
        ] {
            s.extend_from_slice(format!("{name} {i}.5 {}\n", 1_700_000_000 + i).as_bytes());
        }
    }
    s
}

pub fn start(relay: &str, conf: &std::path::Path, port: u16) -> Child {
    let mut cmd = match relay {
        "carbon-c-relay" => {
            let mut c = Command::new("carbon-c-relay");
            c.args(["-w", "1", "-s", "-H", "test.host", "-f"]).arg(conf);
            c
        }
        _ => {
            let mut c = Command::new(BIN);
            c.args(["run", "--config"]).arg(conf);
            c
        }
    };
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{relay} did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// How many lines the destinations get in all, by `carbonwatch route`:
/// what each relay is waited for before it is stopped. A relay that sends
/// fewer is stopped after a deadline and the comparison shows the rest.
fn expected(conf: &std::path::Path) -> usize {
    let mut child = Command::new(BIN)
        .args(["route", "--config"])
        .arg(conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input()).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(' ').count() - 1)
        .sum()
}

/// Runs `relay` on the file and returns each destination's lines.
fn run(relay: &str, dir: &std::path::Path) -> Vec<Vec<String>> {
    let sinks: Vec<Sink> = (0..DESTINATIONS).map(|_| Sink::start()).collect();
    let port = free_port();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/crelay/conf/live.conf"),
    )
    .unwrap()
    .replace("@PORT@", &port.to_string());
    let sock = dir.join(format!("{relay}.sock"));
    let text = text.replace("@SOCK@", &sock.display().to_string());
    let mut text = text;
    for (i, s) in sinks.iter().enumerate() {
        text = text.replace(&format!("@D{i}@"), &s.port.to_string());
    }
    let conf = dir.join(format!("{relay}.conf"));
    std::fs::write(&conf, text).unwrap();
    let child = start(relay, &conf, port);
    let mut c = connect_unix(&sock);
    c.write_all(&input()).unwrap();
    drop(c);
    let want = expected(&conf);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sinks.iter().map(Sink::count).sum::<usize>() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{relay}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sinks.iter().map(Sink::lines).collect()
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn every_destination_receives_what_carbon_c_relay_sends() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = run("carbon-c-relay", dir.path());
    let ours = run("carbonwatch", dir.path());
    let total: usize = theirs.iter().map(Vec::len).sum();
    assert!(
        total > 300,
        "carbon-c-relay sent only {total} lines: {theirs:?}"
    );
    // The file's validate rules took effect: any.q0-9 pass (the rest end
    // the walk), plain.metric0-19 pass (the rest are dropped).
    assert_eq!(
        theirs[6].len() + theirs[7].len(),
        10,
        "{:?} {:?}",
        theirs[6],
        theirs[7]
    );
    assert!(theirs[5].iter().any(|l| l.starts_with("plain.metric19 ")));
    assert!(!theirs[5].iter().any(|l| l.starts_with("plain.metric20 ")));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            !b.is_empty(),
            "destination {i} got nothing from carbon-c-relay"
        );
        if a != b {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "destination {i}: {} lines from carbonwatch, {} from carbon-c-relay; first difference at line {at}: {:?} against {:?}",
                a.len(),
                b.len(),
                a.get(at),
                b.get(at)
            );
        }
    }
}
