//! carbonwatch against Debian's carbon-aggregator, on one
//! `aggregation-rules.conf` converted with `carbonwatch convert --from
//! carbon-aggregator`: both are fed the same points and forward to a
//! sink each, and what a carbon-cache behind each would keep (the last
//! value written for every name and timestamp, aggregates and forwarded
//! inputs alike) is the same.
//!
//! carbon-aggregator writes an interval's aggregate of everything so far
//! whenever new points reached it; carbonwatch writes each bucket once,
//! when it closes. The comparison is of what is left once both are done.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use carbonwatch::app::App;
use common::{free_port, wait_listening, wait_until, Sink, BIN};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const FREQUENCY: i64 = 3;
/// carbon-aggregator's MAX_AGGREGATION_INTERVALS for the run, and the
/// converter's: a bucket takes points for this many intervals.
const INTERVALS: i64 = 2;

const RULES: &str = "\
# Each method carbon-aggregator has, over one-node and multi-node fields.
<env>.applications.<app>.all.requests (3) = sum <env>.applications.<app>.*.requests
<env>.applications.<app>.all.latency_avg (3) = avg <env>.applications.<app>.*.latency
<env>.applications.<app>.all.latency_p90 (3) = p90 <env>.applications.<app>.*.latency
<env>.applications.<app>.all.latency_p50 (3) = p50 <env>.applications.<app>.*.latency
hosts.all.<metric>.max (3) = max hosts.*.<<metric>>
hosts.all.<metric>.min (3) = min hosts.*.<<metric>>
hosts.all.<metric>.count (3) = count hosts.*.<<metric>>
srv.total.p99 (3) = p99 srv-*.load
";

fn input(base: i64) -> String {
    let mut s = String::new();
    for b in 0..2 {
        let t = base + b * FREQUENCY;
        for env in ["prod", "dev"] {
            for app in ["shop", "api"] {
                for h in 1..=3 {
                    let k = h + 3 * b;
                    s += &format!(
                        "{env}.applications.{app}.h{h}.requests {} {}\n",
                        10 * k,
                        t + h % FREQUENCY
                    );
                    s += &format!("{env}.applications.{app}.h{h}.latency {}.25 {t}\n", k * k);
                }
            }
        }
        for h in 1..=4 {
            s += &format!("hosts.web{h}.cpu.user {}.5 {t}\n", h * (b + 1));
            s += &format!("hosts.web{h}.disk.sda.used {} {}\n", 100 - h, t + 2);
            s += &format!("srv-{h}.load {}.125 {t}\n", h + b);
        }
    }
    s
}

/// The last value of every (name, timestamp) a sink received.
fn last_values(lines: &[String], base: i64) -> BTreeMap<(String, i64), f64> {
    lines
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let ts: i64 = f[2].parse().unwrap();
            ((f[0].to_string(), ts - base), f[1].parse::<f64>().unwrap())
        })
        .collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Aggregate names each side must write: 2 envs × 2 apps × 4 rules,
/// 2 host metrics × 3 rules, 1: per interval, two intervals.
const AGGREGATES: usize = 2 * (2 * 2 * 4 + 2 * 3 + 1);
/// Inputs forwarded (FORWARD_ALL): 2 × (2 × 2 × 3 × 2 + 4 × 3).
const INPUTS: usize = 2 * (2 * 2 * 3 * 2 + 4 * 3);

struct Aggregator {
    _dir: tempfile::TempDir,
    child: common::Child,
    port: u16,
}

async fn carbon_aggregator(rules: &std::path::Path, sink: &Sink) -> Aggregator {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let (port, pickle) = (free_port(), free_port());
    std::fs::create_dir_all(format!("{d}/log")).unwrap();
    // Read at start-up, though an aggregator writes no whisper file.
    std::fs::write(
        format!("{d}/storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 1s:600s\n",
    )
    .unwrap();
    std::fs::write(
        format!("{d}/carbon.conf"),
        format!(
            "[aggregator]\nSTORAGE_DIR = {d}\nLOCAL_DATA_DIR = {d}\nCONF_DIR = {d}\nLOG_DIR = {d}/log\n\
             PID_DIR = {d}\nUSER =\nENABLE_LOGROTATION = False\n\
             LINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {port}\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle}\n\
             ENABLE_UDP_LISTENER = False\nFORWARD_ALL = True\nLOG_AGGREGATOR_MISSES = False\n\
             DESTINATIONS = {}\nDESTINATION_PROTOCOL = line\n\
             AGGREGATION_RULES = {}\nMAX_AGGREGATION_INTERVALS = {INTERVALS}\n",
            sink.addr,
            rules.display()
        ),
    )
    .unwrap();
    let child = Command::new("carbon-aggregator")
        .arg(format!("--config={d}/carbon.conf"))
        .args(["--debug", "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("carbon-aggregator (Debian graphite-carbon)");
    let child = common::Child(child);
    wait_listening(port, "carbon-aggregator").await;
    Aggregator {
        _dir: dir,
        child,
        port,
    }
}

async fn send(port: u16, text: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(text.as_bytes()).await.unwrap();
    s.shutdown().await.unwrap();
}

#[tokio::test]
#[ignore = "needs Debian graphite-carbon"]
async fn what_carbon_cache_keeps_is_what_carbon_aggregator_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("aggregation-rules.conf");
    std::fs::write(&rules, RULES).unwrap();
    let converted = tokio::task::spawn_blocking({
        let rules = rules.clone();
        move || {
            common::output_ok(
                Command::new(BIN)
                    .args([
                        "convert",
                        "--from",
                        "carbon-aggregator",
                        "--max-aggregation-intervals",
                        &INTERVALS.to_string(),
                    ])
                    .arg(&rules),
            )
        }
    })
    .await
    .unwrap();
    let tables = String::from_utf8(converted.stdout).unwrap();

    let (theirs, ours) = (Sink::start().await, Sink::start().await);
    let aggregator = carbon_aggregator(&rules, &theirs).await;
    let config = common::config(&format!(
        "[[cluster]]\nname = \"sink\"\ntype = \"forward\"\ndestinations = [\"{}\"]\n{tables}\n\
         [[route]]\nmatch = \"*\"\nto = [\"sink\"]\n",
        ours.addr
    ));
    let app = App::start(config).await.unwrap();

    let base = unix_now().div_euclid(FREQUENCY) * FREQUENCY - FREQUENCY;
    let text = input(base);
    send(aggregator.port, &text).await;
    send(app.plaintext_tcp.unwrap().port(), &text).await;

    // carbonwatch writes each bucket once it closes; by then
    // carbon-aggregator has written every interval after its last point.
    let want = AGGREGATES + INPUTS;
    wait_until(Duration::from_secs(40), || {
        ours.lines().len() >= want && last_values(&theirs.lines(), base).len() >= want
    })
    .await;
    app.shutdown().await;
    drop(aggregator.child);

    let (t, o) = (
        last_values(&theirs.lines(), base),
        last_values(&ours.lines(), base),
    );
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        o.keys().collect::<Vec<_>>(),
        "the same names and timestamps"
    );
    for (k, v) in &t {
        assert!(
            (v - o[k]).abs() < 1e-6,
            "{k:?}: carbon-aggregator {v}, carbonwatch {}",
            o[k]
        );
    }
    assert_eq!(o.len(), want);
    // Spot checks that the comparison compares something.
    assert_eq!(o[&("hosts.all.cpu.user.count".to_string(), 0)], 4.0);
    assert_eq!(
        o[&("prod.applications.shop.all.requests".to_string(), 0)],
        60.0
    );
}
