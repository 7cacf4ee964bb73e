//! The relay end to end over real sockets: listeners, parsing, routing,
//! queues, destinations, backpressure, reload and shutdown.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use carbonwatch::app::App;
use carbonwatch::codec::Reject;
use carbonwatch::stats::DropReason;
use common::{config, wait_until, Sink};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// A config file's sections besides the cluster, for tests that reload.
const FILE_HEAD: &str = "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n[admin]\nlisten = \"\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n";

fn cluster(kind: &str, dests: &[String], extra: &str) -> String {
    let list: Vec<String> = dests.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "[[cluster]]\nname = \"c\"\ntype = \"{kind}\"\n{extra}\ndestinations = [{}]\n[[route]]\nmatch = \"*\"\nto = [\"c\"]\nstop = true\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn plaintext_lines_reach_the_hashed_destination_and_bad_lines_are_counted() {
    let (a, b) = (Sink::start().await, Sink::start().await);
    let dests = vec![format!("{}:a", a.addr), format!("{}:b", b.addr)];
    let cfg = config(&cluster("carbon_ch", &dests, ""));
    let router = cfg.router.clone();
    let app = App::start(cfg).await.unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let mut input: Vec<u8> = Vec::new();
    let mut good = Vec::new();
    for i in 0..2000 {
        let line = format!("app.server{}.requests {} 1700000000", i % 37, i);
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
        good.push(line);
        if i % 500 == 0 {
            // Bad lines in the same read must not disturb their neighbours.
            input.extend_from_slice(
                b"only.two 1\nbad.value abc 1700000000\nnan.value nan 1700000000\n\xff 1 1\n",
            );
        }
    }
    s.write_all(&input).await.unwrap();
    s.write_all(b"partial.line 1 1").await.unwrap();
    s.shutdown().await.unwrap();
    wait_until(Duration::from_secs(30), || {
        a.lines().len() + b.lines().len() >= good.len()
    })
    .await;
    let (la, lb) = (a.lines(), b.lines());
    assert_eq!(la.len() + lb.len(), good.len());
    for line in &good {
        let name = line.split(' ').next().unwrap();
        let want = router.explain(name, "");
        let on_a = la.contains(line);
        assert!(on_a ^ lb.contains(line), "{line} must land exactly once");
        assert_eq!(want.ends_with(":a"), on_a, "{line}: router says {want}");
    }
    let stats = &app.relay.stats;
    wait_until(Duration::from_secs(10), || {
        stats.rejected(Reject::Unterminated) == 1
    })
    .await;
    assert_eq!(stats.received.load(Relaxed), 2000);
    assert_eq!(stats.rejected(Reject::FieldCount), 4);
    assert_eq!(stats.rejected(Reject::BadValue), 4);
    assert_eq!(stats.rejected(Reject::NanValue), 4);
    assert_eq!(stats.rejected(Reject::NotUtf8), 4);
    let report = app.shutdown().await;
    assert_eq!(report.undelivered, 0);
}

