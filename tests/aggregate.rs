//! `[[aggregate]]` in a running relay: buckets that survive a reload of
//! unchanged rules, what shutdown emits and what it reports lost, and the
//! aggregators' counters. The arithmetic and c-relay's own output are
//! tested in `relay::aggregate` and `tests/crelay/aggregate.rs`.

mod common;

use std::time::Duration;

use carbonwatch::app::App;
use common::{wait_until, Sink};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn text(sink: &Sink, extra_route: &str) -> String {
    format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n\
         [[cluster]]\nname = \"out\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
         {extra_route}\
         [[aggregate]]\nregex = '^sys\\.[^.]+\\.cpu$'\nevery_secs = 60\nexpire_secs = 300\n\
         compute = [{{ function = \"sum\", write_to = \"agg.cpu.sum\" }}]\n\
         [[route]]\nprefix = \"sys.\"\nto = [\"out\"]\n\
         [[route]]\nprefix = \"agg.\"\nto = [\"out\"]\n",
        sink.addr
    )
}

async fn send(port: std::net::SocketAddr, lines: &str) {
    let mut s = TcpStream::connect(port).await.unwrap();
    s.write_all(lines.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Points sent before and after a reload that keeps the rule land in the
/// same bucket; shutdown emits the bucket that has ended and reports the
/// points of the one still open (or emits it too, if the minute turned
/// while the test ran).
#[tokio::test]
async fn buckets_survive_a_reload_and_shutdown_emits_what_has_ended() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text(&sink, "")).unwrap();
    let config = carbonwatch::config::Config::load(&path).unwrap();
    let mut app = App::start(config).await.unwrap();
    let port = app.plaintext_tcp.unwrap();
    let minute = now().div_euclid(60) * 60;
    // Two minutes back: ended, and not due (it is emitted 300 s after it
    // starts).
    let ended = minute - 120;
    send(port, &format!("sys.a.cpu 1 {ended}\nsys.b.cpu 2 {}\nsys.c.cpu 3 {}\nsys.a.cpu 10 {minute}\nsys.b.cpu 20 {}\n", ended + 1, ended + 59, minute + 1)).await;
    sink.wait_lines(5).await;

    // A reload that changes another rule keeps the aggregate's buckets.
    std::fs::write(
        &path,
        text(&sink, "[[route]]\nprefix = \"other.\"\nto = [\"out\"]\n"),
    )
    .unwrap();
    app.reload(&path).await.unwrap();
    send(
        port,
        &format!("sys.d.cpu 4 {ended}\nsys.e.cpu 5 {}\n", ended + 30),
    )
    .await;
    sink.wait_lines(7).await;

    let admin = app.admin.unwrap();
    let received = common::metric(admin, "carbonwatch_aggregator_received_total").await;
    assert_eq!(received, Some(7.0));
    let series = common::metric(admin, "carbonwatch_aggregator_series").await;
    assert_eq!(series, Some(1.0), "one output name");
    // carbon-c-relay's names for the same counts, in the self-metrics.
    let carbon = carbonwatch::relay::selfmetrics::snapshot(&app.relay, "p");
    for (name, want) in [
        ("p.aggregators.metricsReceived", 7.0),
        ("p.aggregators.metricsSent", 0.0),
        ("p.aggregators.metricsDropped", 0.0),
    ] {
        assert!(
            carbon.contains(&(name.to_string(), want)),
            "{name}: {carbon:#?}"
        );
    }

    let report = app.shutdown().await;
    let lines = sink.lines();
    assert!(
        lines.contains(&format!("agg.cpu.sum 15.000000 {}", ended + 60)),
        "the ended bucket, with the points from before and after the reload: {lines:#?}"
    );
    let open_emitted = lines.contains(&format!("agg.cpu.sum 30.000000 {}", minute + 60));
    let want_lost = if open_emitted { 0 } else { 2 };
    assert_eq!(report.aggregate_points_unemitted, want_lost, "{lines:#?}");
    assert_eq!(lines.len(), 8 + usize::from(open_emitted), "{lines:#?}");
}

/// A reload that changes the rule starts it afresh: the old buckets get
/// their last pass (what has ended is emitted) and the new rule's series
/// start empty.
#[tokio::test]
async fn a_changed_rule_emits_what_has_ended_and_starts_afresh() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, text(&sink, "")).unwrap();
    let config = carbonwatch::config::Config::load(&path).unwrap();
    let mut app = App::start(config).await.unwrap();
    let port = app.plaintext_tcp.unwrap();
    let ended = now().div_euclid(60) * 60 - 120;
    send(port, &format!("sys.a.cpu 1 {ended}\nsys.b.cpu 2 {ended}\n")).await;
    sink.wait_lines(2).await;
    std::fs::write(
        &path,
        text(&sink, "").replace("agg.cpu.sum", "agg.cpu.total"),
    )
    .unwrap();
    app.reload(&path).await.unwrap();
    wait_until(Duration::from_secs(10), || {
        sink.lines()
            .contains(&format!("agg.cpu.sum 3.000000 {}", ended + 60))
    })
    .await;
    send(port, &format!("sys.c.cpu 4 {ended}\n")).await;
    sink.wait_lines(4).await;
    app.shutdown().await;
    let lines = sink.lines();
    assert!(
        lines.contains(&format!("agg.cpu.total 4.000000 {}", ended + 60)),
        "{lines:#?}"
    );
}
