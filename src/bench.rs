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
    let cpu_before = opts.watch_pid.and_then(cpu_time);
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
    let cpu = match (cpu_before, opts.watch_pid.and_then(cpu_time)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Ok(BenchReport {
        cpu,
        sent,
        received: received.load(Relaxed),
        elapsed: last.saturating_duration_since(start),
        peak_rss_kib: opts.watch_pid.and_then(peak_rss_kib),
    })
}

/// What `carbonwatch bench-latency` runs.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// The relay's plaintext TCP address.
    pub target: SocketAddr,
    /// Where the relay forwards (the bench counts lines there).
    pub sink: SocketAddr,
    /// Where the relay's HTTP subscription posts (the bench listens there).
    pub hook: SocketAddr,
    /// Background load in lines per second.
    pub rate: u64,
    /// Breaching probe lines to time.
    pub probes: usize,
    /// Pause between probes.
    pub probe_interval: Duration,
}

/// What `bench-latency` measured.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// Latency of each probe that was notified, sorted.
    pub latencies: Vec<Duration>,
    /// Probes sent.
    pub probes: usize,
    /// Background lines per second that reached the sink during the run.
    pub load_rate: f64,
}

impl std::fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = |p: f64| -> f64 {
            if self.latencies.is_empty() {
                return f64::NAN;
            }
            let i = ((self.latencies.len() as f64 * p).ceil() as usize)
                .clamp(1, self.latencies.len())
                - 1;
            self.latencies[i].as_secs_f64() * 1000.0
        };
        write!(
            f,
            "probes={} notified={} load={:.0} lines/s latency_ms p50={:.2} p90={:.2} p99={:.2} max={:.2}",
            self.probes,
            self.latencies.len(),
            self.load_rate,
            q(0.50),
            q(0.90),
            q(0.99),
            q(1.0)
        )
    }
}

/// Times from a breaching line written to the relay's socket to the
/// webhook it causes, while a background load flows. Each probe is a new
/// series `probe.<n>.value` with value 100, for a check on `probe.*.value`
/// with `error <= 100` and an HTTP subscription to `hook`.
pub async fn latency(opts: LatencyOptions) -> std::io::Result<LatencyReport> {
    use std::collections::HashMap;
    let received = Arc::new(AtomicU64::new(0));
    let sink = TcpListener::bind(opts.sink).await?;
    let r = received.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = sink.accept().await {
            let r = r.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    r.fetch_add(
                        memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
                        Relaxed,
                    );
                }
            });
        }
    });
    let arrivals: Arc<std::sync::Mutex<HashMap<usize, Instant>>> = Arc::default();
    // The receiver gets a thread and runtime of its own, so that the
    // arrival time is not delayed by the load generator's tasks.
    let hook = std::net::TcpListener::bind(opts.hook)?;
    hook.set_nonblocking(true)?;
    let a = arrivals.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("hook runtime");
        rt.block_on(async move {
            let hook = TcpListener::from_std(hook).expect("hook listener");
            while let Ok((s, _)) = hook.accept().await {
                let a = a.clone();
                tokio::spawn(async move { serve_hook(s, a).await });
            }
        });
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Background load: two connections, paced in 10 ms slices.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loaders = Vec::new();
    for c in 0..2 {
        let (target, stop, rate) = (opts.target, stop.clone(), opts.rate / 2);
        loaders.push(tokio::spawn(async move {
            let p = payload(10_000, c);
            let lines_per_slice = (rate / 100).max(1) as usize;
            let mut s = TcpStream::connect(target).await?;
            let mut offsets: Vec<usize> = vec![0];
            offsets.extend(memchr::memchr_iter(b'\n', &p).map(|i| i + 1));
            let mut at = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !stop.load(Relaxed) {
                tick.tick().await;
                let mut left = lines_per_slice;
                while left > 0 {
                    let n = left.min(offsets.len() - 1 - at);
                    s.write_all(&p[offsets[at]..offsets[at + n]]).await?;
                    at = (at + n) % (offsets.len() - 1);
                    left -= n;
                }
            }
            Ok::<(), std::io::Error>(())
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let load_start = (Instant::now(), received.load(Relaxed));
    let mut probe = TcpStream::connect(opts.target).await?;
    probe.set_nodelay(true)?;
    let mut sent_at = Vec::with_capacity(opts.probes);
    let run = std::process::id();
    for n in 0..opts.probes {
        let line = format!("probe.r{run}n{n}.value 100 1700000000\n");
        sent_at.push(Instant::now());
        probe.write_all(line.as_bytes()).await?;
        tokio::time::sleep(opts.probe_interval).await;
    }
    // Let the last notifications arrive.
    for _ in 0..300 {
        if arrivals.lock().unwrap_or_else(|p| p.into_inner()).len() >= opts.probes {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let load_rate =
        (received.load(Relaxed) - load_start.1) as f64 / load_start.0.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    for l in loaders {
        let _ = l.await;
    }
    let arrivals = arrivals.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let mut latencies: Vec<Duration> = arrivals
        .iter()
        .filter_map(|(&n, &at)| sent_at.get(n).map(|&s| at.saturating_duration_since(s)))
        .collect();
    latencies.sort();
    Ok(LatencyReport {
        latencies,
        probes: opts.probes,
        load_rate,
    })
}

/// Reads the next HTTP/1.1 request from `s` and returns its body; `None`
/// at end of stream. Bytes past that request stay in `buf` for the next
/// call. Enough HTTP for a webhook receiver: `Content-Length` bodies only.
pub async fn read_http_body(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let body = buf[end + 4..end + 4 + len].to_vec();
                buf.drain(..end + 4 + len);
                return Some(body);
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Answers webhook requests; records when the one naming
/// `probe.r<pid>n<N>` arrived.
async fn serve_hook(
    mut s: TcpStream,
    arrivals: Arc<std::sync::Mutex<std::collections::HashMap<usize, Instant>>>,
) {
    let mut buf = Vec::new();
    let tag = format!("probe.r{}n", std::process::id());
    while let Some(body) = read_http_body(&mut s, &mut buf).await {
        let now = Instant::now();
        let body = String::from_utf8_lossy(&body);
        if let Some(i) = body.find(&tag) {
            let digits: String = body[i + tag.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                arrivals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(n)
                    .or_insert(now);
            }
        }
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await;
    }
}