#[tokio::test]
async fn udp_and_pickle_inputs_are_forwarded() {
    let sink = Sink::start().await;
    let app = App::start(config(&cluster("forward", &[sink.addr.to_string()], "")))
        .await
        .unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // The last line of a datagram needs no newline, as in carbon.
    udp.send_to(
        b"udp.a 1 1700000000\nudp.b 2 1700000000",
        app.plaintext_udp.unwrap(),
    )
    .await
    .unwrap();
    // pickle.dumps([('pk.a', (1700000000, 1.5)), ('pk.b', (1700000001, 2))], protocol=2)
    let frame: &[u8] = b"\x80\x02]q\x00(X\x04\x00\x00\x00pk.aq\x01J\x00\xf1SeG?\xf8\x00\x00\x00\x00\x00\x00\x86q\x02\x86q\x03X\x04\x00\x00\x00pk.bq\x04J\x01\xf1SeK\x02\x86q\x05\x86q\x06e.";
    let mut p = TcpStream::connect(app.pickle_tcp.unwrap()).await.unwrap();
    // An oversized frame is skipped, and the stream stays in sync.
    let junk = vec![b'x'; 2 << 20];
    p.write_all(&(junk.len() as u32).to_be_bytes())
        .await
        .unwrap();
    p.write_all(&junk).await.unwrap();
    p.write_all(&(frame.len() as u32).to_be_bytes())
        .await
        .unwrap();
    p.write_all(frame).await.unwrap();
    p.shutdown().await.unwrap();
    let mut lines = sink.wait_lines(4).await;
    lines.sort();
    assert_eq!(
        lines,
        [
            "pk.a 1.5 1700000000",
            "pk.b 2 1700000001",
            "udp.a 1 1700000000",
            "udp.b 2 1700000000"
        ]
    );
    assert_eq!(app.relay.stats.rejected(Reject::BadPickle), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn pickle_destinations_receive_frames_carbon_can_read() {
    let sink = Sink::start().await;
    let app = App::start(config(&cluster(
        "forward",
        &[sink.addr.to_string()],
        "protocol = \"pickle\"",
    )))
    .await
    .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"a.b 1.25 1700000000\nc;t=v -3 1700000001\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    wait_until(Duration::from_secs(10), || sink.bytes().len() > 4).await;
    let bytes = sink.bytes();
    let n = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    wait_until(Duration::from_secs(10), || sink.bytes().len() >= 4 + n).await;
    let items = carbonwatch::codec::pickle::decode(&sink.bytes()[4..4 + n], |_| panic!("bad item"))
        .unwrap();
    let got: Vec<_> = items
        .iter()
        .map(|i| (i.name.as_str(), i.timestamp, i.value))
        .collect();
    assert_eq!(
        got,
        [("a.b", 1700000000.0, 1.25), ("c;t=v", 1700000001.0, -3.0)]
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_down_destination_applies_backpressure_and_loses_nothing() {
    // Reserve a port, then free it: the destination is down at first.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = "";
    let body = cluster("forward", &[addr.to_string()], extra)
        + "[relay]\nqueue_max_lines = 1000\nreconnect_min_ms = 10\nreconnect_max_ms = 50\n";
    let app = App::start(config(&body)).await.unwrap();
    let target = app.plaintext_tcp.unwrap();
    // Far more than socket buffers hold, so only backpressure can stop it.
    let total = 400_000usize;
    let writer = tokio::spawn(async move {
        let mut s = TcpStream::connect(target).await.unwrap();
        let mut chunk = String::new();
        for i in 0..total {
            chunk.push_str(&format!("bp.m{} {} 1700000000\n", i % 100, i));
            if chunk.len() > 60_000 {
                s.write_all(chunk.as_bytes()).await.unwrap();
                chunk.clear();
            }
        }
        s.write_all(chunk.as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
    });
    let relay = app.relay.clone();
    let dest = relay.destinations()[0].clone();
    wait_until(Duration::from_secs(30), || dest.queue.lines() >= 500).await;
    // While the destination is down, the relay reads at most the queue
    // bound plus one read buffer's worth of lines, however long we watch.
    let bound = 1000 + 256 * 1024 / 20;
    for _ in 0..20 {
        assert!(relay.stats.received.load(Relaxed) <= bound as u64);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!writer.is_finished(), "the client must be held back");
    // The wait is counted as carbon-c-relay counts stalls.
    assert!(dest.stats.stalls.load(Relaxed) >= 1);
    let sink = Sink::start_at(addr).await;
    writer.await.unwrap();
    let lines = sink.wait_lines(total).await;
    assert_eq!(lines.len(), total);
    assert_eq!(relay.stats.dropped_total(), 0);
    assert_eq!(app.shutdown().await.undelivered, 0);
}

#[tokio::test]
async fn drop_oldest_counts_every_evicted_line() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = cluster("forward", &[addr.to_string()], "")
        + "[relay]\nqueue_max_lines = 100\nwhen_full = \"drop_oldest\"\nshutdown_timeout_secs = 0\n";
    let app = App::start(config(&body)).await.unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    for i in 0..5000 {
        s.write_all(format!("d.m {i} 1700000000\n").as_bytes())
            .await
            .unwrap();
    }
    s.shutdown().await.unwrap();
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(30), || {
        relay.stats.received.load(Relaxed) == 5000
    })
    .await;
    let queued = relay.destinations()[0].queue.lines() as u64;
    let evicted = relay.stats.dropped(DropReason::DropOldest);
    assert!(evicted > 0);
    let undelivered = app.shutdown().await.undelivered;
    // Nothing was delivered, so every line is either evicted or undelivered.
    assert_eq!(undelivered, queued);
    assert_eq!(evicted + undelivered, 5000);
}

#[tokio::test]
async fn shutdown_drains_reachable_destinations_and_counts_the_rest() {
    let up = Sink::start().await;
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = format!(
        "[[cluster]]\nname = \"up\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n\
         [[cluster]]\nname = \"down\"\ntype = \"forward\"\ndestinations = [\"{down}\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"up\", \"down\"]\n[relay]\nshutdown_timeout_secs = 1\n",
        up.addr
    );
    let app = App::start(config(&body)).await.unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    for i in 0..1000 {
        s.write_all(format!("s.m {i} 1700000000\n").as_bytes())
            .await
            .unwrap();
    }
    s.shutdown().await.unwrap();
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(10), || {
        relay.stats.received.load(Relaxed) == 1000
    })
    .await;
    let report = app.shutdown().await;
    assert_eq!(up.lines().len(), 1000);
    assert_eq!(
        report.undelivered, 1000,
        "everything meant for the down destination is reported"
    );
    assert_eq!(relay.stats.dropped(DropReason::ShutdownUndelivered), 1000);
}

#[tokio::test]
async fn reload_keeps_queued_data_of_unchanged_destinations() {
    let kept = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let new_sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("{FILE_HEAD}{}", cluster("forward", &[kept.to_string()], "")),
    )
    .unwrap();
    let mut app = App::start(carbonwatch::config::Config::load(&path).unwrap())
        .await
        .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"r.before 1 1700000000\n").await.unwrap();
    let relay = app.relay.clone();
    wait_until(Duration::from_secs(10), || {
        relay.destinations()[0].queue.lines() == 1
    })
    .await;
    let both = vec![kept.to_string(), new_sink.addr.to_string()];
    std::fs::write(
        &path,
        format!("{FILE_HEAD}{}", cluster("forward", &both, "")),
    )
    .unwrap();
    app.reload(&path).await.unwrap();
    // The same connection keeps flowing, now to both destinations.
    s.write_all(b"r.after 2 1700000000\n").await.unwrap();
    assert_eq!(new_sink.wait_lines(1).await, ["r.after 2 1700000000"]);
    let kept_sink = Sink::start_at(kept).await;
    assert_eq!(
        kept_sink.wait_lines(2).await,
        ["r.before 1 1700000000", "r.after 2 1700000000"]
    );
    // A broken config is refused and the running one stays.
    std::fs::write(&path, "[[route]]\nmatch = \"*\"\nto = [\"nope\"]\n").unwrap();
    assert!(app.reload(&path).await.is_err());
    s.shutdown().await.unwrap();
    app.shutdown().await;
}

