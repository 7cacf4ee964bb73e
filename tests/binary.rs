//! The `carbonwatch` binary: `check-config`, `route`, and `run` driven by
//! real signals (SIGHUP reload, SIGTERM drain, SIGKILL with a spool).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{free_port, wait_until, Sink};
use tokio::io::AsyncWriteExt;

const BIN: &str = env!("CARGO_BIN_EXE_carbonwatch");

#[test]
fn check_config_names_file_line_and_key_for_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[cluster]]\nname = \"g\"\ntype = \"forward\"\ndestinations = [\"h:notaport\"]\n\n[[route]]\nmatch = \"{a\"\nto = [\"g\"]\n\n[[route]]\nprefix = \"x\"\nto = [\"nope\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        err.contains(&format!("{file}:4: cluster[0].destinations:")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{file}:7: route[0].match: invalid glob")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{file}:12: route[1].to: no cluster named \"nope\""
        )),
        "{err}"
    );
    let good = Command::new(BIN)
        .args(["check-config", "--config", "config/carbonwatch.toml"])
        .output()
        .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
}

#[test]
fn route_prints_destinations_like_crelay_test_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.toml");
    std::fs::write(
        &path,
        "[[cluster]]\nname = \"r\"\ntype = \"carbon_ch\"\nreplication = 2\n\
         destinations = [\"10.0.0.1:2003:a\", \"10.0.0.2:2003:b\", \"10.0.0.3:2003:c\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"r\"]\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["route", "--config"])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"foo.bar\nhosts.worker1.cpu 1 1700000000\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    // The reference's replication-2 vectors from Python carbon.
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "foo.bar 10.0.0.3:2003:c 10.0.0.2:2003:b\nhosts.worker1.cpu 10.0.0.1:2003:a 10.0.0.2:2003:b\n"
    );
}

fn write_config(path: &std::path::Path, port: u16, dests: &[String], grace: u64) {
    write_config_admin(path, port, dests, grace, "");
}

fn write_config_admin(
    path: &std::path::Path,
    port: u16,
    dests: &[String],
    grace: u64,
    admin: &str,
) {
    let list: Vec<String> = dests.iter().map(|d| format!("\"{d}\"")).collect();
    std::fs::write(
        path,
        format!(
            "[listen]\nplaintext_tcp = \"127.0.0.1:{port}\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n[admin]\nlisten = \"{admin}\"\n[alerting]\nstore = \"\"\n\
             [stats]\nenabled = false\n[relay]\nshutdown_timeout_secs = {grace}\nreconnect_min_ms = 20\nreconnect_max_ms = 50\n\
             [[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [{}]\n[[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

/// `carbonwatch run --config path`, with its log captured.
fn run(path: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

async fn connect(port: u16) -> tokio::net::TcpStream {
    for _ in 0..400 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("carbonwatch did not start listening on {port}");
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains() {
    let (a, b) = (Sink::start().await, Sink::start().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let port = free_port();
    write_config(&path, port, &[a.addr.to_string()], 5);
    let child = run(&path);
    let mut s = connect(port).await;
    s.write_all(b"one 1 1700000000\n").await.unwrap();
    a.wait_lines(1).await;
    write_config(&path, port, &[a.addr.to_string(), b.addr.to_string()], 5);
    signal(&child, "-HUP");
    // The connection survives the reload; probes flow until b sees one.
    wait_until(Duration::from_secs(30), || {
        futures_lite_send(&mut s);
        !b.lines().is_empty()
    })
    .await;
    s.shutdown().await.unwrap();
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Config reloaded."), "{log}");
    assert!(log.contains("every queued metric was delivered"), "{log}");
}

/// Writes one probe line without awaiting (the socket buffer takes it).
fn futures_lite_send(s: &mut tokio::net::TcpStream) {
    let _ = s.try_write(b"probe 1 1700000000\n");
}

#[tokio::test]
async fn sigterm_reports_exactly_what_could_not_be_delivered() {
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_port());
    write_config_admin(&path, port, &[down.to_string()], 1, &admin);
    let child = run(&path);
    let mut s = connect(port).await;
    for i in 0..250 {
        s.write_all(format!("lost.m {i} 1700000000\n").as_bytes())
            .await
            .unwrap();
    }
    s.shutdown().await.unwrap();
    drop(s);
    // Stop only once carbonwatch has counted every line.
    let admin: std::net::SocketAddr = admin.parse().unwrap();
    let mut seen = false;
    for _ in 0..400 {
        if common::http_get(admin, "/metrics")
            .await
            .is_some_and(|b| b.contains("carbonwatch_metrics_received_total 250"))
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "carbonwatch never counted the 250 lines");
    signal(&child, "-TERM");
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("250 metrics could not be delivered"), "{log}");
}

#[tokio::test]
async fn sigkill_loses_only_the_memory_queue_and_the_spool_survives() {
    let (held, dport) = common::down_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let (port, admin) = (free_port(), format!("127.0.0.1:{}", free_port()));
    std::fs::write(
        &path,
        format!(
            "[listen]\nplaintext_tcp = \"127.0.0.1:{port}\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n[admin]\nlisten = \"{admin}\"\n\
             [alerting]\nstore = \"\"\n[stats]\nenabled = false\n\
             [relay]\nqueue_max_lines = 2000\nqueue_max_bytes = 131072\nreconnect_min_ms = 20\nreconnect_max_ms = 50\n\
             spool_dir = \"{}\"\n\
             [[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"127.0.0.1:{dport}\"]\n[[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let admin: std::net::SocketAddr = admin.parse().unwrap();
    let child = run(&path);
    let mut s = connect(port).await;
    let mut buf = Vec::new();
    for i in 0..50_000 {
        buf.extend_from_slice(format!("kill.m{} {i} 1700000000\n", i % 100).as_bytes());
    }
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
    drop(s);
    let mut counted = false;
    for _ in 0..1200 {
        if common::metric(admin, "carbonwatch_metrics_received_total").await == Some(50_000.0) {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(counted, "carbonwatch never counted the 50,000 lines");
    let spooled = common::metric(admin, "carbonwatch_destination_spooled_total")
        .await
        .unwrap() as usize;
    let queued = common::metric(admin, "carbonwatch_destination_queued_lines")
        .await
        .unwrap() as usize;
    signal(&child, "-KILL");
    let _ = child.wait_with_output();

    // The backend comes up and carbonwatch restarts on the same spool.
    drop(held);
    let sink = Sink::start_at(format!("127.0.0.1:{dport}").parse().unwrap()).await;
    let child = run(&path);
    sink.wait_lines(spooled).await;
    signal(&child, "-TERM");
    let _ = child.wait_with_output();
    let lines = sink.lines();
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "no duplicates");
    let lost = 50_000 - distinct.len();
    eprintln!("SIGKILL with the backend down: {spooled} spooled lines survived, {lost} lost (the memory queue held {queued})");
    // What was spooled before the kill survives; what was lost is what
    // the memory queue held.
    assert_eq!(distinct.len(), spooled);
    assert_eq!(lost, queued);
}
