//! One destination: its queue, its counters, and the writer tasks that move
//! batches from the queue to a TCP connection.
//!
//! A writer connects (with exponential backoff), takes batches, coalesces
//! them up to `max_write_bytes`, and writes them with one `write_all`. A
//! failed write puts the batches back at the head of the queue and
//! reconnects, so data is delivered at least once; the lines re-sent are
//! counted in `requeued_lines`.
//!
//! With `spool_dir` set, a destination has a disk [`Spool`]. It takes
//! what a full queue cannot, and everything while the destination is down
//! (its queue moves there when it fails), so that a crash loses only what
//! memory held for a destination that was up. The writers replay it, oldest first and alternating with the memory queue so that
//! new data keeps flowing, and commit each batch only once it was written;
//! shutdown puts what it could not deliver there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::codec::{line, pickle};
use crate::relay::queue::{Batch, BatchQueue};
use crate::relay::spool::{Spool, SpoolError, SpoolLimits};
use crate::relay::{RelayConfig, WhenFull};
use crate::route::{DestinationSpec, Protocol};
use crate::stats::{Figure, Figures};

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestinationStats {
    /// Lines written to the socket.
    pub sent_lines: AtomicU64,
    /// Lines put back after a failed write (and so possibly sent twice).
    pub requeued_lines: AtomicU64,
    /// Lines dropped for this destination, any reason.
    pub dropped_lines: AtomicU64,
    /// Lines written to the disk spool.
    pub spooled_lines: AtomicU64,
    /// Lines replayed from the spool and written to the destination.
    pub replayed_lines: AtomicU64,
    /// Spool writes that failed (disk full, I/O error).
    pub spool_errors: AtomicU64,
    /// Lines per second replayed from the spool, over the syncer's last
    /// interval (`f64` bits).
    pub replay_rate_bits: AtomicU64,
    /// Connections established (a reconnect counts again).
    pub connects: AtomicU64,
    /// Failed connects and broken connections.
    pub failures: AtomicU64,
    /// Times a client's reader waited for room in this destination's full
    /// queue (carbon-c-relay's `stalls`; here the wait is the
    /// backpressure, and nothing is dropped for it).
    pub stalls: AtomicU64,
}

impl DestinationStats {
    /// Lines per second replayed from the spool, lately.
    pub fn replay_rate(&self) -> f64 {
        f64::from_bits(self.replay_rate_bits.load(Relaxed))
    }
}

/// A destination's figures, without its name: `/metrics` labels them with
/// `destination`, the self-metrics put them under
/// `destinations.<host_port>`.
impl Figures for Destination {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        let st = &self.stats;
        let n = |c: &AtomicU64| c.load(Relaxed);
        out(Figure::counter("destination_sent_total", n(&st.sent_lines)).carbon("sent"));
        out(
            Figure::counter("destination_requeued_total", n(&st.requeued_lines)).carbon("requeued"),
        );
        out(Figure::counter("destination_dropped_total", n(&st.dropped_lines)).carbon("dropped"));
        out(Figure::counter("destination_failures_total", n(&st.failures)).carbon("failures"));
        out(Figure::counter("destination_stalls_total", n(&st.stalls)).carbon("stalls"));
        out(Figure::gauge("destination_queued_lines", self.queue.lines() as f64).carbon("queued"));
        out(Figure::gauge(
            "destination_queued_bytes",
            self.queue.bytes() as f64,
        ));
        let spooled = Figure::counter("destination_spooled_total", n(&st.spooled_lines));
        let replayed = Figure::counter("destination_replayed_total", n(&st.replayed_lines));
        match &self.spool {
            None => {
                out(spooled);
                out(replayed);
            }
            Some(spool) => {
                out(spooled.carbon("spool.spooled"));
                out(replayed.carbon("spool.replayed"));
                let sp = spool.lock().unwrap_or_else(|p| p.into_inner());
                out(Figure::gauge("destination_spool_bytes", sp.bytes() as f64)
                    .carbon("spool.bytes"));
                out(
                    Figure::gauge("destination_spool_segments", sp.segments() as f64)
                        .carbon("spool.segments"),
                );
                out(Figure::counter(
                    "destination_spool_corrupt_regions_total",
                    sp.damage.corrupt_regions,
                ));
                out(Figure::counter(
                    "destination_spool_quarantined_total",
                    sp.damage.quarantined,
                ));
                out(Figure::counter(
                    "destination_spool_errors_total",
                    n(&st.spool_errors),
                ));
                out(
                    Figure::gauge("destination_spool_oldest_age_seconds", sp.oldest_age_secs())
                        .carbon("spool.oldestAgeSeconds"),
                );
                out(Figure::gauge(
                    "destination_spool_replay_lines_per_second",
                    st.replay_rate(),
                )
                .carbon("spool.replayRate"));
            }
        }
        let up = if self.is_healthy() { 1.0 } else { 0.0 };
        out(Figure::gauge("destination_up", up));
    }
}

