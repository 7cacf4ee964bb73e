//! `carbonwatch bench-latency`: from a breaching line written to the relay
//! to the webhook it causes, under a background load.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::read_http_body;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use super::{payload, Sink};

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
    let received = Sink::bind(&[opts.sink]).await?.received;
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
