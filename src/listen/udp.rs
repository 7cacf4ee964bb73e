//! Plaintext over UDP. Each datagram holds whole lines; as in carbon, the
//! last line needs no `\n`. UDP cannot push back, so a batch that finds its
//! queue full is dropped and counted as `queue_full_udp`.

use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::codec::ParseOptions;
use crate::listen::{take_line, ListenCtx};
use crate::stats::DropReason;

/// The plaintext UDP listener (carbon's port 2003/udp).
#[derive(Debug)]
pub struct PlaintextUdpListener {
    socket: UdpSocket,
}

impl PlaintextUdpListener {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(PlaintextUdpListener {
            socket: UdpSocket::bind(addr).await?,
        })
    }

    /// The address bound, with port 0 resolved.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives until cancelled.
    pub async fn run(self, ctx: ListenCtx, token: CancellationToken) {
        tracing::info!(listener = "plaintext_udp", addr = ?self.local_addr().ok(), "Listening.");
        let max = ctx.limits.max_datagram_bytes;
        // One byte more than allowed, so truncation can be seen.
        let mut buf = vec![0u8; max + 1];
        let mut dispatcher = ctx.relay.dispatcher();
        loop {
            let received = tokio::select! {
                _ = token.cancelled() => break,
                r = self.socket.recv_from(&mut buf) => r,
            };
            let (n, peer) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive failed.");
                    continue;
                }
            };
            if n > max {
                dispatcher.counts.dropped[DropReason::DatagramTooLong as usize] += 1;
                dispatcher.flush_nowait();
                continue;
            }
            let opts = ParseOptions {
                normalize_tags: ctx.limits.normalize_tags,
                now: crate::unix_now(),
            };
            dispatcher.refresh();
            let peer = peer.to_string();
            for line in buf[..n].split(|&b| b == b'\n') {
                if line.is_empty() || line == b"\r" {
                    continue;
                }
                take_line(
                    line,
                    ctx.limits.max_line_bytes,
                    &opts,
                    &mut dispatcher,
                    &peer,
                    &ctx.sampler,
                );
            }
            dispatcher.flush_nowait();
        }
        dispatcher.flush_final();
    }
}
