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

/// Line number `i` of every test here.
fn line(i: usize) -> String {
    format!("spool.m{} {i} 1700000000", i % 100)
}

/// Each of lines `0..n` is in `lines` exactly once.
fn each_once(lines: &[String], n: usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in lines {
        *seen.entry(l).or_default() += 1;
    }
    for i in 0..n {
        let l = line(i);
        assert_eq!(seen.get(l.as_str()), Some(&1), "{l} exactly once");
    }
}

/// Sends lines `0..n` from a task, one write per line, so that a test can
/// watch the client being held back.
fn send_line_by_line(app: &App, n: usize) -> tokio::task::JoinHandle<()> {
    let target = app.plaintext_tcp.unwrap();
    tokio::spawn(async move {
        let mut s = TcpStream::connect(target).await.unwrap();
        for i in 0..n {
            s.write_all(format!("{}\n", line(i)).as_bytes())
                .await
                .unwrap();
        }
        s.shutdown().await.unwrap();
    })
}

async fn send(app: &App, from: usize, to: usize) {
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let mut buf = Vec::new();
    for i in from..to {
        buf.extend_from_slice(format!("{}\n", line(i)).as_bytes());
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
    // A destination that is down is spooled ahead of memory, so all of
    // it is on disk before the shutdown.
    let d = relay.destinations()[0].clone();
    let report = app.shutdown().await;
    assert_eq!(
        (report.undelivered, d.stats.spooled_lines.load(Relaxed)),
        (0, 20_000),
        "all of it spooled, none lost"
    );

    // Second run: the backend is up; the spool is replayed beside new data.
    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let app = App::start(config(&body(&dest, dir.path()))).await.unwrap();
    send(&app, 20_000, 25_000).await;
    let lines = sink.wait_lines(25_000).await;
    each_once(&lines, 25_000);
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
async fn shutdown_does_not_wait_for_a_dead_backend_whose_data_is_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (_held, port) = down_port();
    // An hour of grace and ten minutes between reconnects: only a shutdown
    // that stops retrying can finish within the minute allowed below.
    let body = format!(
        "[[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"127.0.0.1:{port}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"c\"]\n\
         [relay]\nshutdown_timeout_secs = 3600\nreconnect_min_ms = 600000\nreconnect_max_ms = 600000\nspool_dir = \"{}\"\n",
        dir.path().display()
    );
    let app = App::start(config(&body)).await.unwrap();
    send(&app, 0, 1000).await;
    let d = app.relay.destinations()[0].clone();
    wait_until(Duration::from_secs(20), || {
        d.stats.spooled_lines.load(Relaxed) == 1000
    })
    .await;
    let report = tokio::time::timeout(Duration::from_secs(60), app.shutdown())
        .await
        .expect("shutdown waited for a destination with nothing to deliver");
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    assert_eq!(d.spool.as_ref().unwrap().lock().unwrap().lines(), 1000);
}

#[tokio::test]
async fn a_graceful_restart_spools_the_memory_queue_of_a_stalled_backend() {
    let dir = tempfile::tempdir().unwrap();
    // A backend that accepts and never reads: the destination stays up,
    // so its queue is in memory when the shutdown comes.
    let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = stalled.local_addr().unwrap().to_string();
    let app = App::start(config(&body(&dest, dir.path()))).await.unwrap();
    let n = 400_000;
    send(&app, 0, n).await;
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(30), || {
        relay.stats.received.load(Relaxed) == n as u64
    })
    .await;
    let d = relay.destinations()[0].clone();
    let report = app.shutdown().await;
    let sent = d.stats.sent_lines.load(Relaxed) as usize;
    assert_eq!(report.undelivered, 0);
    assert!(report.spooled > 0, "the shutdown spooled the memory queue");

    // The backend works again: what the stalled one never read is lost
    // with it (`sent`); everything else arrives once.
    drop(stalled);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let app = App::start(config(&body(&dest, dir.path()))).await.unwrap();
    let d = app.relay.destinations()[0].clone();
    wait_until(Duration::from_secs(30), || {
        d.spool.as_ref().unwrap().lock().unwrap().is_empty()
    })
    .await;
    app.shutdown().await;
    let lines = sink.wait_lines(n - sent).await;
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "no duplicates");
    assert_eq!(
        distinct.len() + sent,
        n,
        "every line not sent to the stalled backend arrived"
    );
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
    // The spool shows in /metrics and in the carbon self-metrics.
    let admin = app.admin.unwrap();
    let gauge = |name: &'static str| async move {
        common::metric(admin, name)
            .await
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert!(gauge("carbonwatch_destination_spool_bytes{").await > 0.0);
    assert!(gauge("carbonwatch_destination_spool_segments{").await >= 1.0);
    assert!(gauge("carbonwatch_destination_spool_oldest_age_seconds{").await >= 0.0);
    assert_eq!(
        gauge("carbonwatch_destination_spooled_total{").await,
        spooled as f64
    );
    let snap = carbonwatch::relay::selfmetrics::snapshot(&relay, "cw");
    let bytes = snap
        .iter()
        .find(|(k, _)| k.ends_with(".spool.bytes"))
        .map(|(_, v)| *v);
    assert!(bytes.is_some_and(|b| b > 0.0), "{snap:?}");
    // The backend comes back: spool and memory drain into it.
    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let lines = sink.wait_lines(100_000).await;
    each_once(&lines, 100_000);
    wait_until(Duration::from_secs(10), || {
        d.spool.as_ref().unwrap().lock().unwrap().is_empty()
    })
    .await;
    // The replay rate, measured over the spool syncer's interval.
    wait_until(Duration::from_secs(10), || d.stats.replay_rate() > 0.0).await;
    assert!(gauge("carbonwatch_destination_spool_replay_lines_per_second{").await >= 0.0);
    let snap = carbonwatch::relay::selfmetrics::snapshot(&relay, "cw");
    assert!(
        snap.iter().any(|(k, _)| k.ends_with(".spool.replayRate")),
        "{snap:?}"
    );
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    assert_eq!(sink.lines().len(), 100_000, "no duplicates");
    assert_eq!(d.stats.replayed_lines.load(Relaxed), spooled);
}

