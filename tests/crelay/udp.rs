//! UDP destinations against carbon-c-relay, both ways: carbonwatch's
//! `proto udp` cluster feeding c-relay's UDP listener, and c-relay's
//! feeding carbonwatch's. One datagram a line, as c-relay sends them.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::common::signal;
use super::live::{free_port, start, Sink};

const LINES: usize = 300;
const BURST: usize = 50;

fn lines() -> Vec<String> {
    (0..LINES)
        .map(|i| format!("udp.hop.m{} {i} {}", i % 17, 1_700_000_000 + i))
        .collect()
}

/// `first` takes the lines over TCP and sends them over UDP to `second`,
/// which sends them over TCP to a sink; the sink gets every line in order.
fn chain(first: &str, second: &str) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (entry, hop) = (free_port(), free_port());
    let second_conf = dir.path().join(format!("second-{second}.conf"));
    std::fs::write(
        &second_conf,
        format!(
            "listen type linemode 127.0.0.1:{hop} proto tcp 127.0.0.1:{hop} proto udp;\n\
             cluster out forward 127.0.0.1:{};\nmatch * send to out;\n",
            sink.port
        ),
    )
    .unwrap();
    let first_conf = dir.path().join(format!("first-{first}.conf"));
    std::fs::write(
        &first_conf,
        format!(
            "listen type linemode 127.0.0.1:{entry} proto tcp;\n\
             cluster hop forward 127.0.0.1:{hop} proto udp;\nmatch * send to hop;\n"
        ),
    )
    .unwrap();
    let b = start(second, &second_conf, hop);
    let a = start(first, &first_conf, entry);
    let mut c = TcpStream::connect(("127.0.0.1", entry)).unwrap();
    let want = lines();
    // In bursts a receive buffer holds: UDP has no backpressure, and a
    // default socket buffer holds about 256 small datagrams.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, burst) in want.chunks(BURST).enumerate() {
        c.write_all(format!("{}\n", burst.join("\n")).as_bytes())
            .unwrap();
        let sent = (i * BURST + burst.len()).min(LINES);
        while sink.count() < sent && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    drop(c);
    for child in [a, b] {
        signal(&child, "-TERM");
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let got = sink.lines();
    assert_eq!(got.len(), LINES, "{first} -> udp -> {second}: {got:?}");
    assert_eq!(got, want, "{first} -> udp -> {second}");
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn carbonwatch_sends_udp_to_carbon_c_relay() {
    chain("carbonwatch", "carbon-c-relay");
}

#[test]
#[ignore = "needs Debian carbon-c-relay"]
fn carbon_c_relay_sends_udp_to_carbonwatch() {
    chain("carbon-c-relay", "carbonwatch");
}

#[test]
fn carbonwatch_sends_udp_to_carbonwatch() {
    chain("carbonwatch", "carbonwatch");
}