#[tokio::test]
async fn metrics_endpoint_reports_counters() {
    let sink = Sink::start().await;
    let app = App::start(config(&cluster("forward", &[sink.addr.to_string()], "")))
        .await
        .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"m.x 1 1700000000\nbroken\n").await.unwrap();
    s.shutdown().await.unwrap();
    sink.wait_lines(1).await;
    let admin = app.admin.unwrap();
    let body = common::http_get(admin, "/metrics").await.unwrap();
    assert!(
        body.contains("carbonwatch_metrics_received_total 1"),
        "{body}"
    );
    assert!(
        body.contains("carbonwatch_rejected_total{reason=\"field_count\"} 1"),
        "{body}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_destination_that_closed_while_idle_loses_nothing() {
    // A sink we can close: accept one connection, read one line, hang up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body = cluster("forward", &[addr.to_string()], "")
        + "[relay]\nreconnect_min_ms = 10\nreconnect_max_ms = 20\n";
    let app = App::start(config(&body)).await.unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    drop(listener);
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"first 1 1700000000\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut conn, &mut buf)
        .await
        .unwrap();
    assert_eq!(&buf[..n], b"first 1 1700000000\n");
    drop(conn);
    // The writer notices the close while idle, before it writes again.
    let dest = app.relay.destinations()[0].clone();
    wait_until(Duration::from_secs(10), || !dest.is_healthy()).await;
    s.write_all(b"second 2 1700000000\n").await.unwrap();
    let sink = Sink::start_at(addr).await;
    assert_eq!(sink.wait_lines(1).await, ["second 2 1700000000"]);
    s.shutdown().await.unwrap();
    assert_eq!(app.shutdown().await.undelivered, 0);
}