/// A backend that reads slowly: 16 KiB, then a 20 ms pause.
async fn slow_sink(listener: tokio::net::TcpListener) -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    let data = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let d = data.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let d = d.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 << 10];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    d.lock().unwrap().extend_from_slice(&buf[..n]);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
    });
    data
}

fn exactly_once(data: &[u8], n: usize) {
    let text = String::from_utf8_lossy(data);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    each_once(&lines, n);
    assert_eq!(lines.len(), n, "nothing else, no duplicates");
}

#[tokio::test]
async fn a_slow_backend_gets_everything_and_the_clients_are_not_held_up() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dest = listener.local_addr().unwrap().to_string();
    let data = slow_sink(listener).await;
    let cfg = body(&dest, dir.path()) + "queue_max_lines = 2000\nqueue_max_bytes = 131072\n";
    let app = App::start(config(&cfg)).await.unwrap();
    send(&app, 0, 100_000).await;
    let relay = app.relay.clone();
    // All of it was taken from the client while the backend lagged behind.
    wait_until(Duration::from_secs(30), || {
        relay.stats.received.load(Relaxed) == 100_000
    })
    .await;
    let d = relay.destinations()[0].clone();
    assert!(
        d.stats.spooled_lines.load(Relaxed) > 0,
        "the slow backend made the queue spill"
    );
    wait_until(Duration::from_secs(60), || {
        String::from_utf8_lossy(&data.lock().unwrap())
            .lines()
            .count()
            >= 100_000
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    exactly_once(&data.lock().unwrap(), 100_000);
}

#[tokio::test]
async fn a_full_spool_holds_the_clients_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    // Room for about 2,000 lines in memory and 256 KiB on disk.
    let cfg = body(&dest, dir.path())
        + "queue_max_lines = 2000\nqueue_max_bytes = 131072\nspool_max_bytes_per_destination = 262144\n";
    let app = App::start(config(&cfg)).await.unwrap();
    let sender = send_line_by_line(&app, 60_000);
    let relay = app.relay.clone();
    let d = relay.destinations()[0].clone();
    // The spool fills to its cap...
    wait_until(Duration::from_secs(30), || {
        d.spool.as_ref().unwrap().lock().unwrap().bytes() > 262_144 - 70_000
    })
    .await;
    // ...and then the client is held back instead of anything being dropped:
    // 60,000 lines cannot fit anywhere while the backend is down.
    assert!(relay.stats.received.load(Relaxed) < 60_000);
    assert_eq!(d.stats.dropped_lines.load(Relaxed), 0);

    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    sender.await.unwrap();
    sink.wait_lines(60_000).await;
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    exactly_once(&sink.bytes(), 60_000);
}

