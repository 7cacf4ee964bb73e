//! `carbonwatch bench-compare`: the throughput of several running relays,
//! measured in short segments that take turns.
//!
//! On a small shared machine the speed of the same relay drifts by ±15%
//! from one run to the next, far more than the differences worth
//! measuring, and it drifts slowly: runs a few seconds apart agree much
//! better than runs a minute apart. So every relay runs at once (an idle
//! one costs nothing), each keeps its client connections and its sink,
//! and the load goes to one relay at a time in segments of a fraction of a
//! second. A round sends one segment to each relay, in reverse order every
//! other round so that a drift within a round favours no one, and each
//! relay's rate is compared with the first relay's in the same round.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{cpu_since, cpu_time, payload_shuffled, send_lines, Sink};

/// One relay under test.
#[derive(Debug, Clone)]
pub struct Side {
    /// Its name in the report.
    pub label: String,
    /// Its plaintext TCP address.
    pub target: SocketAddr,
    /// The addresses it forwards to (its destinations); the bench listens
    /// there and counts what all of them receive.
    pub sinks: Vec<SocketAddr>,
    /// Its process, for CPU time per line.
    pub pid: Option<u32>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// The relays; the first is the baseline the others are compared with.
    pub sides: Vec<Side>,
    /// Client connections to each relay, kept for the whole run.
    pub connections: usize,
    /// Distinct metric names per connection.
    pub names: usize,
    /// Passes over the names, each in a new order; 1 keeps one order.
    pub passes: usize,
    /// With N > 0, names churn: each pass (in one order), one name in N
    /// is replaced by one never sent before, generated as the lines go
    /// out. 60 is 10% new names a minute at a 10 s interval.
    pub churn_every: usize,
    /// Lines per segment.
    pub lines: u64,
    /// Rounds measured (after one warm-up round that is not).
    pub rounds: usize,
    /// How long a segment may go without progress before its missing
    /// lines count as lost.
    pub settle: Duration,
    /// The ratio each round is held against in the summary.
    pub threshold: f64,
}

/// One segment: `lines` sent to one relay.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Which relay (index into the sides).
    pub side: usize,
    /// Lines sent.
    pub sent: u64,
    /// Lines its sink received.
    pub received: u64,
    /// From the first byte sent to the last line received.
    pub elapsed: Duration,
    /// The relay's CPU time meanwhile (10 ms resolution).
    pub cpu: Option<Duration>,
}

impl Segment {
    /// Lines received per second.
    pub fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What a comparison measured: `rounds[r][s]` is side `s` in round `r`.
#[derive(Debug, Clone)]
pub struct CompareReport {
    /// The relays' labels.
    pub labels: Vec<String>,
    /// Every measured segment, by round and side.
    pub rounds: Vec<Vec<Segment>>,
    /// The threshold from the options.
    pub threshold: f64,
}

/// The `q`-quantile of sorted `xs` (linear interpolation).
fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let at = q * (xs.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    xs[lo] + (xs[hi] - xs[lo]) * (at - lo as f64)
}

fn sorted(mut xs: Vec<f64>) -> Vec<f64> {
    xs.sort_by(f64::total_cmp);
    xs
}

impl CompareReport {
    /// Lines sent and not received, over every segment.
    pub fn lost(&self) -> u64 {
        self.rounds
            .iter()
            .flatten()
            .map(|s| s.sent.saturating_sub(s.received))
            .sum()
    }