/// A destination with its queue.
#[derive(Debug)]
pub struct Destination {
    /// Where it is.
    pub spec: DestinationSpec,
    /// Its bounded queue.
    pub queue: BatchQueue,
    /// Its counters.
    pub stats: DestinationStats,
    /// Cleared while the destination cannot be reached, so `any_of` and
    /// `failover` clusters route around it.
    healthy: AtomicBool,
    /// Bumped, relay-wide, whenever a destination's health changes:
    /// connections that remember `any_of` and `failover` answers forget
    /// them then.
    health_epoch: Arc<std::sync::atomic::AtomicU64>,
    /// Cancelled to stop its writers at once (end of the shutdown grace
    /// period, or removal on reload after draining).
    stop: CancellationToken,
    /// Its disk spool, with `spool_dir` set.
    pub spool: Option<std::sync::Mutex<Spool>>,
    spool_when_full: WhenFull,
}

impl Destination {
    /// A destination with an empty queue sized by `cfg`.
    pub fn new(
        spec: DestinationSpec,
        cfg: &RelayConfig,
        spool_total: &Arc<std::sync::atomic::AtomicU64>,
        health_epoch: &Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let spool = (!cfg.spool_dir.is_empty()).then(|| {
            // One directory per destination, named after its address.
            let mut name: String = spec
                .address()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
                .collect();
            if spec.protocol == Protocol::PlaintextUdp {
                name.push_str("-udp");
            }
            let limits = SpoolLimits {
                max_bytes: cfg.spool_max_bytes_per_destination,
                segment_bytes: cfg.spool_segment_bytes,
                fsync_interval: Duration::from_millis(cfg.spool_fsync_interval_ms),
                ..SpoolLimits::default()
            };
            let dir = std::path::Path::new(&cfg.spool_dir).join(name);
            match Spool::open(&dir, limits) {
                Ok(mut s) => {
                    s.share_total(spool_total.clone(), cfg.spool_max_total_bytes);
                    if !s.is_empty() {
                        tracing::info!(destination = %spec.address(), bytes = s.bytes(), segments = s.segments(), "Replaying the spool left by an earlier run.");
                    }
                    Some(std::sync::Mutex::new(s))
                }
                Err(e) => {
                    tracing::error!(destination = %spec.address(), dir = %dir.display(), error = %e, "Cannot open the spool; running without one.");
                    None
                }
            }
        });
        Destination {
            spec,
            queue: BatchQueue::new(cfg.queue_max_lines, cfg.queue_max_bytes),
            stats: DestinationStats::default(),
            healthy: AtomicBool::new(true),
            health_epoch: health_epoch.clone(),
            stop: CancellationToken::new(),
            spool: spool.flatten(),
            spool_when_full: cfg.spool_when_full,
        }
    }

    fn spool(&self) -> Option<std::sync::MutexGuard<'_, Spool>> {
        self.spool
            .as_ref()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The next spooled batch to replay, if any is ready.
    fn next_spooled(&self) -> Option<Batch> {
        let mut s = self.spool()?;
        if s.is_empty() {
            return None;
        }
        match s.next_batch() {
            Ok(b) => b.map(|(b, _)| b),
            Err(e) => {
                tracing::error!(destination = %self.spec.address(), error = %e, "Reading the spool failed.");
                None
            }
        }
    }