#[tokio::test]
async fn a_full_drop_oldest_spool_keeps_the_newest_data_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    let cfg = body(&dest, dir.path())
        + "queue_max_lines = 2000\nqueue_max_bytes = 131072\nspool_max_bytes_per_destination = 262144\nspool_when_full = \"drop_oldest\"\n";
    let app = App::start(config(&cfg)).await.unwrap();
    send(&app, 0, 60_000).await;
    let relay = app.relay.clone();
    // The client is never held back: the oldest spooled data makes room.
    wait_until(Duration::from_secs(30), || {
        relay.stats.received.load(Relaxed) == 60_000
    })
    .await;
    let dropped = relay
        .stats
        .dropped(carbonwatch::stats::DropReason::DropOldest);
    assert!(dropped > 0);

    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    let d = relay.destinations()[0].clone();
    wait_until(Duration::from_secs(30), || {
        d.queue.is_empty() && d.spool.as_ref().unwrap().lock().unwrap().is_empty()
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!((report.undelivered, report.spooled), (0, 0));
    let lines = sink.lines();
    let distinct: std::collections::HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "no duplicates");
    // Every line is either delivered or counted as dropped, and the newest
    // survived.
    assert_eq!(lines.len() as u64 + dropped, 60_000);
    assert!(distinct.contains(&"spool.m99 59999 1700000000".to_string()));
    // What went is one run of the oldest spooled lines (the very first
    // ones sat in the memory queue, which this policy does not touch).
    let missing: Vec<usize> = (0..60_000)
        .filter(|&i| !distinct.contains(&line(i)))
        .collect();
    assert_eq!(missing.len() as u64, dropped);
    assert_eq!(
        missing[missing.len() - 1] - missing[0] + 1,
        missing.len(),
        "one contiguous run"
    );
    // A 256 KiB spool holds about 8,000 of these lines: the newest 5,000
    // at least are all there.
    assert!(
        missing[missing.len() - 1] < 55_000,
        "old data went, not new: {:?}",
        (missing[0], missing[missing.len() - 1])
    );
}

#[tokio::test]
async fn a_failing_spool_disk_falls_back_to_backpressure_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    let cfg = body(&dest, dir.path()) + "queue_max_lines = 2000\nqueue_max_bytes = 131072\n";
    let app = App::start(config(&cfg)).await.unwrap();
    // The spool's directory disappears: every spool write now fails.
    std::fs::remove_dir_all(dir.path()).unwrap();
    let sender = send_line_by_line(&app, 30_000);
    let relay = app.relay.clone();
    let d = relay.destinations()[0].clone();
    wait_until(Duration::from_secs(30), || {
        d.stats.spool_errors.load(Relaxed) > 0
    })
    .await;
    // The failure is counted, nothing is dropped, and the reader waits.
    assert_eq!(d.stats.dropped_lines.load(Relaxed), 0);
    assert!(relay.stats.received.load(Relaxed) < 30_000);

    drop(held);
    let sink = Sink::start_at(dest.parse().unwrap()).await;
    sender.await.unwrap();
    sink.wait_lines(30_000).await;
    let report = app.shutdown().await;
    assert_eq!(report.undelivered, 0);
    exactly_once(&sink.bytes(), 30_000);
}

/// Counts lines `big.<n> <i> 1700000000` by `i`, and duplicates.
struct CountingSink {
    seen: std::sync::Arc<std::sync::Mutex<(Vec<u64>, u64, u64)>>,
}

