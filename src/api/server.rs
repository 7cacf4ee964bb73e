//! The admin port's connection handling, HTTP and HTTPS alike: a cap on
//! open connections, a time limit for a request's headers, an idle limit
//! on every byte in or out, and a graceful close on shutdown. Each of
//! these closes a way for one client to hold the port (and the file
//! descriptors the carbon ports need) without sending real requests.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::AdminConfig;
use crate::stats::{Figure, Figures};

/// Why the admin port's TLS setup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {file}: {source}")]
    Pem {
        /// The file.
        file: String,
        /// What was wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate and key do not make a server configuration.
    #[error("invalid certificate or key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Connection counters of the admin port.
#[derive(Debug, Default)]
pub struct AdminStats {
    /// Connections refused at `max_connections`.
    pub refused: AtomicU64,
    /// Connections closed by the header or idle timeout.
    pub timed_out: AtomicU64,
}

impl Figures for AdminStats {
    fn figures(&self, out: &mut dyn FnMut(Figure<'_>)) {
        out(Figure::counter(
            "admin_connections_refused_total",
            self.refused.load(Relaxed),
        ));
        out(Figure::counter(
            "admin_connections_timed_out_total",
            self.timed_out.load(Relaxed),
        ));
    }
}

/// The limits one connection lives under.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// `[admin] header_timeout_secs`.
    pub header_timeout: Duration,
    /// `[admin] idle_timeout_secs`.
    pub idle_timeout: Duration,
}

impl ConnLimits {
    /// From `[admin]`.
    pub fn from_config(a: &AdminConfig) -> Self {
        ConnLimits {
            header_timeout: Duration::from_secs(a.header_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(a.idle_timeout_secs.max(1)),
        }
    }
}

/// The TLS acceptor for `[admin]`'s certificate, if it has one: read at
/// start-up so that a bad file stops carbonwatch with a message instead
/// of leaving the port dead.
pub fn tls_acceptor(a: &AdminConfig) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    if a.tls_cert_file.is_empty() {
        return Ok(None);
    }
    fn pem(file: &str) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + '_ {
        move |source| TlsError::Pem {
            file: file.to_string(),
            source,
        }
    }
    let certs = CertificateDer::pem_file_iter(Path::new(&a.tls_cert_file))
        .map_err(pem(&a.tls_cert_file))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&a.tls_cert_file))?;
    let key =
        PrivateKeyDer::from_pem_file(Path::new(&a.tls_key_file)).map_err(pem(&a.tls_key_file))?;
    // One crypto provider for the process: ring, as reqwest and lettre use.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// Serves `app` on `listener` until cancelled, then lets requests in
/// flight finish for up to 5 s.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    max_connections: usize,
    limits: ConnLimits,
    stats: Arc<AdminStats>,
    token: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let tasks = TaskTracker::new();
    let addr: Option<SocketAddr> = listener.local_addr().ok();
    tracing::info!(addr = ?addr, tls = tls.is_some(), "Admin HTTP listening.");
    loop {
        let accepted = tokio::select! {
            _ = token.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "Admin accept failed.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats.refused.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "Admin max_connections reached; connection refused.");
            continue;
        };
        let (app, tls, stats, token) = (app.clone(), tls.clone(), stats.clone(), token.clone());
        tasks.spawn(async move {
            connection(stream, app, tls, limits, &stats, token).await;
            drop(permit);
        });
    }
    tasks.close();
    tasks.wait().await;
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: ConnLimits,
    stats: &AdminStats,
    token: CancellationToken,
) {
    let activity = Arc::new(AtomicU64::new(0));
    let clock = tokio::time::Instant::now();
    let io = Activity {
        inner: stream,
        last: activity.clone(),
        clock,
    };
    match tls {
        None => http(io, app, limits, stats, &activity, clock, token).await,
        Some(acceptor) => {
            // The handshake is part of the header budget.
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                Ok(Ok(io)) => http(io, app, limits, stats, &activity, clock, token).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "Admin TLS handshake failed."),
                Err(_) => {
                    stats.timed_out.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

async fn http<I>(
    io: I,
    app: Router,
    limits: ConnLimits,
    stats: &AdminStats,
    activity: &AtomicU64,
    clock: tokio::time::Instant,
    token: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = idle_watch(activity, clock, limits.idle_timeout);
    tokio::pin!(idle);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if e.is_timeout() {
                    stats.timed_out.fetch_add(1, Relaxed);
                }
                tracing::debug!(error = %e, "Admin connection ended.");
            }
        }
        _ = &mut idle => {
            stats.timed_out.fetch_add(1, Relaxed);
            tracing::debug!("Admin connection idle; closed.");
        }
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.as_mut()).await;
        }
    }
}

/// Completes once the connection moved no byte for `limit`.
async fn idle_watch(activity: &AtomicU64, clock: tokio::time::Instant, limit: Duration) {
    loop {
        let last = Duration::from_millis(activity.load(Relaxed));
        let deadline = clock + last + limit;
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep_until(deadline).await;
    }
}

/// A stream that records when it last moved a byte, in ms since `clock`.
struct Activity<S> {
    inner: S,
    last: Arc<AtomicU64>,
    clock: tokio::time::Instant,
}

impl<S> Activity<S> {
    fn touch(&self) {
        self.last
            .store(self.clock.elapsed().as_millis() as u64, Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
