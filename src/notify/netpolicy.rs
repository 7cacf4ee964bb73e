//! Where the test endpoint may send. `PUT .../subscriptions/{sid}/test`
//! makes carbonwatch connect to a URL an API user chose; unchecked, that
//! probes the host's own services or a cloud metadata address. Targets
//! are checked against `[notify] test_deny_networks` (loopback and
//! link-local by default) and `test_allow_networks` twice: the URL's
//! literal address before sending, and every address a name resolves to,
//! inside the HTTP client's resolver, so a name cannot rebind between the
//! check and the connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::notify::NotifyConfig;

/// The allow and deny lists.
#[derive(Debug, Clone, Default)]
pub struct NetPolicy {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

/// A target the policy refuses.
#[derive(Debug, thiserror::Error)]
#[error("{0} is in a network test notifications may not reach ([notify] test_deny_networks)")]
pub struct Denied(pub IpAddr);

impl NetPolicy {
    /// From `[notify]`; entries that do not parse were refused by the
    /// config's validation.
    pub fn new(cfg: &NotifyConfig) -> Self {
        let parse = |v: &[String]| v.iter().filter_map(|n| n.parse().ok()).collect();
        NetPolicy {
            deny: parse(&cfg.test_deny_networks),
            allow: parse(&cfg.test_allow_networks),
        }
    }

    /// Whether `ip` may be reached.
    pub fn permits(&self, ip: IpAddr) -> bool {
        // An IPv4 address written as IPv6 is judged as IPv4.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|n| n.contains(&ip)) || !self.deny.iter().any(|n| n.contains(&ip))
    }

    /// Checks a URL whose host is an address; names are checked by
    /// [`PolicyResolver`] when they are resolved.
    pub fn check_url(&self, url: &str) -> Result<(), Denied> {
        let Ok(url) = url::Url::parse(url) else {
            return Ok(()); // the request itself will fail with a message
        };
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.permits(ip) {
            Ok(())
        } else {
            Err(Denied(ip))
        }
    }
}

/// A resolver that drops the addresses the policy refuses, and fails when
/// none is left.
#[derive(Debug, Clone)]
pub struct PolicyResolver(pub Arc<NetPolicy>);

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = format!("{}:0", name.as_str());
            let found: Vec<SocketAddr> = tokio::net::lookup_host(host).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip()))
                .collect();
            if allowed.is_empty() {
                let ip = found.first().map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
                return Err(Box::new(Denied(ip)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_link_local_are_denied_by_default() {
        let p = NetPolicy::new(&NotifyConfig::default());
        for bad in [
            "127.0.0.1",
            "127.8.0.1",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!p.permits(bad.parse().unwrap()), "{bad}");
        }
        for ok in ["10.1.2.3", "192.0.2.7", "2001:db8::1"] {
            assert!(p.permits(ok.parse().unwrap()), "{ok}");
        }
        assert!(p.check_url("http://127.0.0.1:8080/x").is_err());
        assert!(p.check_url("http://[::1]/x").is_err());
        assert!(
            p.check_url("http://hooks.example/x").is_ok(),
            "names go to the resolver"
        );
        let open = NetPolicy::new(&NotifyConfig {
            test_allow_networks: vec!["127.0.0.0/8".into()],
            ..NotifyConfig::default()
        });
        assert!(open.permits("127.0.0.1".parse().unwrap()));
        assert!(!open.permits("::1".parse().unwrap()));
    }
}
