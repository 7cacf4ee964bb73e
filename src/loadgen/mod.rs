//! `carbonwatch bench`: an end-to-end load test for any carbon relay.
//!
//! It listens as the relay's destination(s) (`--sink`, one or more), sends a
//! generated plaintext payload to the relay (`--target`) over several
//! connections, and counts the lines that reach its sinks. It reports
//! lines/s from the first byte sent to the last line received, and lines
//! lost: those still missing once nothing has arrived for `settle`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

mod compare;
mod http;
mod latency;

pub use compare::{compare, CompareOptions, Side};
pub use latency::{latency, LatencyOptions};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// The relay's plaintext port.
    pub target: SocketAddr,
    /// Addresses the relay forwards to; the bench listens on them.
    pub sinks: Vec<SocketAddr>,
    /// Client connections to the relay.
    pub connections: usize,
    /// Lines to send in total.
    pub lines: u64,
    /// Distinct metric names in the payload.
    pub names: usize,
    /// Give up waiting this long after the last line arrived.
    pub settle: Duration,
    /// A process whose peak resident memory (VmHWM) to report.
    pub watch_pid: Option<u32>,
}

/// What a run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Lines written to the relay.
    pub sent: u64,
    /// Lines the sinks received.
    pub received: u64,
    /// From the first byte sent to the last line received.
    pub elapsed: Duration,
    /// Peak resident memory of `watch_pid`, in KiB.
    pub peak_rss_kib: Option<u64>,
    /// CPU time `watch_pid` used during the run (user + system).
    pub cpu: Option<Duration>,
}