    /// Fsyncs the spool every `interval`, outside its lock and off the
    /// runtime's workers, until the destination is stopped or dropped;
    /// also measures the replay rate over each interval. Tracked by
    /// `tasks`, which shutdown waits for once the writers are done.
    pub fn spawn_spool_syncer(self: &Arc<Self>, tasks: &TaskTracker, interval: Duration) {
        if self.spool.is_none() {
            return;
        }
        let me = Arc::downgrade(self);
        let stop = self.stop.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
            let mut last = (std::time::Instant::now(), 0u64);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(d) = me.upgrade() else { return };
                let replayed = d.stats.replayed_lines.load(Relaxed);
                let secs = last.0.elapsed().as_secs_f64();
                if secs > 0.0 {
                    let rate = replayed.saturating_sub(last.1) as f64 / secs;
                    d.stats.replay_rate_bits.store(rate.to_bits(), Relaxed);
                }
                last = (std::time::Instant::now(), replayed);
                let work = d.spool().map(|mut s| s.sync_work(false));
                let addr = d.spec.address();
                drop(d);
                match work {
                    Some(Ok(files)) if !files.is_empty() => {
                        let r = tokio::task::spawn_blocking(move || {
                            files.iter().try_for_each(|f| f.sync_data())
                        })
                        .await;
                        if let Ok(Err(e)) = r {
                            tracing::error!(destination = %addr, error = %e, "Syncing the spool failed.");
                        }
                    }
                    Some(Err(e)) => {
                        tracing::error!(destination = %addr, error = %e, "Syncing the spool failed.")
                    }
                    _ => {}
                }
            }
        });
    }

    /// Marks a replayed batch delivered.
    fn commit_spooled(&self) {
        if let Some(mut s) = self.spool() {
            if let Err(e) = s.commit() {
                tracing::error!(destination = %self.spec.address(), error = %e, "Freeing spooled data failed.");
            }
        }
    }

    /// Spools a batch that found the memory queue full. Returns the lines
    /// evicted to make room (`spool_when_full = "drop_oldest"`); gives the
    /// batch back when there is no spool or it cannot take it (full under
    /// `block`, or a disk error), for the caller's policy.
    pub fn try_spool(&self, b: Batch) -> Result<u64, Batch> {
        let Some(mut s) = self.spool() else {
            return Err(b);
        };
        let mut evicted = 0;
        loop {
            match s.append(&b, crate::unix_now_ms() as u64) {
                Ok(()) => {
                    self.stats
                        .spooled_lines
                        .fetch_add(u64::from(b.lines), Relaxed);
                    if evicted > 0 {
                        self.stats.dropped_lines.fetch_add(evicted, Relaxed);
                    }
                    return Ok(evicted);
                }
                Err(SpoolError::Full(_)) if self.spool_when_full == WhenFull::DropOldest => {
                    match s.evict_oldest() {
                        Ok(Some(n)) => evicted += n,
                        Ok(None) | Err(_) => return Err(b),
                    }
                }
                Err(SpoolError::Full(_)) => return Err(b),
                Err(e) => {
                    // Logged on the first failure and every 100th after.
                    if self.stats.spool_errors.fetch_add(1, Relaxed) % 100 == 0 {
                        tracing::error!(destination = %self.spec.address(), error = %e, "Spooling failed; holding the data in memory.");
                    }
                    return Err(b);
                }
            }
        }
    }

    /// Writes what is left in the queue to the spool: at shutdown, once
    /// the writers have stopped (`sync` then fsyncs at once), and when the
    /// destination goes down (the syncer task fsyncs on its interval).
    /// Returns the lines spooled; what the spool could not take stays
    /// queued.
    pub fn spill(&self, sync: bool) -> u64 {
        let Some(mut s) = self.spool() else {
            return 0;
        };
        if !sync && self.queue.is_empty() {
            return 0;
        }
        let now = crate::unix_now_ms() as u64;
        let mut spooled = 0;
        let mut batches = self.queue.take_all().into_iter();
        for b in batches.by_ref() {
            match s.append(&b, now) {
                Ok(()) => spooled += u64::from(b.lines),
                Err(e) => {
                    if sync {
                        tracing::error!(destination = %self.spec.address(), error = %e, "Spooling at shutdown failed.");
                    }
                    self.queue.push_front(b);
                    break;
                }
            }
        }
        for b in batches {
            self.queue.push_overflow(b);
        }
        if sync {
            if let Err(e) = s.sync() {
                tracing::error!(destination = %self.spec.address(), error = %e, "Syncing the spool failed.");
            }
        }
        self.stats.spooled_lines.fetch_add(spooled, Relaxed);
        spooled
    }

    /// Whether it is taking data.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Stops its writers without waiting for the queue to drain.
    pub fn abort(&self) {
        self.stop.cancel();
    }

    /// Writes the queue to the destination until the queue is closed and
    /// drained, or [`Destination::abort`] is called.
    pub async fn run_writer(self: Arc<Self>, cfg: RelayConfig) {
        if self.spec.protocol == Protocol::PlaintextUdp {
            return self.run_udp_writer(cfg).await;
        }
        let addr = self.spec.address();
        let mut backoff = Duration::from_millis(cfg.reconnect_min_ms);
        let max_backoff = Duration::from_millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms));
        loop {
            let connect = tokio::time::timeout(
                Duration::from_secs(cfg.connect_timeout_secs),
                TcpStream::connect(&addr),
            );
            let stream = tokio::select! {
                _ = self.stop.cancelled() => return,
                r = connect => r,
            };
            let connected = match stream {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("connect timed out".to_string()),
            };
            let mut stream = match connected {
                Ok(s) => s,
                Err(why) => {
                    self.fail(&addr, &why);
                    // Shutting down with nothing in memory: what the spool
                    // holds waits on disk for the next run, so waiting out
                    // the grace period for a dead peer would gain nothing.
                    if self.queue.is_finished() {
                        return;
                    }
                    if self.wait(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            self.set_healthy(true);
            self.stats.connects.fetch_add(1, Relaxed);
            backoff = Duration::from_millis(cfg.reconnect_min_ms);
            tracing::info!(destination = %addr, "Connected.");
            match self.pump(&mut stream, &cfg).await {
                Pump::Done => {
                    let _ = stream.shutdown().await;
                    return;
                }
                Pump::Broken(e) => self.fail(&addr, &e.to_string()),
            }
        }
    }

    /// UDP: one datagram a line from a connected socket. A send that
    /// fails (the peer's port answered with ICMP unreachable, no route)
    /// puts the batch's unsent lines back and reconnects after a backoff.
    async fn run_udp_writer(self: Arc<Self>, cfg: RelayConfig) {
        let addr = self.spec.address();
        let mut backoff = Duration::from_millis(cfg.reconnect_min_ms);
        let max_backoff = Duration::from_millis(cfg.reconnect_max_ms.max(cfg.reconnect_min_ms));
        loop {
            let socket = match udp_connect(&addr).await {
                Ok(s) => s,
                Err(e) => {
                    self.fail(&addr, &e.to_string());
                    if self.queue.is_finished() || self.wait(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(max_backoff);
                    continue;
                }
            };
            self.set_healthy(true);
            self.stats.connects.fetch_add(1, Relaxed);
            backoff = Duration::from_millis(cfg.reconnect_min_ms);
            loop {
                let next = tokio::select! {
                    _ = self.stop.cancelled() => return,
                    b = self.queue.pop() => b,
                };
                let Some(batch) = next else { return };
                match send_lines(&socket, &batch.data).await {
                    Ok(()) => {
                        self.stats
                            .sent_lines
                            .fetch_add(u64::from(batch.lines), Relaxed);
                    }
                    Err((sent, e)) => {
                        let data = batch.data.slice(sent..);
                        let lines = memchr::memchr_iter(b'\n', &data).count() as u32;
                        let rest = Batch { data, lines };
                        self.stats
                            .sent_lines
                            .fetch_add(u64::from(batch.lines - rest.lines), Relaxed);
                        self.stats
                            .requeued_lines
                            .fetch_add(u64::from(rest.lines), Relaxed);
                        self.queue.push_front(rest);
                        self.fail(&addr, &e.to_string());
                        if self.wait(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(max_backoff);
                        break;
                    }
                }
            }
        }
    }

    fn set_healthy(&self, up: bool) {
        if self.healthy.swap(up, Relaxed) != up {
            self.health_epoch.fetch_add(1, Relaxed);
        }
    }

    /// Sleeps for a backoff; true when stopped meanwhile.
    async fn wait(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => true,
            _ = tokio::time::sleep(d) => self.stop.is_cancelled(),
        }
    }

    /// Marks the destination down and moves its memory queue to the
    /// spool, where it survives a crash; new data goes there too until it
    /// is back (see `Dispatcher::offer`).
    fn fail(&self, addr: &str, why: &str) {
        self.set_healthy(false);
        self.spill(false);
        let n = self.stats.failures.fetch_add(1, Relaxed);
        // Log the first failure and then every 100th, not every retry.
        if n % 100 == 0 {
            tracing::warn!(destination = %addr, error = %why, failures = n + 1, "Destination unreachable; retrying.");
        }
    }

    async fn pump(&self, stream: &mut TcpStream, cfg: &RelayConfig) -> Pump {
        let mut out = BytesMut::with_capacity(cfg.max_write_bytes);
        let mut taken: Vec<Batch> = Vec::new();
        let mut encoder = pickle::Encoder::new(cfg.pickle_max_points);
        let write_timeout = Duration::from_secs(cfg.write_timeout_secs.max(1));
        let mut last_was_spooled = false;
        loop {
            // Replay the spool, taking turns with the memory queue.
            if !last_was_spooled || self.queue.is_empty() {
                if let Some(b) = self.next_spooled() {
                    last_was_spooled = true;
                    if let Err(e) = peer_still_open(stream) {
                        self.hand_back_spooled(b);
                        return Pump::Broken(e);
                    }
                    let lines = b.lines;
                    let payload = self.encode(std::slice::from_ref(&b), &mut encoder, &mut out);
                    match self.write(stream, &payload, write_timeout).await {
                        Ok(()) => {
                            self.stats.sent_lines.fetch_add(u64::from(lines), Relaxed);
                            self.stats
                                .replayed_lines
                                .fetch_add(u64::from(lines), Relaxed);
                            self.commit_spooled();
                            continue;
                        }
                        Err(e) => {
                            self.hand_back_spooled(b);
                            if self.stop.is_cancelled() {
                                return Pump::Done;
                            }
                            return Pump::Broken(e);
                        }
                    }
                }
            }
            last_was_spooled = false;
            // Carbon backends never write to us, so readable means the peer
            // closed (or sent junk to discard). Noticing the close while
            // idle, and just before writing, keeps a batch from vanishing
            // into a socket whose peer is gone.
            let first = tokio::select! {
                _ = self.stop.cancelled() => return Pump::Done,
                b = self.queue.pop() => b,
                r = stream.readable() => {
                    if let Err(e) = r.map_err(LinkError::Io).and_then(|()| peer_still_open(stream)) {
                        return Pump::Broken(e);
                    }
                    continue;
                }
            };
            if let Err(e) = peer_still_open(stream) {
                if let Some(b) = first {
                    self.queue.push_front(b);
                }
                return Pump::Broken(e);
            }
            let Some(first) = first else {
                return Pump::Done;
            };
            let mut bytes = first.data.len();
            taken.push(first);
            while bytes < cfg.max_write_bytes {
                match self.queue.try_pop() {
                    Some(b) => {
                        bytes += b.data.len();
                        taken.push(b);
                    }
                    None => break,
                }
            }
            let payload = self.encode(&taken, &mut encoder, &mut out);
            // On abort the batches in hand stay undelivered: they are put
            // back below so the final count includes them.
            match self.write(stream, &payload, write_timeout).await {
                Ok(()) => {
                    let lines: u64 = taken.iter().map(|b| u64::from(b.lines)).sum();
                    self.stats.sent_lines.fetch_add(lines, Relaxed);
                    taken.clear();
                }
                Err(e) => {
                    for b in taken.drain(..).rev() {
                        self.stats
                            .requeued_lines
                            .fetch_add(u64::from(b.lines), Relaxed);
                        self.queue.push_front(b);
                    }
                    if self.stop.is_cancelled() {
                        return Pump::Done;
                    }
                    return Pump::Broken(e);
                }
            }
        }
    }
}

impl Destination {
    fn encode(
        &self,
        batches: &[Batch],
        encoder: &mut pickle::Encoder,
        out: &mut BytesMut,
    ) -> bytes::Bytes {
        out.clear();
        match self.spec.protocol {
            Protocol::Plaintext if batches.len() == 1 => batches[0].data.clone(),
            Protocol::Plaintext | Protocol::PlaintextUdp => {
                batches.iter().for_each(|b| out.extend_from_slice(&b.data));
                out.split().freeze()
            }
            Protocol::Pickle => {
                batches
                    .iter()
                    .for_each(|b| encode_pickle(&b.data, encoder, out));
                encoder.finish(out);
                out.split().freeze()
            }
        }
    }

    async fn write(
        &self,
        stream: &mut TcpStream,
        payload: &[u8],
        limit: Duration,
    ) -> Result<(), LinkError> {
        let write = tokio::time::timeout(limit, stream.write_all(payload));
        tokio::select! {
            _ = self.stop.cancelled() => Err(LinkError::Stopped),
            r = write => match r {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(LinkError::Io(e)),
                Err(_) => Err(LinkError::WriteTimedOut),
            },
        }
    }

    /// A replayed batch whose write failed moves to the head of the
    /// memory queue (and out of the spool), to be retried like any other.
    fn hand_back_spooled(&self, b: Batch) {
        self.stats
            .requeued_lines
            .fetch_add(u64::from(b.lines), Relaxed);
        self.commit_spooled();
        self.queue.push_front(b);
    }
}

/// A UDP socket connected to `addr` (`host:port`, resolved now).
async fn udp_connect(addr: &str) -> std::io::Result<tokio::net::UdpSocket> {
    let target = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::other("the name resolves to no address"))?;
    let local: std::net::SocketAddr = if target.is_ipv6() {
        "[::]:0".parse().expect("an address")
    } else {
        "0.0.0.0:0".parse().expect("an address")
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends each line of `data` as a datagram; on failure, how many bytes
/// went out in whole lines, and why.
async fn send_lines(
    socket: &tokio::net::UdpSocket,
    data: &[u8],
) -> Result<(), (usize, std::io::Error)> {
    let mut at = 0;
    while at < data.len() {
        let end = memchr::memchr(b'\n', &data[at..]).map_or(data.len(), |i| at + i + 1);
        if let Err(e) = socket.send(&data[at..end]).await {
            return Err((at, e));
        }
        at = end;
    }
    Ok(())
}

/// Reads whatever the peer sent without blocking: an error if it closed.
fn peer_still_open(stream: &TcpStream) -> Result<(), LinkError> {
    let mut buf = [0u8; 512];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return Err(LinkError::Closed),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(LinkError::Io(e)),
        }
    }
}

/// Why a connection to a destination was given up.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// The destination is being stopped.
    #[error("stopped")]
    Stopped,
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    Closed,
    /// A write made no progress for `write_timeout_secs`.
    #[error("write timed out")]
    WriteTimedOut,
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

enum Pump {
    Done,
    Broken(LinkError),
}

/// Re-encodes canonical lines as pickle points.
fn encode_pickle(lines: &[u8], enc: &mut pickle::Encoder, out: &mut BytesMut) {
    let opts = line::ParseOptions {
        normalize_tags: false,
        now: 0,
    };
    for l in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // Queued lines were produced by our own formatter, so they parse.
        if let Ok(m) = line::parse_line(l, &opts) {
            enc.push(&m.name, m.timestamp, m.value, out);
        }
    }
}
