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
        Ok(())
    }
}

/// One connection's payload: `names` distinct lines, repeated.
pub fn payload(names: usize, conn: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(names * 48);
    for i in 0..names {
        p.extend_from_slice(
            format!(
                "bench.c{conn}.host{:03}.metric{i:05} {}.5 1700000000\n",
                i % 100,
                i % 1000
            )
            .as_bytes(),
        );
    }
    p
}

/// Peak resident set size of a process, from `/proc`.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs the benchmark.
pub async fn run(opts: BenchOptions) -> std::io::Result<BenchReport> {
    let received = Arc::new(AtomicU64::new(0));
    let last_rx = Arc::new(std::sync::Mutex::new(Instant::now()));
    for addr in &opts.sinks {
        let listener = TcpListener::bind(addr).await?;
        let (received, last_rx) = (received.clone(), last_rx.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (received, last_rx) = (received.clone(), last_rx.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1 << 20];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let lines = memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
                        received.fetch_add(lines, Relaxed);
                        *last_rx.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
                    }
                });
            }
        });
    }
    // Give a relay that is already retrying its destinations time to connect.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let per_conn = opts.lines / opts.connections as u64;
    let start = Instant::now();
    let mut senders = Vec::new();
    for c in 0..opts.connections {
        let target = opts.target;
        let names = opts.names;
        senders.push(tokio::spawn(async move {
            let p = payload(names, c);
            let mut s = TcpStream::connect(target).await?;
            let mut left = per_conn;
            while left > 0 {
                let n = left.min(names as u64) as usize;
                if n == names {
                    s.write_all(&p).await?;
                } else {
                    let end = memchr::memchr_iter(b'\n', &p)
                        .nth(n - 1)
                        .map_or(p.len(), |i| i + 1);
                    s.write_all(&p[..end]).await?;
                }
                left -= n as u64;
            }
            s.shutdown().await?;
            Ok::<u64, std::io::Error>(per_conn)
        }));
    }
    let mut sent = 0;
    for s in senders {
        sent += s.await.map_err(std::io::Error::other)??;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let got = received.load(Relaxed);
        let idle = last_rx.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
        if got >= sent || idle > opts.settle {
            break;
        }
    }
    let last = *last_rx.lock().unwrap_or_else(|p| p.into_inner());
    Ok(BenchReport {
        sent,
        received: received.load(Relaxed),
        elapsed: last.saturating_duration_since(start),
        peak_rss_kib: opts.watch_pid.and_then(peak_rss_kib),
    })
}