impl BenchReport {
    /// Lines received per second.
    pub fn lines_per_sec(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Lines sent and never received.
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent={} received={} lost={} elapsed={:.3}s rate={:.0} lines/s",
            self.sent,
            self.received,
            self.lost(),
            self.elapsed.as_secs_f64(),
            self.lines_per_sec()
        )?;
        if let Some(kib) = self.peak_rss_kib {
            write!(f, " peak_rss={:.1}MiB", kib as f64 / 1024.0)?;
        }
        if let Some(cpu) = self.cpu {
            let per_line = cpu.as_nanos() as f64 / self.received.max(1) as f64;
            write!(
                f,
                " relay_cpu={:.2}s relay_ns_per_line={per_line:.0}",
                cpu.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// The timestamp field of generated lines: fixed unless a benchmark
/// sets it once before generating (`-1`, carbon's "now", for rules that
/// look at time, such as aggregation).
pub static TIMESTAMP: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// One connection's payload: `names` distinct lines, repeated.
pub fn payload(names: usize, conn: usize) -> Vec<u8> {
    let ts = TIMESTAMP.get().map_or("1700000000", String::as_str);
    let mut p = Vec::with_capacity(names * 48);
    for i in 0..names {
        p.extend_from_slice(
            format!(
                "bench.c{conn}.host{:03}.metric{i:05} {}.5 {ts}\n",
                i % 100,
                i % 1000
            )
            .as_bytes(),
        );
    }
    p
}

/// `passes` passes over the names of [`payload`], each in its own order
/// (a fixed shuffle per pass and connection), the way Telegraf's maps or
/// an aggregator in front interleave names: one pass, one order.
pub fn payload_shuffled(names: usize, conn: usize, passes: usize) -> Vec<u8> {
    let one = payload(names, conn);
    if passes <= 1 {
        return one;
    }
    let lines: Vec<&[u8]> = one.split_inclusive(|&b| b == b'\n').collect();
    let mut out = Vec::with_capacity(one.len() * passes);
    let mut order: Vec<usize> = (0..lines.len()).collect();
    // xorshift64: deterministic, so every run sends the same bytes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (conn as u64 + 1);
    for _ in 0..passes {
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        order.iter().for_each(|&i| out.extend_from_slice(lines[i]));
    }
    out
}

/// Peak resident set size of a process, from `/proc`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time a process has used (user + system), from `/proc`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are
    // the 14th and 15th fields overall, in clock ticks (100 per second on
    // Linux).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Counts the lines a relay delivers to the addresses it listens on.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    /// Lines received so far.
    pub received: Arc<AtomicU64>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    last_rx: Arc<std::sync::Mutex<Instant>>,
}

impl Sink {
    /// Listens on every address of `addrs`, counting into one total.
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Sink> {
        let sink = Sink {
            received: Arc::default(),
            accepted: Arc::default(),
            last_rx: Arc::new(std::sync::Mutex::new(Instant::now())),
        };
        for addr in addrs {
            let listener = TcpListener::bind(addr).await?;
            let sink = sink.clone();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = listener.accept().await {
                    sink.accepted.fetch_add(1, Relaxed);
                    let sink = sink.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 1 << 20];
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let lines = memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                            sink.received.fetch_add(lines, Relaxed);
                            *sink.last_rx.lock().unwrap_or_else(|p| p.into_inner()) =
                                Instant::now();
                        }
                    });
                }
            });
        }
        Ok(sink)
    }

    /// When the last line arrived.
    pub fn last_rx(&self) -> Instant {
        *self.last_rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `total` lines have arrived, or none has for `settle`.
    /// Returns the lines received.
    pub async fn wait_for(&self, total: u64, settle: Duration) -> u64 {
        loop {
            let got = self.received.load(Relaxed);
            if got >= total || self.last_rx().elapsed() > settle {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Writes `lines` lines of `payload` (whole lines, repeated) to `s`.
pub(crate) async fn send_lines(
    s: &mut TcpStream,
    payload: &[u8],
    lines: u64,
) -> std::io::Result<()> {
    let per_payload = memchr::memchr_iter(b'\n', payload).count() as u64;
    let mut left = lines;
    while left > 0 {
        if left >= per_payload {
            s.write_all(payload).await?;
            left -= per_payload;
        } else {
            let end = memchr::memchr_iter(b'\n', payload)
                .nth(left as usize - 1)
                .map_or(payload.len(), |i| i + 1);
            s.write_all(&payload[..end]).await?;
            left = 0;
        }
    }
    Ok(())
}

/// CPU time `pid` used since it had used `before`.
pub(crate) fn cpu_since(before: Option<Duration>, pid: Option<u32>) -> Option<Duration> {
    Some(pid.and_then(cpu_time)?.saturating_sub(before?))
}

/// Runs the benchmark.
pub async fn run(opts: BenchOptions) -> std::io::Result<BenchReport> {
    let sink = Sink::bind(&opts.sinks).await?;
    // Give a relay that is already retrying its destinations time to connect.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let per_conn = opts.lines / opts.connections as u64;
    let cpu_before = opts.watch_pid.and_then(cpu_time);
    let start = Instant::now();
    let mut senders = Vec::new();
    for c in 0..opts.connections {
        let target = opts.target;
        let names = opts.names;
        senders.push(tokio::spawn(async move {
            let p = payload(names, c);
            let mut s = TcpStream::connect(target).await?;
            send_lines(&mut s, &p, per_conn).await?;
            s.shutdown().await?;
            Ok::<u64, std::io::Error>(per_conn)
        }));
    }
    let mut sent = 0;
    for s in senders {
        sent += s.await.map_err(std::io::Error::other)??;
    }
    let received = sink.wait_for(sent, opts.settle).await;
    let last = sink.last_rx();
    let cpu = cpu_since(cpu_before, opts.watch_pid);
    Ok(BenchReport {
        cpu,
        sent,
        received,
        elapsed: last.saturating_duration_since(start),
        peak_rss_kib: opts.watch_pid.and_then(peak_rss_kib),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pass holds every name once, and the passes are in different
    /// orders.
    #[test]
    fn shuffled_passes_are_permutations_of_one_pass() {
        let one = payload(500, 3);
        let many = payload_shuffled(500, 3, 4);
        let mut want: Vec<&[u8]> = one.split_inclusive(|&b| b == b'\n').collect();
        want.sort_unstable();
        let lines: Vec<&[u8]> = many.split_inclusive(|&b| b == b'\n').collect();
        let passes: Vec<&[&[u8]]> = lines.chunks(500).collect();
        assert_eq!(passes.len(), 4);
        for p in &passes {
            let mut got = p.to_vec();
            got.sort_unstable();
            assert_eq!(got, want);
        }
        assert_ne!(passes[0], passes[1]);
        assert_eq!(payload_shuffled(500, 3, 1), one);
    }
}
