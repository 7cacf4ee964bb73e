//! Stage 3, **route**: decides where each metric goes.
//!
//! A [`Router`] is built from the config and swapped whole on reload. It
//! holds ordered rules; each rule matches a name by glob, regex or prefix,
//! may rewrite it (for this and later rules), sends it to clusters, and may
//! stop the walk. Clusters pick destinations by their type (see
//! [`cluster`]), and the consistent hashes are bit-identical to carbon's and
//! carbon-c-relay's (see [`hash`]).

pub mod aggregate;
pub mod cluster;
pub mod glob;
pub mod hash;
pub mod index;
pub mod memo;
pub mod replace;
pub mod tags;

use std::borrow::Cow;

use regex::Regex;

pub use aggregate::Aggregation;
pub use cluster::{Cluster, ClusterType};
pub use glob::Glob;
pub use replace::Replacement;

/// Index of a destination in [`Router::destinations`].
pub type DestId = usize;

/// The wire protocol towards a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// `name value timestamp\n` lines.
    #[default]
    Plaintext,
    /// Length-prefixed protocol-2 pickle frames.
    Pickle,
    /// `name value timestamp\n` lines over UDP, one datagram a line, as
    /// carbon-c-relay's `proto udp` sends them: nothing is acknowledged,
    /// so nothing is retried.
    PlaintextUdp,
}

/// Where a destination is, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DestinationSpec {
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Plaintext or pickle towards it (carbon-c-relay's `proto`).
    pub protocol: Protocol,
}

impl DestinationSpec {
    /// `host:port`, bracketing IPv6 addresses.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// How a rule recognises a name.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `match = "*"`: everything, without looking.
    All,
    /// A Graphite glob.
    Glob(Glob),
    /// An unanchored regular expression.
    Regex(Regex),
    /// Several unanchored regular expressions, any of which matches
    /// (carbon-c-relay's `match a b c`); the first that matches supplies
    /// the groups for `hash_key`.
    AnyRegex(Vec<Regex>),
    /// A literal prefix.
    Prefix(String),
}

impl Matcher {
    fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::All => true,
            Matcher::Glob(g) => g.is_match(name),
            Matcher::Regex(r) => r.is_match(name),
            Matcher::AnyRegex(rs) => rs.iter().any(|r| r.is_match(name)),
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
        }
    }

    /// The regex whose groups a template refers to: the rule's own, or the
    /// first of several that matches `name`.
    pub fn regex_for(&self, name: &str) -> Option<&Regex> {
        match self {
            Matcher::Regex(r) => Some(r),
            Matcher::AnyRegex(rs) => rs.iter().find(|r| r.is_match(name)),
            _ => None,
        }
    }
}

/// One routing rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What names it applies to.
    pub matcher: Matcher,
    /// Rename matching metrics: the regex (the rule's own for `regex` rules)
    /// and its replacement (see [`replace`]).
    pub rewrite: Option<(Regex, Replacement)>,
    /// carbon-c-relay's `route using`: the hashing clusters of this rule
    /// place the metric by this template applied to the name, not by the
    /// name itself. Needs a regex matcher.
    pub hash_key: Option<Replacement>,
    /// carbon-c-relay's `validate`: the value and timestamp must match,
    /// or this rule sends nowhere (and ends the walk when it has no
    /// clusters).
    pub validate: Option<Validate>,
    /// An aggregation rule: the index into [`Router::aggregates`] of what
    /// it feeds. Such a rule sends the metric itself nowhere (its clusters
    /// are the aggregates').
    pub aggregate: Option<usize>,
    /// Indices into [`Router::clusters`].
    pub to: Vec<usize>,
    /// Whether matching ends the walk.
    pub stop: bool,
}

/// A rule's check of the data part of a line.
#[derive(Debug, Clone)]
pub struct Validate {
    /// Applied to `value timestamp` as received.
    pub regex: Regex,
    /// Log the refused line (c-relay's `else log`) rather than only count
    /// it (`else drop`).
    pub log: bool,
}