#[tokio::test]
async fn self_metrics_flow_through_the_router() {
    let sink = Sink::start().await;
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\n[admin]\nlisten = \"\"\n[alerting]\nstore = \"\"\n\
         [stats]\ninterval_secs = 1\nprefix = \"carbon.relays.test_{{host}}\"\n{}",
        cluster("forward", &[sink.addr.to_string()], "")
    );
    let app = App::start(
        carbonwatch::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"user.metric 1 1700000000\nnot a valid line\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    let host = gethostname_for_test();
    let received = format!("carbon.relays.test_{host}.metricsReceived 1 ");
    let discarded = format!("carbon.relays.test_{host}.rejected.field_count 1 ");
    wait_until(Duration::from_secs(30), || {
        let lines = sink.lines();
        lines.iter().any(|l| l.starts_with(&received))
            && lines.iter().any(|l| l.starts_with(&discarded))
    })
    .await;
    // A later report still counts only the client's metric.
    let later = sink
        .lines()
        .iter()
        .filter(|l| l.starts_with(&received))
        .count();
    wait_until(Duration::from_secs(30), || {
        sink.lines()
            .iter()
            .filter(|l| l.starts_with(&received))
            .count()
            > later
    })
    .await;
    let lines = sink.lines();
    let dest = format!(
        "carbon.relays.test_{host}.destinations.{}.sent ",
        sink.addr.to_string().replace(['.', ':'], "_")
    );
    assert!(lines.iter().any(|l| l.starts_with(&dest)), "{lines:?}");
    for zero in ["metricsBlackholed", "metricStalls"] {
        let line = format!("carbon.relays.test_{host}.{zero} 0 ");
        assert!(
            lines.iter().any(|l| l.starts_with(&line)),
            "{zero}: {lines:?}"
        );
    }
    app.shutdown().await;
}

/// carbon-c-relay's `statistics send to ... reset counters after
/// interval`, from a c-relay file: the self-metrics go only to their own
/// cluster, skipping every rule, and each counter reports its increase.
#[tokio::test]
async fn statistics_go_to_their_cluster_and_reset_each_interval() {
    let (main, stats) = (Sink::start().await, Sink::start().await);
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.conf");
    std::fs::write(
        &path,
        format!(
            "listen type linemode 127.0.0.1:{port} proto tcp;\n\
             cluster main forward {};\ncluster stats forward {};\n\
             statistics submit every 1 seconds reset counters after interval\n\
             \x20   prefix with test_relay.\\.1 send to stats;\n\
             match * send to main stop;\n",
            main.addr, stats.addr
        ),
    )
    .unwrap();
    let app = App::start(
        carbonwatch::config::Config::load_as(
            &path,
            carbonwatch::config::ConfigFormat::CarbonCRelay,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    s.write_all(b"user.metric 1 1700000000\n").await.unwrap();
    s.shutdown().await.unwrap();
    let host = gethostname_for_test();
    let received = |n: u32| format!("test_relay.{host}.metricsReceived {n} ");
    // The interval with the client's metric reports 1, a later one 0.
    wait_until(Duration::from_secs(30), || {
        let lines = stats.lines();
        let one = lines.iter().position(|l| l.starts_with(&received(1)));
        one.is_some_and(|i| lines[i..].iter().any(|l| l.starts_with(&received(0))))
    })
    .await;
    assert!(
        !stats.lines().iter().any(|l| l.starts_with("user.")),
        "only self-metrics reach the stats cluster"
    );
    let lines = main.lines();
    assert_eq!(
        lines,
        ["user.metric 1 1700000000"],
        "no self-metric reaches the rules"
    );
    app.shutdown().await;
}

/// `[listen] plaintext_unix`: lines over a unix socket are relayed; a
/// stale socket file is replaced, and the file goes at shutdown.
#[tokio::test]
async fn a_unix_socket_listener_relays_and_cleans_up() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("carbon.sock");
    // What a killed process leaves: a socket file nobody listens on.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let text = format!(
        "[listen]\nplaintext_tcp = \"\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\nplaintext_unix = {:?}\n\
         [admin]\nlisten = \"\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n{}",
        path.display().to_string(),
        cluster("forward", &[sink.addr.to_string()], "")
    );
    let app = App::start(
        carbonwatch::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap(),
    )
    .await
    .unwrap();
    // A second listener on the same live socket is refused.
    let again = App::start(
        carbonwatch::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap(),
    )
    .await;
    assert!(again.unwrap_err().to_string().contains("plaintext_unix"));
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"unix.a 1 1700000000\nunix.b 2 1700000000\n")
        .await
        .unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(
        sink.wait_lines(2).await,
        ["unix.a 1 1700000000", "unix.b 2 1700000000"]
    );
    app.shutdown().await;
    assert!(!path.exists(), "the socket file is removed at shutdown");
}

