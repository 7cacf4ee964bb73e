//! The disk spool end to end (issue #5, graceful restart): what a shutdown
//! cannot deliver is spooled, and the next start delivers it, every line
//! exactly once, while new data flows beside the replay.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use carbonwatch::app::App;
use common::{config, down_port, wait_until, Sink};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn body(dest: &str, spool: &std::path::Path) -> String {
    format!(
        "[[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"{dest}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"c\"]\n\
         [relay]\nshutdown_timeout_secs = 1\nreconnect_max_ms = 200\nspool_dir = \"{}\"\nspool_segment_bytes = 65536\n",
        spool.display()
    )
}

async fn send(app: &App, from: usize, to: usize) {
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let mut buf = Vec::new();
    for i in from..to {
        buf.extend_from_slice(format!("spool.m{} {i} 1700000000\n", i % 100).as_bytes());
    }
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_graceful_restart_with_the_backend_down_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    // First run: the backend is down the whole time.
    let app = App::start(config(&body(&dest, dir.path()))).await.unwrap();
    send(&app, 0, 20_000).await;
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(20), || {
        relay.stats.received.load(Relaxed) == 20_000
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!(
        (report.undelivered, report.spooled),
        (0, 20_000),
        "all of it spooled, none lost"
    );

    // Second run: the backend is up; the spool is replayed beside new data.
    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let app = App::start(config(&body(&dest, dir.path()))).await.unwrap();
    send(&app, 20_000, 25_000).await;
    let lines = sink.wait_lines(25_000).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        *seen.entry(l.clone()).or_default() += 1;
    }
    for i in 0..25_000 {
        let l = format!("spool.m{} {i} 1700000000", i % 100);
        assert_eq!(seen.get(&l), Some(&1), "{l} exactly once");
    }
    assert_eq!(lines.len(), 25_000, "no duplicates");
    let d = &app.relay.destinations()[0];
    assert_eq!(d.stats.replayed_lines.load(Relaxed), 20_000);
    wait_until(Duration::from_secs(10), || {
        d.spool.as_ref().unwrap().lock().unwrap().is_empty()
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    assert_eq!(
        sink.lines().len(),
        25_000,
        "still no duplicates after shutdown"
    );
    // Every segment was deleted once delivered.
    let left: usize = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_backend_down_under_load_gets_everything_when_it_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    // A small memory queue, so the outage overflows it within seconds.
    let cfg = body(&dest, dir.path()) + "queue_max_lines = 2000\nqueue_max_bytes = 131072\n";
    let app = App::start(config(&cfg)).await.unwrap();
    let (a, b) = tokio::join!(send(&app, 0, 50_000), send(&app, 50_000, 100_000));
    let _ = (a, b);
    let relay = app.relay.clone();
    // The clients were never held up: the spool took what memory could not.
    wait_until(Duration::from_secs(30), || {
        relay.stats.received.load(Relaxed) == 100_000
    })
    .await;
    let d = relay.destinations()[0].clone();
    let spooled = d.stats.spooled_lines.load(Relaxed);
    assert!(spooled >= 90_000, "spooled {spooled}");
    // Memory stays at its bound (an empty queue takes one batch of any size).
    assert!(
        d.queue.bytes() <= 2 * 131_072,
        "queued {} bytes",
        d.queue.bytes()
    );

    // The backend comes back: spool and memory drain into it.
    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let lines = sink.wait_lines(100_000).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for l in &lines {
        *seen.entry(l.clone()).or_default() += 1;
    }
    for i in 0..100_000 {
        let l = format!("spool.m{} {i} 1700000000", i % 100);
        assert_eq!(seen.get(&l), Some(&1), "{l} exactly once");
    }
    wait_until(Duration::from_secs(10), || {
        d.spool.as_ref().unwrap().lock().unwrap().is_empty()
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    assert_eq!(sink.lines().len(), 100_000, "no duplicates");
    assert_eq!(d.stats.replayed_lines.load(Relaxed), spooled);
}
