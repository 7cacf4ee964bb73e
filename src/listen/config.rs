//! `[listen]`: the carbon ports and the limits that protect them.

use serde::Deserialize;
use toml::Spanned;

/// `[listen]`: the carbon ports.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ListenConfig {
    /// Plaintext over TCP; `""` disables it.
    pub plaintext_tcp: Spanned<String>,
    /// Plaintext over UDP; `""` disables it.
    pub plaintext_udp: Spanned<String>,
    /// Plaintext over a unix stream socket at this path; `""` (the
    /// default) disables it.
    pub plaintext_unix: String,
    /// Pickle over TCP; `""` disables it.
    pub pickle_tcp: Spanned<String>,
    /// Upper bound on open TCP client connections across listeners;
    /// protects file descriptors and memory from a connection storm.
    pub max_connections: usize,
    /// Open TCP connections one client address may hold; keeps one host
    /// (or an attacker) from taking every slot of `max_connections`.
    pub max_connections_per_peer: usize,
    /// Close a TCP client that sent nothing for this long; reclaims
    /// connections of clients that vanished without a FIN. 0 disables.
    pub idle_timeout_secs: u64,
    /// The idle timeout while more than three quarters of
    /// `max_connections` are open, so idle clients make room for live ones
    /// instead of locking them out.
    pub idle_timeout_under_pressure_secs: u64,
    /// Longest accepted plaintext line (carbon's is 16384); caps the
    /// memory one client can make a connection buffer grow to.
    pub max_line_bytes: usize,
    /// Largest accepted pickle frame (carbon's is 1 MiB); caps the memory
    /// and decode work of one frame.
    pub max_pickle_frame_bytes: usize,
    /// How many times its own size a pickle frame may decode to (names
    /// plus a fixed cost per item). Honest frames decode to less than
    /// their size; this refuses memo bombs, one name referenced a million
    /// times, before they are materialised.
    pub max_pickle_expansion: usize,
    /// Largest UDP datagram read; longer ones are truncated by the kernel,
    /// detected, and dropped whole.
    pub max_datagram_bytes: usize,
    /// Rewrite tagged names into carbon's normalised form before routing.
    pub normalize_tags: bool,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            plaintext_tcp: Spanned::new(0..0, "0.0.0.0:2003".into()),
            plaintext_udp: Spanned::new(0..0, "0.0.0.0:2003".into()),
            plaintext_unix: String::new(),
            pickle_tcp: Spanned::new(0..0, "0.0.0.0:2004".into()),
            max_connections: 4096,
            max_connections_per_peer: 1024,
            idle_timeout_secs: 600,
            idle_timeout_under_pressure_secs: 10,
            max_line_bytes: 16384,
            max_pickle_frame_bytes: 1 << 20,
            max_pickle_expansion: 8,
            max_datagram_bytes: 65535,
            normalize_tags: false,
        }
    }
}