fn gethostname_for_test() -> String {
    let out = std::process::Command::new("hostname").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .replace('.', "_")
}

#[tokio::test]
async fn listener_limits_refuse_extra_connections_and_close_idle_ones() {
    let sink = Sink::start().await;
    let body = cluster("forward", &[sink.addr.to_string()], "");
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"\"\nmax_connections = 1\nidle_timeout_secs = 1\n\
         [admin]\nlisten = \"\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n{body}"
    );
    let app = App::start(
        carbonwatch::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap(),
    )
    .await
    .unwrap();
    let addr = app.plaintext_tcp.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(b"a 1 1700000000\n").await.unwrap();
    sink.wait_lines(1).await;
    // A second connection is refused (closed at once) and counted.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 8];
    let n = tokio::io::AsyncReadExt::read(&mut second, &mut buf)
        .await
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert_eq!(app.relay.stats.connections_refused.load(Relaxed), 1);
    // The first, now silent, is closed after idle_timeout_secs.
    let n = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read(&mut first, &mut buf),
    )
    .await
    .unwrap()
    .unwrap_or(0);
    assert_eq!(n, 0);
    // Its permit came back: a new connection is served.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"b 2 1700000000\n").await.unwrap();
    sink.wait_lines(2).await;
    app.shutdown().await;
}

#[tokio::test]
async fn several_connections_per_destination_share_one_queue() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let body =
        cluster("forward", &[addr.to_string()], "") + "[relay]\nconnections_per_destination = 3\n";
    let app = App::start(config(&body)).await.unwrap();
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(listener.accept().await.unwrap().0);
    }
    let dest = app.relay.destinations()[0].clone();
    wait_until(Duration::from_secs(10), || {
        dest.stats.connects.load(Relaxed) == 3
    })
    .await;
    app.shutdown().await;
}

#[tokio::test]
async fn udp_datagrams_that_find_a_full_queue_are_counted() {
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let body = cluster("forward", &[down.to_string()], "")
        + "[relay]\nqueue_max_lines = 10\nshutdown_timeout_secs = 0\n";
    let app = App::start(config(&body)).await.unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = app.relay.clone();
    for i in 0..20 {
        udp.send_to(
            format!("u.m {i} 1700000000\nu.n {i} 1700000000\n").as_bytes(),
            app.plaintext_udp.unwrap(),
        )
        .await
        .unwrap();
        // One datagram at a time, so the kernel never drops any.
        wait_until(Duration::from_secs(10), || {
            relay.stats.received.load(Relaxed) == 2 * (i + 1)
        })
        .await;
    }
    let queued = relay.destinations()[0].queue.lines() as u64;
    assert_eq!(queued, 10);
    assert_eq!(relay.stats.dropped(DropReason::QueueFullUdp), 30);
    assert_eq!(app.shutdown().await.undelivered, 10);
}

