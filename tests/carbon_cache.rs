//! End to end against Debian's real carbon-cache: 100,000 points sent to
//! carbonwatch over plaintext TCP, UDP and pickle, forwarded as plaintext
//! and as pickle, and read back from the whisper files.

mod common;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use carbonwatch::app::App;
use carbonwatch::codec::pickle::Encoder;
use common::{config, wait_until, CarbonCache};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const POINTS_PER_METRIC: i64 = 100;

#[tokio::test]
#[ignore = "needs Debian graphite-carbon and python3-whisper"]
async fn every_point_lands_in_whisper() {
    let cache = CarbonCache::start().await;
    // Two clusters on the same cache: one speaks plaintext, one pickle.
    let body = format!(
        "[[cluster]]\nname = \"line\"\ntype = \"carbon_ch\"\ndestinations = [\"127.0.0.1:{}\"]\n\
         [[cluster]]\nname = \"pickle\"\ntype = \"carbon_ch\"\nprotocol = \"pickle\"\ndestinations = [\"127.0.0.1:{}\"]\n\
         [[route]]\nprefix = \"e2e.tcp.\"\nto = [\"line\"]\nstop = true\n\
         [[route]]\nmatch = \"*\"\nto = [\"pickle\"]\n",
        cache.line_port, cache.pickle_port
    );
    let app = App::start(config(&body)).await.unwrap();
    let now = carbonwatch::unix_now();
    let t0 = now - 400;
    let mut expected: HashMap<(String, i64), f64> = HashMap::new();
    let mut point = |proto: &str, m: usize, k: i64| {
        let name = format!("e2e.{proto}.m{m:03}");
        let value = m as f64 + k as f64 / 128.0; // exact in binary and in text
        expected.insert((name.clone(), t0 + k), value);
        (name, t0 + k, value)
    };

    // 40,000 over plaintext TCP.
    let mut tcp = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    let mut buf = String::new();
    for m in 0..400 {
        for k in 0..POINTS_PER_METRIC {
            let (n, t, v) = point("tcp", m, k);
            buf.push_str(&format!("{n} {v} {t}\n"));
        }
    }
    tcp.write_all(buf.as_bytes()).await.unwrap();
    tcp.shutdown().await.unwrap();

    // 30,000 over pickle, 500 points a frame.
    let mut frames = bytes::BytesMut::new();
    let mut enc = Encoder::new(500);
    for m in 0..300 {
        for k in 0..POINTS_PER_METRIC {
            let (n, t, v) = point("pickle", m, k);
            enc.push(&n, t, v, &mut frames);
        }
    }
    enc.finish(&mut frames);
    let mut pk = TcpStream::connect(app.pickle_tcp.unwrap()).await.unwrap();
    pk.write_all(&frames).await.unwrap();
    pk.shutdown().await.unwrap();

    // 30,000 over UDP, 50 lines a datagram. The kernel may drop datagrams
    // that overflow the socket buffer before carbonwatch reads them, so the
    // test paces itself on what the relay has received.
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let relay = app.relay.clone();
    let before = 40_000 + 30_000;
    wait_until(Duration::from_secs(60), || {
        relay.stats.received.load(Relaxed) >= before
    })
    .await;
    let mut sent = before;
    for m in 0..300 {
        for half in 0..2 {
            let mut dgram = String::new();
            for k in half * 50..half * 50 + 50 {
                let (n, t, v) = point("udp", m, k);
                dgram.push_str(&format!("{n} {v} {t}\n"));
            }
            udp.send_to(dgram.as_bytes(), app.plaintext_udp.unwrap())
                .await
                .unwrap();
            sent += 50;
        }
        if m % 10 == 9 {
            wait_until(Duration::from_secs(60), || {
                relay.stats.received.load(Relaxed) >= sent
            })
            .await;
        }
    }
    wait_until(Duration::from_secs(60), || {
        relay.stats.received.load(Relaxed) >= 100_000
    })
    .await;
    assert_eq!(expected.len(), 100_000);
    assert_eq!(relay.stats.rejected_total(), 0);
    assert_eq!(app.shutdown().await.undelivered, 0);

    // carbon-cache writes whisper files at its own pace: poll until all
    // points are on disk.
    let mut got = Vec::new();
    for _ in 0..240 {
        got = cache.points();
        if got.len() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let found: HashMap<(String, i64), f64> = got.into_iter().map(|(m, t, v)| ((m, t), v)).collect();
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of 100000 points missing, e.g. {missing:?}",
        expected.keys().filter(|k| !found.contains_key(*k)).count()
    );
    for (k, v) in &expected {
        assert_eq!(found[k], *v, "{k:?}");
    }
    assert_eq!(found.len(), expected.len(), "no extra points");
}
