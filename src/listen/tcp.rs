//! The connection loop shared by the plaintext and pickle listeners, over
//! TCP and unix sockets.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::{TcpListener as TokioListener, TcpStream, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::listen::ListenConfig;
use crate::listen::{ListenCtx, RejectSampler};
use crate::relay::Dispatcher;

/// The most one read asks for. A busy connection's buffer grows to this,
/// doubling from [`READ_START_BYTES`] while reads fill it.
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// What a connection's first read asks for. An idle connection holds no
/// buffer at all: it is allocated when data is ready and given back when
/// everything in it was consumed, so memory follows traffic, not the
/// number of open connections.
const READ_START_BYTES: usize = 16 * 1024;

/// Turns a byte stream into dispatched metrics.
pub trait Decoder: Send + 'static {
    /// A decoder for one connection.
    fn new(limits: &ListenConfig) -> Self;

    /// Consumes complete units (lines, frames) from the front of `buf`.
    /// Returns true if it stopped early because a batch is ready to flush;
    /// the caller flushes and calls again.
    fn decode(
        &mut self,
        buf: &mut BytesMut,
        out: &mut Dispatcher,
        now: i64,
        peer: &str,
        sampler: &RejectSampler,
    ) -> bool;

    /// Called at end of stream with what is left in `buf`.
    fn finish(&mut self, buf: &mut BytesMut, out: &mut Dispatcher);
}

/// What a connection reads from: a TCP or a unix stream socket.
pub trait Stream: Send + Sync + 'static {
    /// Reads what is ready without waiting.
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize>;
    /// Waits until a read may make progress.
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send;
}

impl Stream for TcpStream {
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize> {
        TcpStream::try_read_buf(self, buf)
    }
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        TcpStream::readable(self)
    }
}

impl Stream for UnixStream {
    fn try_read_buf(&self, buf: &mut BytesMut) -> std::io::Result<usize> {
        UnixStream::try_read_buf(self, buf)
    }
    fn readable(&self) -> impl std::future::Future<Output = std::io::Result<()>> + Send {
        UnixStream::readable(self)
    }
}

/// A TCP listener for one protocol.
#[derive(Debug)]
pub struct TcpListener<D> {
    listener: TokioListener,
    name: &'static str,
    decoder: PhantomData<fn() -> D>,
}

impl<D: Decoder> TcpListener<D> {
    /// Binds `addr` (port 0 picks a free port). `name` labels logs.
    pub async fn bind(addr: SocketAddr, name: &'static str) -> std::io::Result<Self> {
        let listener = TokioListener::bind(addr).await?;
        Ok(TcpListener {
            listener,
            name,
            decoder: PhantomData,
        })
    }

    /// The address bound, with port 0 resolved.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until cancelled; each connection runs as a tracked task.
    pub async fn run(self, ctx: ListenCtx, token: CancellationToken) {
        let addr = self.local_addr().ok();
        tracing::info!(listener = self.name, addr = ?addr, "Listening.");
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = self.name, error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let stats = &ctx.relay.stats;
            let Some(slot) = ctx.admit_peer(peer.ip()) else {
                stats.connections_refused.fetch_add(1, Relaxed);
                stats.connections_refused_per_peer.fetch_add(1, Relaxed);
                tracing::debug!(listener = self.name, %peer, "max_connections_per_peer reached; connection refused.");
                continue;
            };
            let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                stats.connections_refused.fetch_add(1, Relaxed);
                tracing::warn!(listener = self.name, %peer, "max_connections reached; connection refused.");
                continue;
            };
            stats.connections.fetch_add(1, Relaxed);
            let (ctx2, token2) = (ctx.clone(), token.clone());
            ctx.tasks.spawn(async move {
                serve::<D, _>(stream, &peer.to_string(), &ctx2, token2).await;
                ctx2.relay.stats.disconnects.fetch_add(1, Relaxed);
                drop((permit, slot));
            });
        }
    }
}

/// How long a connection waits with an empty buffer before giving it
/// back: short enough that idle connections hold nothing, long enough that
/// a client's pauses between writes do not cost an allocation each.
const BUFFER_RELEASE_AFTER: Duration = Duration::from_secs(1);

/// `at + d`, saturating at a century ahead.
fn far(at: tokio::time::Instant, d: Duration) -> tokio::time::Instant {
    at.checked_add(d)
        .unwrap_or_else(|| at + Duration::from_secs(100 * 365 * 86_400))
}

