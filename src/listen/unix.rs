//! Plaintext over a unix stream socket (carbon-c-relay's `proto unix`):
//! local clients without a TCP port. Connections count against
//! `max_connections` like TCP ones; the per-peer limit does not apply, as
//! every peer is this machine.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::UnixListener as TokioListener;
use tokio_util::sync::CancellationToken;

use crate::listen::plaintext::PlaintextDecoder;
use crate::listen::tcp::{serve, Decoder};
use crate::listen::ListenCtx;

/// A unix-socket listener for one protocol.
#[derive(Debug)]
pub struct UnixListener<D> {
    listener: TokioListener,
    path: PathBuf,
    decoder: PhantomData<fn() -> D>,
}

/// Plaintext lines over a unix socket.
pub type PlaintextUnixListener = UnixListener<PlaintextDecoder>;

impl<D: Decoder> UnixListener<D> {
    /// Binds `path`. A socket file left by a process that is gone is
    /// replaced; one that a live process still answers on is not.
    pub fn bind(path: &Path) -> std::io::Result<Self> {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process listens on it",
            ));
        }
        use std::os::unix::fs::FileTypeExt;
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            std::fs::remove_file(path)?;
        }
        Ok(UnixListener {
            listener: TokioListener::bind(path)?,
            path: path.to_path_buf(),
            decoder: PhantomData,
        })
    }

    /// Accepts until cancelled, then removes the socket file.
    pub async fn run(self, ctx: ListenCtx, token: CancellationToken) {
        tracing::info!(listener = "plaintext_unix", path = %self.path.display(), "Listening.");
        loop {
            let accepted = tokio::select! {
                _ = token.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let stream = match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(listener = "plaintext_unix", error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let stats = &ctx.relay.stats;
            let Ok(permit) = ctx.connections.clone().try_acquire_owned() else {
                stats.connections_refused.fetch_add(1, Relaxed);
                tracing::warn!(
                    listener = "plaintext_unix",
                    "max_connections reached; connection refused."
                );
                continue;
            };
            stats.connections.fetch_add(1, Relaxed);
            let (ctx2, token2) = (ctx.clone(), token.clone());
            ctx.tasks.spawn(async move {
                serve::<D, _>(stream, "unix", &ctx2, token2).await;
                ctx2.relay.stats.disconnects.fetch_add(1, Relaxed);
                drop(permit);
            });
        }
        let _ = std::fs::remove_file(&self.path);
    }
}
