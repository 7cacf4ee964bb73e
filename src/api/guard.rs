//! What the admin port accepts before any handler runs. With no token
//! (the loopback default) the browser on the same machine is the threat:
//! any page it opens may send requests here. So:
//! - `Host` must name this service (loopback, the listen address, or
//!   `[admin] allowed_hosts`): a page on a rebinding DNS name is refused;
//! - a write must not carry a foreign `Origin`, and a write with a body
//!   must be `application/json`, which a cross-site page cannot send
//!   without a CORS preflight, which is never granted;
//! - every error leaves as JSON `{"message": ..}`, axum's own rejections
//!   (413 past `max_body_bytes`, 415, 422) included.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::AdminConfig;
use crate::api::ApiError;

/// The names and origins the admin port answers to.
#[derive(Debug)]
pub struct Guard {
    /// Lower-case host names, each with or without a port.
    hosts: Vec<String>,
    origins: Vec<String>,
    listen_ip: Option<IpAddr>,
    /// With a token set and no `allowed_hosts`, the token is the guard and
    /// any `Host` is served (a reverse proxy's name, say).
    check_host: bool,
}

impl Guard {
    /// From `[admin]` and the bound listen address.
    pub fn new(a: &AdminConfig, listen: Option<SocketAddr>) -> Self {
        Guard {
            hosts: a
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            origins: a
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
            listen_ip: listen.map(|l| l.ip()).filter(|ip| !ip.is_unspecified()),
            check_host: a.auth_token.is_empty() || !a.allowed_hosts.is_empty(),
        }
    }

    /// Whether `host` (a `Host` header value) names this service.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        if self.hosts.contains(&host) {
            return true;
        }
        let name = strip_port(&host);
        if name == "localhost" || self.hosts.iter().any(|h| h == name) {
            return true;
        }
        match name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => ip.is_loopback() || Some(ip) == self.listen_ip,
            Err(_) => false,
        }
    }

    /// Whether a write carrying `origin` may proceed: the request's own
    /// origin (same `Host`) or an allowed one.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        match (authority, host) {
            (Some(a), Some(h)) => a == h.trim().to_ascii_lowercase(),
            _ => false,
        }
    }
}

/// `name:port` or `[v6]:port` without the port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    ApiError {
        status,
        message: message.into(),
    }
    .into_response()
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// Whether the request may carry a body: a length above zero, or chunks.
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(n) => n > 0,
        None => headers.contains_key(header::TRANSFER_ENCODING),
    }
}

/// The admin port's gate; see the module documentation.
pub async fn check(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if guard.check_host && !host.is_some_and(|h| guard.host_allowed(h)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this Host is not one the admin port answers to: add it to [admin] allowed_hosts",
        );
    }
    if is_write(req.method()) {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let allowed = origin.to_str().is_ok_and(|o| guard.origin_allowed(o, host));
            if !allowed {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "cross-site writes are refused: add the page's origin to [admin] allowed_origins",
                );
            }
        }
        if has_body(headers) && !is_json(headers) {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a request body must be JSON: Content-Type: application/json",
            );
        }
    }
    next.run(req).await
}

/// Marks an error response whose text body is Seyren's contract (the test
/// endpoint's `Notifying failed '..'`), which [`json_errors`] leaves as is.
#[derive(Debug, Clone, Copy)]
pub struct SeyrenText;

/// Turns every error that is not JSON yet (axum's own rejections: 413,
/// 415, 422, 405) into `{"message": ..}` with the same status.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if resp.extensions().get::<SeyrenText>().is_some() {
        return resp;
    }
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    // Error bodies from axum are one short line.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = Response::from_parts(
        parts,
        Body::from(serde_json::json!({ "message": message }).to_string()),
    );
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    out.headers_mut().remove(header::CONTENT_LENGTH);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_origins() {
        let a = AdminConfig {
            allowed_hosts: vec!["alerts.example".into(), "proxy:8443".into()],
            allowed_origins: vec!["https://grafana.example/".into()],
            ..AdminConfig::default()
        };
        let g = Guard::new(&a, Some("127.0.0.1:8080".parse().unwrap()));
        for ok in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "127.9.9.9",
            "alerts.example:80",
            "proxy:8443",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "proxy:9999",
            "10.0.0.1",
            "",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        assert!(g.origin_allowed("http://127.0.0.1:8080", Some("127.0.0.1:8080")));
        assert!(g.origin_allowed("https://grafana.example", Some("x")));
        assert!(!g.origin_allowed("http://evil.example", Some("127.0.0.1:8080")));
        assert!(!g.origin_allowed("null", Some("127.0.0.1:8080")));
    }
}