/// Parsing ahead for alerting must not change what is counted,
/// forwarded or offered, nor their order, around rejects, an over-long
/// line and the flush requests of a large buffer.
#[tokio::test]
async fn parsing_ahead_keeps_every_line_and_its_order() {
    use carbonwatch::listen::plaintext::PlaintextDecoder;
    use carbonwatch::listen::tcp::Decoder;
    use std::sync::Arc;

    let config = carbonwatch::config::Config::parse(
        "[[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"127.0.0.1:9\"]\n\
         [[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let tap = Arc::new(carbonwatch::relay::tap::AlertTap::new(
        tx,
        1000,
        std::time::Duration::from_millis(4),
    ));
    tap.publish(Arc::new(
        carbonwatch::route::index::PatternIndex::build([(0, "a.*")], 1).0,
    ));
    let relay = carbonwatch::relay::Relay::start(
        &config.router,
        &config.relay,
        Arc::new(carbonwatch::stats::Stats::default()),
        Some(tap),
    );
    let mut out = relay.dispatcher();
    out.on_idle(); // picks up the index
    assert!(out.alerting_live());
    assert!(out.lookahead() > 1, "new names are not predictable");

    let mut input = Vec::new();
    let mut want = Vec::new();
    for i in 0..20_000 {
        match i % 500 {
            7 => input.extend_from_slice(b"not a metric\n"),
            13 => input.extend_from_slice(&[b'x'; 100][..]),
            14 => input.extend_from_slice(b" 1 1\n"), // ends the long line
            _ => {
                let name = if i % 3 == 0 { "a" } else { "b" };
                input.extend_from_slice(format!("{name}.{i} {i} 1700000000\n").as_bytes());
                if name == "a" {
                    want.push((format!("a.{i}"), i as f64));
                }
            }
        }
    }
    let mut decoder = PlaintextDecoder::new(&carbonwatch::listen::ListenConfig {
        max_line_bytes: 64,
        ..Default::default()
    });
    let sampler = carbonwatch::listen::RejectSampler::default();
    let mut buf = bytes::BytesMut::new();
    let mut flushes = 0;
    // In reads of 4 KiB, the way a socket hands them over.
    for chunk in input.chunks(4096) {
        buf.extend_from_slice(chunk);
        while decoder.decode(&mut buf, &mut out, 1_700_000_000, "t", &sampler) {
            flushes += 1;
        }
    }
    assert!(buf.is_empty());
    assert!(flushes > 0, "a large input asks for flushes");
    let good = 20_000 - 3 * 40;
    assert_eq!(out.counts.received, good);
    assert_eq!(out.counts.rejected[Reject::TooLong.index()], 40);
    assert_eq!(out.counts.rejected.iter().sum::<u64>(), 80);
    out.on_idle();
    let mut got = Vec::new();
    while let Ok(points) = rx.try_recv() {
        got.extend(points.iter().map(|(n, v, _)| (n.to_string(), v)));
    }
    assert_eq!(got, want);
}

/// One line for each name, stamped `ts`.
fn one_pass(names: &[String], ts: u32) -> Vec<u8> {
    names
        .iter()
        .flat_map(|n| format!("{n} 1 {ts}\n").into_bytes())
        .collect()
}