/// The output of [`Router::route`] for one metric, reused across metrics.
#[derive(Debug, Default)]
pub struct Routes {
    /// Each destination with the name to send: `None` for the name as
    /// received, or an index into `names` for a rewritten one.
    pub targets: Vec<(DestId, Option<usize>)>,
    /// Rewritten names.
    pub names: Vec<String>,
    /// Whether a blackhole cluster took the metric.
    pub blackholed: bool,
    /// The aggregation rules that took the metric: `(rule, name)`, the
    /// name as in `targets`.
    pub aggregated: Vec<(usize, Option<usize>)>,
    /// When `explain` is set: `(cluster, member)` for each target, in
    /// order, for `carbonwatch route`.
    pub explained: Vec<(usize, usize)>,
    /// Record `explained` (off on the hot path).
    pub explain: bool,
    /// Walk past aggregation rules (for aggregates that must not be
    /// aggregated again).
    pub skip_aggregates: bool,
    /// The line's `value timestamp`, filled in by the caller when the
    /// router [`Router::validates`].
    pub data: String,
    /// A `validate` refused the line: `Some(log)`.
    pub refused: Option<bool>,
    /// Whether the answer followed the destinations' health (`any_of`,
    /// `failover`), so it must be forgotten when health changes.
    volatile: bool,
    /// Whether the answer depended on the line's data (`validate`), so it
    /// must not be remembered at all.
    data_dependent: bool,
    picked: Vec<usize>,
}

impl Routes {
    fn clear(&mut self) {
        self.targets.clear();
        self.names.clear();
        self.explained.clear();
        self.aggregated.clear();
        self.blackholed = false;
        self.volatile = false;
        self.data_dependent = false;
        self.refused = None;
    }
}

/// The routing table: rules, clusters and the destinations they use.
#[derive(Debug, Clone, Default)]
pub struct Router {
    /// Rules in config order.
    pub rules: Vec<Rule>,
    /// Clusters referenced by the rules.
    pub clusters: Vec<Cluster>,
    /// Every destination any cluster uses, each once.
    pub destinations: Vec<DestinationSpec>,
    /// Cleanse each name the way carbon-c-relay's dispatcher does before
    /// the first rule (see [`crelay_cleanse`]), so a c-relay config sends
    /// what c-relay sends.
    pub cleanse: bool,
    /// Some rule has a `validate`: the caller fills [`Routes::data`].
    pub validates: bool,
    /// What the aggregation rules feed, indexed by [`Rule::aggregate`].
    pub aggregates: Vec<Aggregation>,
}

impl Router {
    /// Whether a connection should remember this table's answers per name
    /// ([`memo::RouteMemo`]): when a rule sends to a cluster that hashes
    /// names, or several rules match by pattern, answering costs more than
    /// looking it up.
    pub fn worth_remembering(&self) -> bool {
        let hashing = self
            .rules
            .iter()
            .flat_map(|r| &r.to)
            .any(|&c| self.clusters[c].hashes());
        let patterns = self
            .rules
            .iter()
            .filter(|r| {
                matches!(
                    r.matcher,
                    Matcher::Glob(_) | Matcher::Regex(_) | Matcher::AnyRegex(_)
                )
            })
            .count();
        // An aggregation rule's own answers are never remembered, but the
        // names it does not take skip its pattern.
        let aggregating = self.rules.iter().any(|r| {
            r.aggregate.is_some() && !matches!(r.matcher, Matcher::All | Matcher::Prefix(_))
        });
        hashing || patterns >= 4 || aggregating
    }

    /// Routes one metric name. `healthy` reports whether a destination is
    /// taking data, for `any_of` and `failover`.
    pub fn route(&self, name: &str, healthy: &dyn Fn(DestId) -> bool, out: &mut Routes) {
        out.clear();
        let mut current: Cow<'_, str> = Cow::Borrowed(name);
        let mut name_ref: Option<usize> = None;
        if self.cleanse {
            if let Cow::Owned(clean) = crelay_cleanse(name) {
                out.names.push(clean.clone());
                name_ref = Some(0);
                current = Cow::Owned(clean);
            }
        }
        for (ri, rule) in self.rules.iter().enumerate() {
            if !rule.matcher.is_match(&current) {
                continue;
            }
            if let Some((re, replacement)) = &rule.rewrite {
                if let Some(renamed) = replacement.apply(re, &current) {
                    if renamed != current {
                        out.names.push(renamed.clone());
                        name_ref = Some(out.names.len() - 1);
                        current = Cow::Owned(renamed);
                    }
                }
            }
            if rule.aggregate.is_some() {
                if out.skip_aggregates {
                    continue;
                }
                out.aggregated.push((ri, name_ref));
                if rule.stop {
                    break;
                }
                continue;
            }
            if let Some(v) = &rule.validate {
                // The answer depends on more than the name.
                out.data_dependent = true;
                if !v.regex.is_match(&out.data) {
                    // As carbon-c-relay: this rule sends nowhere, and the
                    // walk ends if the rule has no clusters or stops anyway.
                    out.refused = Some(v.log);
                    if rule.to.is_empty() || self.stops_at(rule) {
                        break;
                    }
                    continue;
                }
            }
            // Only for a rule that sends: a refused line needs no key.
            let key: Option<String> = rule.hash_key.as_ref().and_then(|template| {
                let re = rule.matcher.regex_for(&current)?;
                template.apply(re, &current)
            });
            let key = key.as_deref().unwrap_or(&current);
            self.send(&rule.to, key, name_ref, healthy, out);
            if self.stops_at(rule) {
                break;
            }
        }
    }

