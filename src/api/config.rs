//! `[admin]`: the admin port and the limits that protect it.

use serde::Deserialize;
use toml::Spanned;

/// `[admin]`: the HTTP port for the Seyren API, the web UI and `/metrics`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdminConfig {
    /// Address to listen on; `""` disables the admin port.
    pub listen: Spanned<String>,
    /// Where Seyren's REST API lives: `/api` as in Seyren's jar, or
    /// `/seyren/api` as under its Jetty setup. The UI is served at `/`.
    pub api_base_path: String,
    /// Bearer token the API and UI require (`Authorization: Bearer ..`);
    /// required when `listen` is not a loopback address, so alert rules
    /// are never writable by anyone on the network. Also from the
    /// `CARBONWATCH_API_TOKEN` variable.
    pub auth_token: String,
    /// PEM certificate chain; with `tls_key_file`, the port speaks HTTPS.
    pub tls_cert_file: String,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: String,
    /// Whether the UI shows graphs (Seyren's `GRAPHS_ENABLE`), reported
    /// by `/api/config`.
    pub graphs_enabled: bool,
    /// Bearer token for `/metrics` alone, for a Prometheus that should not
    /// hold the API's token. Without it `/metrics` follows `auth_token`.
    pub metrics_auth_token: String,
    /// Host names (with or without a port) the admin port answers to.
    /// Loopback names and addresses and the listen address are always
    /// allowed; any other `Host` is refused, which closes DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://grafana.example`) whose pages may write to the
    /// API. The UI's own origin is always allowed; a write with any other
    /// `Origin` is refused, which closes cross-site requests.
    pub allowed_origins: Vec<String>,
    /// Open admin connections at once; protects file descriptors, which
    /// the carbon ports need too.
    pub max_connections: usize,
    /// Time a client has to send a request's headers; closes slowloris.
    pub header_timeout_secs: u64,
    /// Close a connection that moved no byte for this long, in a request
    /// or between requests.
    pub idle_timeout_secs: u64,
    /// Largest request body; a larger one is refused with a JSON 413.
    pub max_body_bytes: usize,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Spanned::new(0..0, "127.0.0.1:8080".into()),
            api_base_path: "/api".into(),
            auth_token: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            graphs_enabled: true,
            metrics_auth_token: String::new(),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            max_connections: 256,
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_body_bytes: 1 << 20,
        }
    }
}
