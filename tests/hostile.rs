//! Hostile input over real sockets (issue #11): what one client sends
//! must cost nothing else.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use carbonwatch::app::App;
use carbonwatch::codec::Reject;
use common::{wait_until, Sink};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Tests here measure the process's memory, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every listener on an ephemeral port, `listen` keys added to `[listen]`,
/// everything forwarded to `sink`.
fn forward_to(sink: &Sink, listen: &str) -> carbonwatch::config::Config {
    let text = format!(
        "[listen]\nplaintext_tcp = \"127.0.0.1:0\"\nplaintext_udp = \"\"\npickle_tcp = \"127.0.0.1:0\"\n{listen}\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stats]\nenabled = false\n[alerting]\nstore = \"\"\n\
         [[cluster]]\nname = \"c\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n[[route]]\nmatch = \"*\"\nto = [\"c\"]\n",
        sink.addr
    );
    carbonwatch::config::Config::parse(&text, std::path::Path::new("test.toml")).unwrap()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

/// `[('<name>', (1700000000, 1))]` in protocol 2.
fn item_frame(name: &str) -> Vec<u8> {
    let mut p = b"\x80\x02](X".to_vec();
    p.extend_from_slice(&(name.len() as u32).to_le_bytes());
    p.extend_from_slice(name.as_bytes());
    p.extend_from_slice(b"J\x00\xf1SeK\x01\x86\x86e.");
    frame(&p)
}

/// The frame: one 200 KB name memoised and referenced by 2-byte
/// BINGETs to fill 1 MiB.
fn memo_bomb() -> Vec<u8> {
    let mut p = b"\x80\x02]q\x00(X".to_vec();
    p.extend_from_slice(&200_000u32.to_le_bytes());
    p.extend(std::iter::repeat_n(b'a', 200_000));
    p.extend_from_slice(b"q\x01J\x00\xf1SeK\x01\x86q\x02\x86");
    while p.len() < (1 << 20) - 16 {
        p.extend_from_slice(b"h\x01h\x02\x86");
    }
    p.extend_from_slice(b"e.");
    frame(&p)
}

/// A client that connects now and whose line must arrive: the proof that
/// the hostile ones cost it nothing.
async fn live_client(socket: TcpSocket, addr: std::net::SocketAddr, sink: &Sink) {
    let mut live = socket.connect(addr).await.unwrap();
    live.write_all(b"live.client 1 1700000000\n").await.unwrap();
    assert_eq!(sink.wait_lines(1).await, vec!["live.client 1 1700000000"]);
}

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn a_pickle_bomb_is_refused_and_the_connection_and_others_carry_on() {
    let _serial = SERIAL.lock().await;
    let sink = Sink::start().await;
    // Names may be as long as the bomb's, so only the budget refuses it.
    let app = App::start(forward_to(&sink, "")).await.unwrap();
    let before = rss_bytes();
    let mut p = TcpStream::connect(app.pickle_tcp.unwrap()).await.unwrap();
    let mut frames = memo_bomb();
    frames.extend(item_frame("after.the.bomb"));
    p.write_all(&frames).await.unwrap();
    let mut line = TcpStream::connect(app.plaintext_tcp.unwrap())
        .await
        .unwrap();
    line.write_all(b"other.client 1 1700000000\n")
        .await
        .unwrap();
    let got = sink.wait_lines(2).await;
    assert!(
        got.contains(&"after.the.bomb 1 1700000000".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"other.client 1 1700000000".to_string()),
        "{got:?}"
    );
    let stats = &app.relay.stats;
    wait_until(Duration::from_secs(10), || {
        stats.rejected[Reject::TooLong.index()].load(Relaxed) > 0
    })
    .await;
    // With the default name limit (max_line_bytes) every reference is a
    // too-long item, refused without a copy; nothing was materialised.
    assert_eq!(stats.rejected[Reject::BadPickle.index()].load(Relaxed), 0);
    assert!(
        rss_bytes() < before + (64 << 20),
        "RSS grew by {} MiB",
        (rss_bytes() - before) >> 20
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_memo_bomb_within_the_name_limit_is_refused_whole_by_its_budget() {
    let _serial = SERIAL.lock().await;
    let sink = Sink::start().await;
    let app = App::start(forward_to(&sink, "max_line_bytes = 1000000"))
        .await
        .unwrap();
    let before = rss_bytes();
    let mut p = TcpStream::connect(app.pickle_tcp.unwrap()).await.unwrap();
    let mut frames = memo_bomb();
    frames.extend(item_frame("after.the.bomb"));
    p.write_all(&frames).await.unwrap();
    let got = sink.wait_lines(1).await;
    assert_eq!(got, vec!["after.the.bomb 1 1700000000".to_string()]);
    let stats = &app.relay.stats;
    assert_eq!(stats.rejected[Reject::PickleBomb.index()].load(Relaxed), 1);
    assert!(
        rss_bytes() < before + (64 << 20),
        "RSS grew by {} MiB",
        (rss_bytes() - before) >> 20
    );
    app.shutdown().await;
}

/// A client from 127.0.0.2 holding its cap of idle connections does not
/// lock out a client from 127.0.0.3.
#[tokio::test]
async fn one_peer_cannot_take_every_connection() {
    let _serial = SERIAL.lock().await;
    let sink = Sink::start().await;
    let app = App::start(forward_to(
        &sink,
        "max_connections = 64\nmax_connections_per_peer = 8",
    ))
    .await
    .unwrap();
    let addr = app.plaintext_tcp.unwrap();
    let from = |ip: &str| {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        s
    };
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(from("127.0.0.2").connect(addr).await.unwrap());
    }
    let stats = &app.relay.stats;
    wait_until(Duration::from_secs(10), || {
        stats.connections.load(Relaxed) == 8
    })
    .await;
    let mut ninth = from("127.0.0.2").connect(addr).await.unwrap();
    let mut b = [0u8; 1];
    // Refused: closed by the server without a byte.
    assert_eq!(ninth.read(&mut b).await.unwrap(), 0);
    assert_eq!(stats.connections_refused_per_peer.load(Relaxed), 1);
    live_client(from("127.0.0.3"), addr, &sink).await;
    drop(idle);
    app.shutdown().await;
}

/// Near `max_connections`, idle clients get the short timeout, so a live
/// client finds a slot instead of waiting out the 600 s one.
#[tokio::test]
async fn idle_clients_make_room_under_pressure() {
    let _serial = SERIAL.lock().await;
    let sink = Sink::start().await;
    let app = App::start(forward_to(
        &sink,
        "max_connections = 8\nidle_timeout_secs = 600\nidle_timeout_under_pressure_secs = 1",
    ))
    .await
    .unwrap();
    let addr = app.plaintext_tcp.unwrap();
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    let stats = &app.relay.stats;
    wait_until(Duration::from_secs(10), || {
        stats.connections.load(Relaxed) == 8
    })
    .await;
    // The first of them to time out were closed under pressure; the slots
    // they free are enough for the live client.
    wait_until(Duration::from_secs(20), || {
        stats.idle_closed_under_pressure.load(Relaxed) >= 1 && stats.disconnects.load(Relaxed) >= 2
    })
    .await;
    live_client(TcpSocket::new_v4().unwrap(), addr, &sink).await;
    drop(idle);
    app.shutdown().await;
}

/// Waves of idle connections, each closed before the next, leave memory
/// flat: an idle connection holds no read buffer.
#[tokio::test]
async fn memory_stays_flat_across_waves_of_idle_connections() {
    let _serial = SERIAL.lock().await;
    let sink = Sink::start().await;
    let app = App::start(forward_to(
        &sink,
        "max_connections = 4000\nmax_connections_per_peer = 4000",
    ))
    .await
    .unwrap();
    let addr = app.plaintext_tcp.unwrap();
    let stats = app.relay.stats.clone();
    let baseline = rss_bytes();
    let mut after_first = 0;
    let waves = 6;
    let per_wave = 1500;
    for wave in 0..waves {
        let mut conns = Vec::with_capacity(per_wave);
        for i in 0..per_wave {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("wave.{wave}.c{i} 1 1700000000\n").as_bytes())
                .await
                .unwrap();
            conns.push(s);
        }
        let want = ((wave + 1) * per_wave) as u64;
        wait_until(Duration::from_secs(60), || {
            stats.received.load(Relaxed) >= want
        })
        .await;
        drop(conns);
        wait_until(Duration::from_secs(60), || {
            stats.disconnects.load(Relaxed) >= want
        })
        .await;
        if wave == 0 {
            after_first = rss_bytes();
        }
    }
    sink.wait_lines(waves * per_wave).await;
    // A 256 KiB buffer per connection made one wave cost 375 MiB.
    let first = after_first.saturating_sub(baseline);
    assert!(first < 64 << 20, "the first wave took {} MiB", first >> 20);
    let growth = rss_bytes().saturating_sub(after_first);
    assert!(
        growth < 48 << 20,
        "RSS grew by {} MiB over {waves} waves",
        growth >> 20
    );
    app.shutdown().await;
}