/// A connection remembers where each name goes (`route_cache_max_names`);
/// a reload that changes the ring must move the names it remembered, on
/// the same connection, to where the new ring puts them.
#[tokio::test]
async fn a_reload_moves_names_a_connection_remembered() {
    let sinks = [
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    ];
    let dests: Vec<String> = ["a", "b", "c"]
        .iter()
        .zip(&sinks)
        .map(|(i, s)| format!("{}:{i}", s.addr))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!("{FILE_HEAD}{}", cluster("carbon_ch", &dests[..2], "")),
    )
    .unwrap();
    let mut app = App::start(carbonwatch::config::Config::load(&path).unwrap())
        .await
        .unwrap();
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("mem.host{i}.load")).collect();
    let pass = |ts: u32| one_pass(&names, ts);
    // Twice, so the second pass is answered from memory.
    s.write_all(&pass(1)).await.unwrap();
    s.write_all(&pass(2)).await.unwrap();
    wait_until(Duration::from_secs(30), || {
        sinks.iter().map(|s| s.lines().len()).sum::<usize>() == 600
    })
    .await;
    let old = carbonwatch::config::Config::load(&path).unwrap().router;
    std::fs::write(
        &path,
        format!("{FILE_HEAD}{}", cluster("carbon_ch", &dests, "")),
    )
    .unwrap();
    app.reload(&path).await.unwrap();
    let new = carbonwatch::config::Config::load(&path).unwrap().router;
    s.write_all(&pass(3)).await.unwrap();
    wait_until(Duration::from_secs(30), || {
        sinks.iter().map(|s| s.lines().len()).sum::<usize>() == 900
    })
    .await;
    let mut moved = 0;
    for n in &names {
        for (ts, router) in [(1, &old), (2, &old), (3, &new)] {
            let line = format!("{n} 1 {ts}");
            let want = router.explain(n, "");
            let on: Vec<usize> = (0..3)
                .filter(|&i| sinks[i].lines().contains(&line))
                .collect();
            assert_eq!(on.len(), 1, "{line} must land exactly once");
            let inst = ["a", "b", "c"][on[0]];
            assert!(
                want.ends_with(&format!(":{inst}")),
                "{line}: router says {want}"
            );
        }
        moved += usize::from(new.explain(n, "") != old.explain(n, ""));
    }
    assert!(moved > 30, "the new ring moves some names ({moved})");
    s.shutdown().await.unwrap();
    app.shutdown().await;
}

/// `any_of` answers are remembered per connection too, but only while no
/// destination changes health: when one goes down, the names it had move
/// to the others at once, and the rest stay where they were.
#[tokio::test]
async fn any_of_moves_remembered_names_off_a_destination_that_went_down() {
    use tokio::io::AsyncReadExt;
    let (a, b) = (Sink::start().await, Sink::start().await);
    let c_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c_addr = c_listener.local_addr().unwrap().to_string();
    let dests = vec![a.addr.to_string(), b.addr.to_string(), c_addr.clone()];
    let cfg = config(&cluster("any_of", &dests, ""));
    let router = cfg.router.clone();
    let app = App::start(cfg).await.unwrap();
    let names: Vec<String> = (0..300).map(|i| format!("any.host{i}.load")).collect();
    let on_c: Vec<&String> = names
        .iter()
        .filter(|n| router.explain(n, "").contains(&c_addr))
        .collect();
    assert!(on_c.len() > 30, "c takes a share ({})", on_c.len());
    // c takes both passes, then goes away.
    let want_c = 2 * on_c.len();
    let c_task = tokio::spawn(async move {
        let (mut s, _) = c_listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        while got.iter().filter(|&&b| b == b'\n').count() < want_c {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        drop((s, c_listener));
        String::from_utf8(got).unwrap()
    });
    let mut s = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let pass = |ts: u32| one_pass(&names, ts);
    s.write_all(&pass(1)).await.unwrap();
    s.write_all(&pass(2)).await.unwrap();
    let c_lines = c_task.await.unwrap();
    assert_eq!(c_lines.lines().count(), want_c);
    wait_until(Duration::from_secs(30), || {
        a.lines().len() + b.lines().len() == 600 - want_c
    })
    .await;
    // Probe with one of c's names until the relay sees c is gone.
    let relay = app.relay.clone();
    let c = relay
        .destinations()
        .into_iter()
        .find(|d| d.spec.address() == c_addr)
        .unwrap();
    let probe = format!("{} 1 3\n", on_c[0]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.is_healthy() {
        assert!(std::time::Instant::now() < deadline, "c never marked down");
        s.write_all(probe.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.write_all(&pass(4)).await.unwrap();
    wait_until(Duration::from_secs(30), || {
        let all: Vec<String> = a.lines().into_iter().chain(b.lines()).collect();
        names.iter().all(|n| all.contains(&format!("{n} 1 4")))
    })
    .await;
    let (la, lb) = (a.lines(), b.lines());
    for n in &names {
        let now = format!("{n} 1 4");
        assert!(la.contains(&now) ^ lb.contains(&now), "{now} lands once");
        if !on_c.contains(&n) {
            let before = format!("{n} 1 1");
            assert_eq!(la.contains(&now), la.contains(&before), "{n} stays put");
        }
    }
    s.shutdown().await.unwrap();
    app.shutdown().await;
}