    /// Routes an aggregate of `aggregation` straight to its `send_to`
    /// clusters, cleansed first as every name is (carbon-c-relay's stub
    /// route, which runs before every other rule).
    pub fn route_to(
        &self,
        name: &str,
        aggregation: usize,
        healthy: &dyn Fn(DestId) -> bool,
        out: &mut Routes,
    ) {
        out.clear();
        let mut name_ref = None;
        let mut key = Cow::Borrowed(name);
        if self.cleanse {
            if let Cow::Owned(clean) = crelay_cleanse(name) {
                out.names.push(clean.clone());
                name_ref = Some(0);
                key = Cow::Owned(clean);
            }
        }
        let to = &self.aggregates[aggregation].send_to;
        self.send(to, &key, name_ref, healthy, out);
    }

    /// Adds the members `clusters` pick for `key` to `out`.
    fn send(
        &self,
        clusters: &[usize],
        key: &str,
        name_ref: Option<usize>,
        healthy: &dyn Fn(DestId) -> bool,
        out: &mut Routes,
    ) {
        for &c in clusters {
            let cluster = &self.clusters[c];
            if cluster.is_blackhole() {
                out.blackholed = true;
                continue;
            }
            out.picked.clear();
            out.volatile |= cluster.follows_health();
            cluster.select(key, healthy, &mut out.picked);
            for &m in &out.picked {
                let d = cluster.member(m);
                if !out.targets.contains(&(d, name_ref)) {
                    out.targets.push((d, name_ref));
                    if out.explain {
                        out.explained.push((c, m));
                    }
                }
            }
        }
    }

    /// `stop`, or a blackhole among the clusters (which implies it).
    fn stops_at(&self, rule: &Rule) -> bool {
        rule.stop || rule.to.iter().any(|&c| self.clusters[c].is_blackhole())
    }
}

/// A name as carbon-c-relay's dispatcher passes it on (`dispatch_connection`
/// with the default allowed characters `-_:#`): bytes other than ASCII
/// letters, digits, `.` and those become `_`; a run of dots becomes one;
/// dots at the start go, and one at the end before the value goes; from
/// the first `;` on (the tags) everything is kept as it is.
pub fn crelay_cleanse(name: &str) -> Cow<'_, str> {
    let (bare, tags) = match name.find(';') {
        Some(i) => name.split_at(i),
        None => (name, ""),
    };
    let b = bare.as_bytes();
    let allowed =
        |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_' | b':' | b'#');
    let clean = b.iter().all(|&c| allowed(c))
        && !b.starts_with(b".")
        && (!tags.is_empty() || !b.ends_with(b"."))
        && memchr::memmem::find(b, b"..").is_none();
    if clean {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len());
    for &c in b {
        if c == b'.' {
            if out.is_empty() || out.ends_with('.') {
                continue;
            }
            out.push('.');
        } else {
            out.push(if allowed(c) { c as char } else { '_' });
        }
    }
    if tags.is_empty() && out.ends_with('.') {
        out.pop();
    }
    out.push_str(tags);
    Cow::Owned(out)
}

