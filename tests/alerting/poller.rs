//! The poller's scheduling promises against a render endpoint that is slow
//! or hung (a local HTTP server standing in for a struggling graphite-web;
//! the real graphite-web is in `graphite_poll.rs`): Seyren's request with
//! preemptive Basic auth, a check never polled twice at once, late runs
//! skipped and counted, and a hung Graphite timed out into EXCEPTION.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::wait_until;
use carbonwatch::app::App;
use carbonwatch::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Answers each render request after `delay` with one series, recording
/// request heads and the most requests in flight at once.
#[derive(Clone, Default)]
struct SlowGraphite {
    heads: Arc<Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl SlowGraphite {
    async fn start(delay: Duration) -> (SlowGraphite, String) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let g = SlowGraphite::default();
        let me = g.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        me.heads.lock().unwrap().push(head);
                        let now = me.in_flight.fetch_add(1, SeqCst) + 1;
                        me.max_in_flight.fetch_max(now, SeqCst);
                        tokio::time::sleep(delay).await;
                        me.in_flight.fetch_sub(1, SeqCst);
                        let body = r#"[{"target": "a.x", "datapoints": [[1.0, 1], [null, 2]]}]"#;
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(reply.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (g, url)
    }
}

fn config(dir: &std::path::Path, graphite: &str, extra: &str) -> Config {
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n\
         [alerting]\nstore = \"{}\"\ntick_ms = 50\n\
         [graphite]\nurl = \"{graphite}\"\nusername = \"seyren\"\npassword = \"s3cret\"\n{extra}\n\
         [[cluster]]\nname = \"none\"\ntype = \"blackhole\"\n[[route]]\nmatch = \"*\"\nto = [\"none\"]\n\
         [[check]]\nname = \"sum\"\ntarget = \"sumSeries(a.*)\"\nlive = false\ninterval = \"1s\"\nwarn = 5\nerror = 10\n",
        dir.join("cw.db").display()
    );
    Config::parse(&text, std::path::Path::new("poller.toml")).unwrap()
}

async fn metric(app: &App, name: &str) -> u64 {
    crate::common::metric(app.admin.unwrap(), name)
        .await
        .map_or(0, |v| v as u64)
}

#[tokio::test]
async fn a_slow_graphite_never_gets_the_same_check_twice_and_late_runs_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // Each answer takes 2.5 s; the check is due every second.
    let (g, url) = SlowGraphite::start(Duration::from_millis(2500)).await;
    let app = App::start(config(dir.path(), &url, "")).await.unwrap();
    let mut skipped = 0;
    for _ in 0..600 {
        skipped = metric(&app, "carbonwatch_poll_skipped_total").await;
        if skipped >= 2 && metric(&app, "carbonwatch_poll_runs_total").await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        skipped >= 2,
        "runs due during a slow one are skipped and counted"
    );
    assert_eq!(
        g.max_in_flight.load(SeqCst),
        1,
        "one check, one request at a time"
    );

    let head = g.heads.lock().unwrap()[0].clone();
    let line = head.lines().next().unwrap();
    assert!(
        line.starts_with("GET /render/?from=-11minutes&until=-1minutes&uniq="),
        "Seyren's request: {line}"
    );
    assert!(
        line.ends_with("&format=json&target=sumSeries%28a.*%29 HTTP/1.1"),
        "{line}"
    );
    // "seyren:s3cret", sent on the first request without a challenge.
    assert!(
        head.to_ascii_lowercase().contains(
            "authorization: basic c2V5cmVuOnMzY3JldA=="
                .to_ascii_lowercase()
                .as_str()
        ),
        "{head}"
    );
    // The value arrived: 1.0 is OK (the trailing null is skipped).
    let handle = app.alerts.clone().unwrap();
    let id = handle.engine.checks().await.unwrap()[0].id.clone();
    let series = handle.engine.series(&id).await.unwrap();
    assert_eq!(series[0].0, "a.x");
    assert_eq!(series[0].1.value(), Some(1.0));
    app.shutdown().await;
}

#[tokio::test]
async fn a_hung_graphite_times_out_into_exception() {
    let dir = tempfile::tempdir().unwrap();
    let (_g, url) = SlowGraphite::start(Duration::from_secs(3600)).await;
    let app = App::start(config(dir.path(), &url, "timeout_secs = 1"))
        .await
        .unwrap();
    let handle = app.alerts.clone().unwrap();
    wait_until(Duration::from_secs(30), || {
        // The file's check reaches the store in the engine's first step,
        // just after start-up returns.
        let c = handle.store.load_checks().unwrap();
        c.first()
            .is_some_and(|c| c.state.to_string() == "EXCEPTION")
    })
    .await;
    assert!(metric(&app, "carbonwatch_poll_errors_total").await >= 1);
    let (alerts, _) = handle.store.alerts(None, 0, 0).unwrap();
    assert_eq!(alerts[0].to_type.to_string(), "EXCEPTION");
    assert_eq!(
        alerts[0].target, "sumSeries(a.*)",
        "a check-level alert names the target"
    );
    app.shutdown().await;
}