/// Makes room for a read of `chunk` bytes.
fn grow(buf: &mut BytesMut, chunk: usize) {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
}

/// Reads one connection until it ends, idles out or the token is
/// cancelled, dispatching what it decodes.
pub(crate) async fn serve<D: Decoder, S: Stream>(
    stream: S,
    peer: &str,
    ctx: &ListenCtx,
    token: CancellationToken,
) {
    let peer_s = peer;
    let mut decoder = D::new(&ctx.limits);
    let mut dispatcher = ctx.relay.dispatcher();
    let mut buf = BytesMut::new();
    let mut chunk = READ_START_BYTES;
    // Readiness was just reported: read even with no buffer yet.
    let mut woken = false;
    // When the connection last ran out of input, while it waits.
    let mut idle_since: Option<tokio::time::Instant> = None;
    loop {
        // A connection in flow reads straight away; under load the next
        // read is ready at once, and the dispatcher may hold some of what
        // it has back for a fuller batch. When the client pauses, it goes.
        let mut read = None;
        if woken || buf.capacity() > 0 || dispatcher.holds_back() {
            woken = false;
            grow(&mut buf, chunk);
            match stream.try_read_buf(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if dispatcher.holds_back() {
                        dispatcher.on_idle();
                    }
                }
                r => {
                    // `try_read` spends no cooperative budget: without this
                    // a client whose data is always ready would keep its
                    // worker from every other task (the admin port once
                    // waited a minute behind one).
                    tokio::task::consume_budget().await;
                    // A read that took half of what was asked for finds a
                    // busy socket: ask for more next time.
                    if matches!(r, Ok(n) if n >= chunk / 2) {
                        chunk = (chunk * 2).min(READ_CHUNK_BYTES);
                    }
                    idle_since = None;
                    read = Some(r);
                }
            }
        }
        let read = match read {
            Some(r) => r,
            None => {
                let now = tokio::time::Instant::now();
                let since = *idle_since.get_or_insert(now);
                // One timer per wait: the idle deadline, or sooner the
                // moment to give an empty buffer back (a pause between a
                // client's writes keeps it; a longer idleness does not),
                // or the next look at whether pressure began (idle
                // connections notice it without a shared wake-up).
                let deadline = far(since, ctx.idle_timeout());
                let release = (buf.is_empty() && buf.capacity() > 0)
                    .then(|| since + BUFFER_RELEASE_AFTER)
                    .filter(|&at| at < deadline);
                let wake = far(now, ctx.pressure_timeout())
                    .min(deadline)
                    .min(release.unwrap_or(deadline));
                let waited = tokio::select! {
                    _ = token.cancelled() => break,
                    r = tokio::time::timeout_at(wake, stream.readable()) => r,
                };
                match waited {
                    Ok(Ok(())) => {
                        woken = true;
                        idle_since = None;
                        continue;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %peer_s, error = %e, "Read failed; closing.");
                        break;
                    }
                    Err(_) => {
                        let now = tokio::time::Instant::now();
                        if release.is_some_and(|at| now >= at) {
                            buf = BytesMut::new();
                            chunk = READ_START_BYTES;
                        }
                        // Asked again: pressure may have begun meanwhile.
                        if now < far(since, ctx.idle_timeout()) {
                            continue;
                        }
                        if ctx.under_pressure() {
                            ctx.relay
                                .stats
                                .idle_closed_under_pressure
                                .fetch_add(1, Relaxed);
                        }
                        tracing::debug!(peer = %peer_s, "Idle timeout; closing.");
                        break;
                    }
                }
            }
        };
        match read {
            Ok(0) => {
                decoder.finish(&mut buf, &mut dispatcher);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(peer = %peer_s, error = %e, "Read failed; closing.");
                break;
            }
        }
        let now = crate::unix_now();
        dispatcher.refresh();
        loop {
            let more = decoder.decode(&mut buf, &mut dispatcher, now, peer_s, &ctx.sampler);
            tokio::select! {
                // A shutdown while blocked on a full queue must not hang.
                _ = token.cancelled() => break,
                _ = dispatcher.flush() => {}
            }
            if !more || token.is_cancelled() {
                break;
            }
        }
        if token.is_cancelled() {
            break;
        }
    }
    dispatcher.flush_final();
}