/// The key carbon-c-relay hashes for a metric: the name before the first
/// `;`, cleansed the way its dispatcher cleanses names (bytes outside
/// `[A-Za-z0-9._:#-]` become `_`, runs of dots collapse, outer dots go).
/// For the ordinary names of live traffic this is the name itself.
pub fn crelay_key(name: &str) -> Cow<'_, [u8]> {
    let tagged = name.contains(';');
    let bare = name.split(';').next().unwrap_or_default().as_bytes();
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'#');
    let clean = bare.iter().all(|&b| allowed(b))
        && !bare.starts_with(b".")
        && (tagged || !bare.ends_with(b"."))
        && !bare.windows(2).any(|w| w == b"..");
    if clean {
        return Cow::Borrowed(bare);
    }
    let mut out = Vec::with_capacity(bare.len());
    for &b in bare {
        if b == b'.' {
            if out.is_empty() || out.last() == Some(&b'.') {
                continue;
            }
            out.push(b'.');
        } else {
            out.push(if allowed(b) { b } else { b'_' });
        }
    }
    if !tagged && out.last() == Some(&b'.') {
        out.pop();
    }
    Cow::Owned(out)
}

impl Router {
    /// `carbonwatch route`: the name, then each destination as
    /// `host:port` or `host:port:instance`, in the order chosen. `data`
    /// is the line's `value timestamp`, for `validate` rules.
    pub fn explain(&self, name: &str, data: &str) -> String {
        let mut routes = Routes {
            explain: true,
            data: data.to_string(),
            ..Routes::default()
        };
        self.route(name, &|_| true, &mut routes);
        let mut line = name.to_string();
        for &(c, m) in &routes.explained {
            let cluster = &self.clusters[c];
            line.push(' ');
            line.push_str(&self.destinations[cluster.member(m)].address());
            if let Some(i) = cluster.instance(m) {
                line.push(':');
                line.push_str(i);
            }
        }
        line
    }
}

/// Why a destination or a cluster could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// `[v6addr]` without `]:port`.
    #[error("{0:?}: expected [address]:port")]
    BracketedAddress(String),
    /// No `:port`.
    #[error("{0:?}: expected host:port[:instance]")]
    NoPort(String),
    /// The port is not a number in range.
    #[error("{spec:?}: port {port:?} is not a number from 0 to 65535")]
    BadPort {
        /// The destination as written.
        spec: String,
        /// Its port field.
        port: String,
    },
    /// Nothing before the port.
    #[error("{0:?}: empty host")]
    EmptyHost(String),
    /// Two ring members with one `(host, instance)`, which carbon refuses.
    #[error("destination instance ({host}, {instance}) is configured twice; carbon's ring keys on host and instance, not port")]
    DuplicateInstance {
        /// The host.
        host: String,
        /// The instance, `None` when absent.
        instance: String,
    },
    /// A cluster other than a blackhole with no members.
    #[error("a cluster needs at least one destination")]
    NoDestinations,
}