impl CountingSink {
    async fn start(listener: tokio::net::TcpListener, n: usize) -> CountingSink {
        use tokio::io::AsyncReadExt;
        let seen = std::sync::Arc::new(std::sync::Mutex::new((
            vec![0u64; n.div_ceil(64)],
            0u64,
            0u64,
        )));
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 20];
                    let mut rest: Vec<u8> = Vec::new();
                    while let Ok(k) = c.read(&mut buf).await {
                        if k == 0 {
                            break;
                        }
                        rest.extend_from_slice(&buf[..k]);
                        let end = rest.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                        let mut g = s.lock().unwrap();
                        for line in rest[..end].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                            let i: usize =
                                std::str::from_utf8(line.split(|&b| b == b' ').nth(1).unwrap())
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                            let (w, bit) = (i / 64, 1u64 << (i % 64));
                            if g.0[w] & bit != 0 {
                                g.2 += 1;
                            }
                            g.0[w] |= bit;
                            g.1 += 1;
                        }
                        drop(g);
                        rest.drain(..end);
                    }
                });
            }
        });
        CountingSink { seen }
    }

    /// (lines received, duplicates)
    fn counts(&self) -> (u64, u64) {
        let g = self.seen.lock().unwrap();
        (g.1, g.2)
    }
}

/// Sends lines `big.m* i ts` for every `i` in `range` from a task, in
/// 1 MiB writes; the task returns when it finished.
fn send_big(
    app: &App,
    range: std::ops::Range<usize>,
) -> tokio::task::JoinHandle<std::time::Instant> {
    let target = app.plaintext_tcp.unwrap();
    tokio::spawn(async move {
        let mut s = TcpStream::connect(target).await.unwrap();
        let mut buf = Vec::with_capacity(1 << 20);
        for i in range {
            use std::io::Write;
            writeln!(buf, "big.m{} {i} 1700000000", i % 1000).unwrap();
            if buf.len() >= 1 << 20 {
                s.write_all(&buf).await.unwrap();
                buf.clear();
            }
        }
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
        std::time::Instant::now()
    })
}

#[tokio::test]
async fn a_one_gib_spool_is_replayed_after_a_restart() {
    const LINES: usize = 38_000_000; // just over 1 GiB of spool records
    let dir = tempfile::tempdir().unwrap();
    let (held, port) = down_port();
    let dest = format!("127.0.0.1:{port}");
    let cfg = body(&dest, dir.path())
        + "queue_max_lines = 2000\nqueue_max_bytes = 131072\nspool_max_bytes_per_destination = 2147483648\n";
    let app = App::start(config(&cfg)).await.unwrap();
    let started = std::time::Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|part| send_big(&app, (part * LINES / 2)..((part + 1) * LINES / 2)))
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(120), || {
        relay.stats.received.load(Relaxed) == LINES as u64
    })
    .await;
    let spooled_in = started.elapsed();
    let report = app.shutdown().await;
    assert_eq!(report.undelivered, 0);
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(bytes >= 1 << 30, "spooled {bytes} bytes");

    // Restart with the backend up, and new data arriving during the
    // replay: all of it, exactly once.
    const NEW: usize = 4_000_000;
    drop(held);
    let listener = tokio::net::TcpListener::bind(&dest).await.unwrap();
    let sink = CountingSink::start(listener, LINES + NEW).await;
    let started = std::time::Instant::now();
    let app = App::start(config(&cfg)).await.unwrap();
    let new_data = send_big(&app, LINES..LINES + NEW);
    wait_until(Duration::from_secs(300), || {
        sink.counts().0 >= (LINES + NEW) as u64
    })
    .await;
    let replayed_in = started.elapsed();
    let new_taken_in = new_data.await.unwrap() - started;
    app.shutdown().await;
    let (got, dups) = sink.counts();
    assert_eq!((got, dups), ((LINES + NEW) as u64, 0));
    let all = sink
        .seen
        .lock()
        .unwrap()
        .0
        .iter()
        .map(|w| w.count_ones() as u64)
        .sum::<u64>();
    assert_eq!(all, (LINES + NEW) as u64, "every line, by number");
    eprintln!(
        "1 GiB spool: {LINES} lines ({bytes} bytes) taken and spooled in {:.1} s; after the restart, \
         the replay and {NEW} new lines delivered in {:.1} s ({:.1} M lines/s), the new lines taken in {:.1} s ({:.1} M lines/s)",
        spooled_in.as_secs_f64(),
        replayed_in.as_secs_f64(),
        (LINES + NEW) as f64 / replayed_in.as_secs_f64() / 1e6,
        new_taken_in.as_secs_f64(),
        NEW as f64 / new_taken_in.as_secs_f64() / 1e6
    );
}