    /// Side `side`'s rate over the baseline's, per round, sorted.
    pub fn ratios(&self, side: usize) -> Vec<f64> {
        sorted(
            self.rounds
                .iter()
                .map(|r| r[side].rate() / r[0].rate())
                .collect(),
        )
    }
}

impl std::fmt::Display for CompareReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (r, round) in self.rounds.iter().enumerate() {
            write!(f, "round={}", r + 1)?;
            for s in round {
                write!(f, " {}={:.2}M", self.labels[s.side], s.rate() / 1e6)?;
                if let Some(c) = s.cpu {
                    write!(
                        f,
                        "/{:.0}ns",
                        c.as_nanos() as f64 / s.received.max(1) as f64
                    )?;
                }
            }
            for s in &round[1..] {
                write!(
                    f,
                    " ratio_{}={:.3}",
                    self.labels[s.side],
                    s.rate() / round[0].rate()
                )?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "rounds={} lines_per_segment={} lost={}",
            self.rounds.len(),
            self.rounds.first().map_or(0, |r| r[0].sent),
            self.lost()
        )?;
        for (i, label) in self.labels.iter().enumerate() {
            let rates = sorted(self.rounds.iter().map(|r| r[i].rate()).collect());
            let ns = sorted(
                self.rounds
                    .iter()
                    .filter_map(|r| {
                        let s = &r[i];
                        s.cpu
                            .map(|c| c.as_nanos() as f64 / s.received.max(1) as f64)
                    })
                    .collect(),
            );
            write!(
                f,
                "side={label} median_rate={:.0} lines/s",
                quantile(&rates, 0.5)
            )?;
            if !ns.is_empty() {
                write!(f, " median_relay_ns_per_line={:.0}", quantile(&ns, 0.5))?;
            }
            if i > 0 {
                let r = self.ratios(i);
                write!(
                    f,
                    " ratio_to_{}: median={:.3} quartiles={:.3}-{:.3} min={:.3} max={:.3} rounds_at_or_above_{}={}/{}",
                    self.labels[0],
                    quantile(&r, 0.5),
                    quantile(&r, 0.25),
                    quantile(&r, 0.75),
                    r[0],
                    r[r.len() - 1],
                    self.threshold,
                    r.iter().filter(|&&x| x >= self.threshold).count(),
                    r.len()
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One relay's end of the bench: its sink and its client connections.
struct Rig {
    sink: Sink,
    conns: Vec<TcpStream>,
    payloads: Vec<std::sync::Arc<Vec<u8>>>,
    /// With churn, each connection's generator instead, carried from one
    /// segment to the next so a new name is never sent twice as new.
    churn: Vec<Option<Churn>>,
    pid: Option<u32>,
}

/// Lines of one connection whose names churn: pass `p` sends every slot
/// `i` once, in order, under its generation `(p + N - i % N) / N`, so each
/// pass one slot in `N` gets a name never seen before.
#[derive(Debug, Clone)]
pub struct Churn {
    conn: usize,
    names: usize,
    every: usize,
    pass: usize,
    slot: usize,
    buf: Vec<u8>,
}

impl Churn {
    /// A generator for connection `conn`'s `names` slots.
    pub fn new(conn: usize, names: usize, every: usize) -> Self {
        Churn {
            conn,
            names: names.max(1),
            every: every.max(1),
            pass: 0,
            slot: 0,
            buf: Vec::with_capacity(1 << 16),
        }
    }

    /// The next `n` lines, in a buffer reused from call to call.
    pub fn next_lines(&mut self, n: usize) -> &[u8] {
        use std::io::Write;
        self.buf.clear();
        for _ in 0..n {
            let i = self.slot;
            let generation = (self.pass + self.every - i % self.every) / self.every;
            let _ = writeln!(
                self.buf,
                "bench.c{}.host{:03}.metric{i:05}g{generation} {}.5 1700000000",
                self.conn,
                i % 100,
                i % 1000
            );
            self.slot += 1;
            if self.slot == self.names {
                (self.slot, self.pass) = (0, self.pass + 1);
            }
        }
        &self.buf
    }
}

impl Rig {
    /// Sends `lines` over its connections and waits for them at the sink.
    async fn segment(
        &mut self,
        side: usize,
        lines: u64,
        settle: Duration,
    ) -> std::io::Result<Segment> {
        let per_conn = lines / self.conns.len() as u64;
        let before = self
            .sink
            .received
            .load(std::sync::atomic::Ordering::Relaxed);
        let cpu_before = self.pid.and_then(cpu_time);
        let start = Instant::now();
        let mut senders = Vec::with_capacity(self.conns.len());
        let work = self
            .conns
            .drain(..)
            .zip(&self.payloads)
            .zip(&mut self.churn);
        for ((mut s, p), churn) in work {
            let p = p.clone();
            let mut churn = churn.take();
            senders.push(tokio::spawn(async move {
                match &mut churn {
                    Some(c) => {
                        let mut left = per_conn;
                        while left > 0 {
                            let n = left.min(1024);
                            s.write_all(c.next_lines(n as usize)).await?;
                            left -= n;
                        }
                    }
                    None => send_lines(&mut s, &p, per_conn).await?,
                }
                Ok::<_, std::io::Error>((s, churn))
            }));
        }
        for (s, slot) in senders.into_iter().zip(&mut self.churn) {
            let (conn, churn) = s.await.map_err(std::io::Error::other)??;
            self.conns.push(conn);
            *slot = churn;
        }
        let sent = per_conn * self.conns.len() as u64;
        let received = self.sink.wait_for(before + sent, settle).await - before;
        let cpu = cpu_since(cpu_before, self.pid);
        Ok(Segment {
            side,
            sent,
            received,
            elapsed: self.sink.last_rx().saturating_duration_since(start),
            cpu,
        })
    }
}

/// Runs the comparison.
pub async fn compare(opts: CompareOptions) -> std::io::Result<CompareReport> {
    let connections = opts.connections.max(1);
    let mut rigs = Vec::with_capacity(opts.sides.len());
    for side in &opts.sides {
        rigs.push(Rig {
            sink: Sink::bind(&side.sinks).await?,
            conns: Vec::new(),
            payloads: (0..connections)
                .map(|c| match opts.churn_every {
                    0 => std::sync::Arc::new(payload_shuffled(opts.names.max(1), c, opts.passes)),
                    _ => std::sync::Arc::new(Vec::new()),
                })
                .collect(),
            churn: (0..connections)
                .map(|c| {
                    (opts.churn_every > 0).then(|| Churn::new(c, opts.names, opts.churn_every))
                })
                .collect(),
            pid: side.pid,
        });
    }
    // Each relay connects to its sink, perhaps after a reconnect backoff.
    let deadline = Instant::now() + Duration::from_secs(60);
    for (rig, side) in rigs.iter_mut().zip(&opts.sides) {
        let mut primed = Instant::now() + Duration::from_secs(1);
        while rig.sink.accepted.load(std::sync::atomic::Ordering::Relaxed) < side.sinks.len() as u64
        {
            // A relay that connects only once it has data (carbon-c-relay)
            // gets a line now and then.
            if Instant::now() > primed {
                use tokio::io::AsyncWriteExt;
                let mut s = TcpStream::connect(side.target).await?;
                s.write_all(b"bench.prime 1 1700000000\n").await?;
                primed = Instant::now() + Duration::from_secs(1);
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "{} never connected to all its sinks {:?}",
                    side.label, side.sinks
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..connections {
            let s = TcpStream::connect(side.target).await?;
            s.set_nodelay(true)?;
            rig.conns.push(s);
        }
    }
    let mut rounds = Vec::with_capacity(opts.rounds);
    // Round 0 warms every relay up (connections, caches) and is not kept.
    for r in 0..=opts.rounds {
        let mut order: Vec<usize> = (0..rigs.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        let mut round: Vec<Option<Segment>> = vec![None; rigs.len()];
        for i in order {
            round[i] = Some(rigs[i].segment(i, opts.lines, opts.settle).await?);
        }
        if r > 0 {
            rounds.push(round.into_iter().flatten().collect());
        }
    }
    for rig in &mut rigs {
        for s in &mut rig.conns {
            let _ = s.shutdown().await;
        }
    }
    Ok(CompareReport {
        labels: opts.sides.iter().map(|s| s.label.clone()).collect(),
        rounds,
        threshold: opts.threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_replaces_one_name_in_n_each_pass() {
        let mut c = Churn::new(0, 120, 60);
        let names = |c: &mut Churn| -> Vec<String> {
            String::from_utf8(c.next_lines(120).to_vec())
                .unwrap()
                .lines()
                .map(|l| l.split(' ').next().unwrap().to_string())
                .collect()
        };
        let mut seen: std::collections::HashSet<String> = names(&mut c).into_iter().collect();
        assert_eq!(seen.len(), 120);
        for _ in 0..5 {
            let pass = names(&mut c);
            let new = pass.iter().filter(|n| seen.insert(n.to_string())).count();
            assert_eq!(new, 2, "one in 60 of 120 names is new each pass");
        }
        assert!(seen.iter().filter(|n| n.contains(".host000.")).count() >= 2);
    }

    #[test]
    fn quantiles_interpolate() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&xs, 0.5), 2.5);
        assert_eq!(quantile(&xs, 0.0), 1.0);
        assert_eq!(quantile(&xs, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.25), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    /// Two sinks standing in for relays that forward at once: the
    /// comparison sees both deliver everything, round after round.
    #[tokio::test]
    async fn every_round_measures_every_side() {
        let mut sides = Vec::new();
        for label in ["a", "b"] {
            // A "relay" that forwards each byte it gets to the bench's sink.
            let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let back = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let sink = back.local_addr().unwrap();
            drop(back);
            let target = front.local_addr().unwrap();
            tokio::spawn(async move {
                // Connect to the sink first, as a relay does.
                let out = loop {
                    match TcpStream::connect(sink).await {
                        Ok(s) => break s,
                        Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                };
                let out = std::sync::Arc::new(tokio::sync::Mutex::new(out));
                while let Ok((mut s, _)) = front.accept().await {
                    let out = out.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0; 65536];
                        // Forwards whole lines only, so lines from two
                        // connections never interleave.
                        let mut pending = Vec::new();
                        while let Ok(n) = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await {
                            if n == 0 {
                                break;
                            }
                            pending.extend_from_slice(&buf[..n]);
                            if let Some(end) = memchr::memrchr(b'\n', &pending) {
                                let whole: Vec<u8> = pending.drain(..=end).collect();
                                out.lock().await.write_all(&whole).await.unwrap();
                            }
                        }
                    });
                }
            });
            sides.push(Side {
                label: label.into(),
                target,
                sinks: vec![sink],
                pid: Some(std::process::id()),
            });
        }
        let report = compare(CompareOptions {
            sides,
            connections: 2,
            names: 100,
            passes: 3,
            churn_every: 0,
            lines: 1000,
            rounds: 3,
            settle: Duration::from_secs(10),
            threshold: 0.9,
        })
        .await
        .unwrap();
        assert_eq!(report.rounds.len(), 3);
        assert_eq!(report.lost(), 0);
        for round in &report.rounds {
            assert_eq!(round.iter().map(|s| s.side).collect::<Vec<_>>(), [0, 1]);
            assert!(round.iter().all(|s| s.sent == 1000 && s.received == 1000));
        }
        assert_eq!(report.ratios(1).len(), 3);
        let text = report.to_string();
        assert!(
            text.contains("side=b") && text.contains("ratio_to_a"),
            "{text}"
        );
    }
}