/// Parses `host:port[:instance]` as carbon's `parseDestination` does,
/// including `[v6addr]:port[:instance]`.
pub fn parse_destination(s: &str) -> Result<(String, u16, Option<String>), RouteError> {
    let s = s.trim();
    let (host, rest) = if let Some(stripped) = s.strip_prefix('[') {
        let close = stripped
            .rfind("]:")
            .ok_or_else(|| RouteError::BracketedAddress(s.to_string()))?;
        (&stripped[..close], &stripped[close + 2..])
    } else {
        s.split_once(':')
            .ok_or_else(|| RouteError::NoPort(s.to_string()))?
    };
    let (port, instance) = match rest.split_once(':') {
        Some((p, i)) => (p, Some(i.to_string())),
        None => (rest, None),
    };
    let port = port.parse::<u16>().map_err(|_| RouteError::BadPort {
        spec: s.to_string(),
        port: port.to_string(),
    })?;
    if host.is_empty() {
        return Err(RouteError::EmptyHost(s.to_string()));
    }
    Ok((host.to_string(), port, instance.filter(|i| !i.is_empty())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crelay_key_cuts_tags_and_cleanses() {
        assert_eq!(&*crelay_key("a.b;t=v"), b"a.b");
        assert_eq!(&*crelay_key("caf\u{e9}.x"), b"caf__.x");
        assert_eq!(&*crelay_key(".a..b."), b"a.b");
        assert!(matches!(crelay_key("plain.name"), Cow::Borrowed(_)));
    }

    #[test]
    fn destinations_parse_like_carbon() {
        assert_eq!(
            parse_destination("10.0.0.1:2003:a").unwrap(),
            ("10.0.0.1".into(), 2003, Some("a".into()))
        );
        assert_eq!(
            parse_destination("h:2004").unwrap(),
            ("h".into(), 2004, None)
        );
        assert_eq!(
            parse_destination("[::1]:2003:x").unwrap(),
            ("::1".into(), 2003, Some("x".into()))
        );
        assert!(parse_destination("nohost").is_err());
        assert!(parse_destination("h:99999").is_err());
    }

    fn router(rules: Vec<Rule>, clusters: Vec<Cluster>, n: usize) -> Router {
        let destinations = (0..n)
            .map(|i| DestinationSpec {
                host: format!("d{i}"),
                port: 1,
                protocol: Protocol::Plaintext,
            })
            .collect();
        Router {
            rules,
            clusters,
            destinations,
            cleanse: false,
            validates: false,
            aggregates: Vec::new(),
        }
    }

    fn forward(name: &str, members: Vec<DestId>) -> Cluster {
        Cluster::new(name.into(), ClusterType::Forward, 1, true, &[], members).unwrap()
    }

    #[test]
    fn rules_walk_rewrite_and_stop() {
        let re = Regex::new(r"^old\.(.*)$").unwrap();
        let rules = vec![
            Rule {
                matcher: Matcher::Regex(re.clone()),
                rewrite: Some((re.clone(), Replacement::parse("new.${1}", &re).unwrap())),
                hash_key: None,
                validate: None,
                aggregate: None,
                to: vec![0],
                stop: false,
            },
            Rule {
                matcher: Matcher::Prefix("new.".into()),
                rewrite: None,
                hash_key: None,
                validate: None,
                aggregate: None,
                to: vec![1],
                stop: true,
            },
            Rule {
                matcher: Matcher::All,
                rewrite: None,
                hash_key: None,
                validate: None,
                aggregate: None,
                to: vec![0],
                stop: false,
            },
        ];
        let r = router(rules, vec![forward("a", vec![0]), forward("b", vec![1])], 2);
        let mut out = Routes::default();
        r.route("old.x", &|_| true, &mut out);
        assert_eq!(out.targets, vec![(0, Some(0)), (1, Some(0))]);
        assert_eq!(out.names, vec!["new.x".to_string()]);
        r.route("other", &|_| true, &mut out);
        assert_eq!(out.targets, vec![(0, None)]);
    }

    /// carbon-c-relay's `validate`: a refusal skips the rule's clusters,
    /// and ends the walk when the rule has none or stops.
    #[test]
    fn validate_refuses_by_value_and_timestamp() {
        let v = |re: &str| {
            Some(Validate {
                regex: Regex::new(re).unwrap(),
                log: false,
            })
        };
        let rule = |validate, to: Vec<usize>, stop| Rule {
            matcher: Matcher::All,
            rewrite: None,
            hash_key: None,
            validate,
            aggregate: None,
            to,
            stop,
        };
        let rules = vec![
            rule(v("^[0-9]+ "), vec![], false),
            rule(v("^1 "), vec![0], false),
            rule(None, vec![1], false),
        ];
        let mut r = router(rules, vec![forward("a", vec![0]), forward("b", vec![1])], 2);
        r.validates = true;
        let mut out = Routes::default();
        let mut go = |data: &str| {
            out.data = data.into();
            r.route("m", &|_| true, &mut out);
            (out.targets.clone(), out.refused)
        };
        assert_eq!(go("1 5"), (vec![(0, None), (1, None)], None));
        assert_eq!(go("2 5"), (vec![(1, None)], Some(false)));
        assert_eq!(go("x 5"), (vec![], Some(false)));
    }

    #[test]
    fn failover_and_any_of_skip_unhealthy_members() {
        let fo = Cluster::new(
            "f".into(),
            ClusterType::Failover,
            1,
            true,
            &[],
            vec![0, 1, 2],
        )
        .unwrap();
        let any =
            Cluster::new("a".into(), ClusterType::AnyOf, 1, true, &[], vec![0, 1, 2]).unwrap();
        let mut out = Vec::new();
        fo.select("m", &|d| d != 0, &mut out);
        assert_eq!(out, vec![1]);
        out.clear();
        any.select("m", &|_| true, &mut out);
        let usual = out[0];
        out.clear();
        any.select("m", &|d| d != usual, &mut out);
        assert_ne!(out[0], usual);
    }
}
