//! The TOML config: a raw serde tree ([`RawConfig`]) that mirrors the file,
//! and [`Config`], the validated form that holds a built [`Router`].
//!
//! Every problem is reported with the file, the line and the key; semantic
//! checks (unknown cluster names, bad globs, duplicate ring keys) are all
//! collected, not just the first.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

mod locate;
mod ranges;

use crate::alert::AlertingConfig;
use crate::api::AdminConfig;
use crate::check::model::Check;
use crate::listen::ListenConfig;
use crate::notify::{NotifyConfig, SmtpConfig};
use crate::poll::GraphiteConfig;
use crate::relay::{RelayConfig, StatsConfig};
use crate::route::hash::Node;
use crate::route::{
    self, Cluster, ClusterType, DestinationSpec, Glob, Matcher, Protocol, Router, Rule,
};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigIssue {
    /// The config file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// The key, as `table.key` or `cluster[2].type`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems; each names its line and key.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
}

/// A `[[cluster]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct RawCluster {
    /// Name referenced by routes.
    pub name: Spanned<String>,
    /// Cluster type.
    #[serde(rename = "type")]
    pub kind: Spanned<ClusterType>,
    /// Copies per metric for the hashing types.
    #[serde(default = "one")]
    pub replication: usize,
    /// Python rings only: never put two replicas on one host.
    #[serde(default = "yes")]
    pub diverse_replicas: bool,
    /// Wire protocol to every member.
    #[serde(default)]
    pub protocol: Protocol,
    /// Members as `host:port[:instance]`.
    #[serde(default)]
    pub destinations: Vec<Spanned<String>>,
}

/// A `[[route]]` table.
#[derive(Debug, Clone, Deserialize)]
pub struct RawRoute {
    /// Graphite glob to match (`"*"` matches everything).
    #[serde(rename = "match")]
    pub glob: Option<Spanned<String>>,
    /// Regular expression to match, unanchored.
    pub regex: Option<Spanned<String>>,
    /// Literal prefix to match.
    pub prefix: Option<Spanned<String>>,
    /// With `regex`: replacement for the name, `\1` or `${1}` for groups.
    pub rewrite: Option<Spanned<String>>,
    /// Cluster names to send to.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Stop at this rule when it matches.
    #[serde(default)]
    pub stop: bool,
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

/// The file as written.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct RawConfig {
    /// `[listen]`.
    #[serde(default)]
    pub listen: ListenConfig,
    /// `[admin]`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[relay]`.
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[stats]`.
    #[serde(default)]
    pub stats: StatsConfig,
    /// `[[cluster]]`.
    #[serde(default)]
    pub cluster: Vec<RawCluster>,
    /// `[[route]]`.
    #[serde(default)]
    pub route: Vec<RawRoute>,
    /// `[alerting]`.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// `[notify]`.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// `[smtp]`.
    #[serde(default)]
    pub smtp: SmtpConfig,
    /// `[graphite]`.
    #[serde(default)]
    pub graphite: GraphiteConfig,
    /// `[[check]]`, each with `[[check.subscription]]`.
    #[serde(default)]
    pub check: Vec<Spanned<toml::Table>>,
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub path: PathBuf,
    /// Plaintext TCP address, if enabled.
    pub plaintext_tcp: Option<SocketAddr>,
    /// Plaintext UDP address, if enabled.
    pub plaintext_udp: Option<SocketAddr>,
    /// Pickle TCP address, if enabled.
    pub pickle_tcp: Option<SocketAddr>,
    /// Admin HTTP address, if enabled.
    pub admin: Option<SocketAddr>,
    /// The rest of `[admin]`.
    pub admin_http: AdminConfig,
    /// The rest of `[listen]`.
    pub listen: ListenConfig,
    /// `[relay]`.
    pub relay: RelayConfig,
    /// `[stats]`.
    pub stats: StatsConfig,
    /// The routing table.
    pub router: Router,
    /// `[alerting]`.
    pub alerting: AlertingConfig,
    /// `[notify]`.
    pub notify: NotifyConfig,
    /// `[smtp]`.
    pub smtp: SmtpConfig,
    /// `[graphite]`.
    pub graphite: GraphiteConfig,
    /// Checks defined in the file, each with its id.
    pub checks: Vec<Check>,
}

impl Config {
    /// Reads and validates a config file.
    ///
    /// Seyren's environment variables are applied on top (see
    /// [`Config::apply_env`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.display().to_string(),
            source,
        })?;
        let mut config = Config::parse(&text, path)?;
        config.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        config.require_auth_off_loopback(&text)?;
        Ok(config)
    }

    /// Seyren's environment variables override the file, so a Seyren user
    /// switches by exporting the same environment: `SEYREN_URL`,
    /// `GRAPHITE_URL`, `HTTP_NOTIFICATION_URL`, `SMTP_HOST`, `SMTP_PORT`,
    /// `SMTP_FROM` (or `SEYREN_FROM_EMAIL`), `SMTP_USERNAME`,
    /// `SMTP_PASSWORD`, `SMTP_PROTOCOL`.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) {
        let set = |target: &mut String, keys: &[&str]| {
            if let Some(v) = keys.iter().find_map(|k| get(k)) {
                *target = v;
            }
        };
        set(&mut self.notify.seyren_url, &["SEYREN_URL"]);
        set(&mut self.graphite.url, &["GRAPHITE_URL"]);
        set(&mut self.graphite.username, &["GRAPHITE_USERNAME"]);
        set(&mut self.graphite.password, &["GRAPHITE_PASSWORD"]);
        // Seyren gives the refresh in milliseconds.
        if let Some(ms) = get("GRAPHITE_REFRESH").and_then(|v| v.parse::<u64>().ok()) {
            self.graphite.refresh_secs = (ms / 1000).max(1);
        }
        if let Some(n) = get("SEYREN_THREADS").and_then(|v| v.parse::<usize>().ok()) {
            self.graphite.max_concurrent_requests = n.max(1);
        }
        if let Some(ms) = get("GRAPHITE_SOCKET_TIMEOUT").and_then(|v| v.parse::<u64>().ok()) {
            // 0 is Seyren's "wait forever"; a bounded default stays.
            if ms > 0 {
                self.graphite.timeout_secs = ms.div_ceil(1000);
            }
        }
        set(&mut self.notify.slack_webhook_url, &["SLACK_WEBHOOK_URL"]);
        set(&mut self.notify.slack_username, &["SLACK_USERNAME"]);
        set(&mut self.notify.slack_icon_url, &["SLACK_ICON_URL"]);
        set(&mut self.notify.slack_emojis, &["SLACK_EMOJIS"]);
        self.notify.graphite_url = self.graphite.url.clone();
        set(
            &mut self.notify.http_notification_url,
            &["HTTP_NOTIFICATION_URL"],
        );
        set(&mut self.smtp.host, &["SMTP_HOST"]);
        set(&mut self.smtp.from, &["SMTP_FROM", "SEYREN_FROM_EMAIL"]);
        set(&mut self.smtp.username, &["SMTP_USERNAME"]);
        set(&mut self.smtp.password, &["SMTP_PASSWORD"]);
        set(&mut self.smtp.protocol, &["SMTP_PROTOCOL"]);
        if let Some(port) = get("SMTP_PORT").and_then(|p| p.parse().ok()) {
            self.smtp.port = port;
        }
        self.notify.seyren_url = self.notify.seyren_url.trim_end_matches('/').to_string();
        set(&mut self.admin_http.auth_token, &["CARBONWATCH_API_TOKEN"]);
        if let Some(v) = get("GRAPHS_ENABLE") {
            self.admin_http.graphs_enabled = v != "false";
        }
        if get("GRAPHITE_CARBON_PICKLE_ENABLE").as_deref() == Some("true") {
            let port = get("GRAPHITE_CARBON_PICKLE_PORT")
                .and_then(|p| p.parse().ok())
                .unwrap_or(2004);
            self.pickle_tcp = Some(SocketAddr::from(([0, 0, 0, 0], port)));
        }
    }

    /// An admin port reachable from the network must have a token (the
    /// API can change alert rules). Checked after the environment, which
    /// may supply the token.
    pub fn require_auth_off_loopback(&self, text: &str) -> Result<(), ConfigError> {
        match self.admin {
            Some(a) if !a.ip().is_loopback() && self.admin_http.auth_token.is_empty() => {
                Err(ConfigError::Invalid(vec![ConfigIssue {
                    file: self.path.display().to_string(),
                    line: line_of(text, self.admin_http.listen.span().start),
                    key: "admin.listen".into(),
                    message: format!(
                        "{a} is not a loopback address, so the API needs a token: set [admin] auth_token or CARBONWATCH_API_TOKEN"
                    ),
                }]))
            }
            _ => Ok(()),
        }
    }

    /// Validates config text; `path` is only used in messages. Every
    /// problem is reported: each top-level section is read on its own, so
    /// a type error in one does not hide the others, and unknown keys are
    /// collected rather than fatal.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let mut issues = Vec::new();
        let mut broken = Vec::new();
        let raw = read_sections(text, &file, &mut issues, &mut broken);
        let mut v = Validator {
            text,
            file,
            issues,
            broken,
        };
        let config = v.build(raw, path);
        if v.issues.is_empty() {
            Ok(config)
        } else {
            v.issues.sort_by_key(|i| i.line);
            Err(ConfigError::Invalid(v.issues))
        }
    }
}

/// Reads each top-level section into its part of [`RawConfig`]; a section
/// that does not deserialize keeps its defaults and adds an issue.
fn read_sections(
    text: &str,
    file: &str,
    issues: &mut Vec<ConfigIssue>,
    broken: &mut Vec<String>,
) -> RawConfig {
    let issue = |span: std::ops::Range<usize>, key: String, message: String| ConfigIssue {
        file: file.to_string(),
        line: line_of(text, span.start),
        key,
        message,
    };
    let root = match toml::de::DeTable::parse(text) {
        Ok(root) => root,
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            issues.push(issue(
                span.clone(),
                key_at(text, span.start),
                e.message().to_string(),
            ));
            return RawConfig::default();
        }
    };
    let whole = root.span();
    let mut raw = RawConfig::default();
    for (key, value) in root.into_inner() {
        let name = key.get_ref().to_string();
        let mut one = toml::de::DeTable::new();
        one.insert(key, value);
        let de = toml::de::Deserializer::from(Spanned::new(whole.clone(), one));
        let mut unknown = Vec::new();
        match serde_ignored::deserialize(de, |p| unknown.push(p.to_string())) {
            Ok(part) => raw.take_section(&name, part),
            Err(e) => {
                let span = e.span().unwrap_or(0..0);
                let key = key_at(text, span.start);
                issues.push(issue(span, key, e.message().to_string()));
                broken.push(name);
            }
        }
        for path in unknown {
            let line = locate::line_of_path(text, &path);
            let last = path.rsplit('.').next().unwrap_or(&path).to_string();
            issues.push(ConfigIssue {
                file: file.to_string(),
                line,
                key: locate::display_path(&path),
                message: format!("unknown field `{last}`"),
            });
        }
    }
    raw
}

impl RawConfig {
    /// Takes section `name` from `part`, read from that section alone.
    fn take_section(&mut self, name: &str, part: RawConfig) {
        match name {
            "listen" => self.listen = part.listen,
            "admin" => self.admin = part.admin,
            "relay" => self.relay = part.relay,
            "stats" => self.stats = part.stats,
            "cluster" => self.cluster = part.cluster,
            "route" => self.route = part.route,
            "alerting" => self.alerting = part.alerting,
            "notify" => self.notify = part.notify,
            "smtp" => self.smtp = part.smtp,
            "graphite" => self.graphite = part.graphite,
            "check" => self.check = part.check,
            // An unknown section was reported by serde_ignored.
            _ => {}
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The dotted key at a byte offset, found from the nearest table header
/// above it and the `key =` on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or_default();
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.starts_with('['));
    let table = text[..line_start]
        .lines()
        .rev()
        .chain(std::iter::once(line))
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').to_string());
    match (table, key) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        (Some(t), None) => t,
        (None, Some(k)) => k.to_string(),
        (None, None) => "(top level)".into(),
    }
}

struct Validator<'a> {
    text: &'a str,
    file: String,
    issues: Vec<ConfigIssue>,
    /// Sections that did not deserialize: checks that refer into them
    /// would only repeat their error.
    broken: Vec<String>,
}

impl Validator<'_> {
    fn issue<T>(&mut self, at: &Spanned<T>, key: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line: line_of(self.text, at.span().start),
            key: key.into(),
            message: message.into(),
        });
    }

    /// An issue at a key found by its dotted path (no span for it).
    fn issue_at(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line: locate::line_of_path(self.text, path),
            key: locate::display_path(path),
            message: message.into(),
        });
    }

    fn admin_rules(&mut self, a: &AdminConfig) {
        let p = &a.api_base_path;
        // "/" would put the API over the UI and `/metrics`.
        if !p.starts_with('/') || p.ends_with('/') {
            self.issue_at(
                "admin.api_base_path",
                format!("{p:?} must be a path like \"/api\": it starts with '/' and does not end with one (\"/\" is the UI's)"),
            );
        }
        if a.tls_cert_file.is_empty() != a.tls_key_file.is_empty() {
            self.issue_at(
                "admin.tls_cert_file",
                "tls_cert_file and tls_key_file go together",
            );
        }
    }

    fn addr(&mut self, s: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        if s.get_ref().is_empty() {
            return None;
        }
        match s.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(e) => {
                self.issue(
                    s,
                    key,
                    format!("{:?} is not an ip:port address: {e}", s.get_ref()),
                );
                None
            }
        }
    }

    fn build(&mut self, raw: RawConfig, path: &Path) -> Config {
        let plaintext_tcp = self.addr(&raw.listen.plaintext_tcp, "listen.plaintext_tcp");
        let plaintext_udp = self.addr(&raw.listen.plaintext_udp, "listen.plaintext_udp");
        let pickle_tcp = self.addr(&raw.listen.pickle_tcp, "listen.pickle_tcp");
        let admin = self.addr(&raw.admin.listen, "admin.listen");
        let router = self.router(&raw.cluster, &raw.route);
        self.admin_rules(&raw.admin);
        let checks = self.checks(&raw.check);
        if jiff::tz::TimeZone::get(&raw.notify.timezone).is_err() {
            self.issue_at(
                "notify.timezone",
                format!("unknown time zone {:?}", raw.notify.timezone),
            );
        }
        self.limits(&raw);
        Config {
            path: path.to_path_buf(),
            plaintext_tcp,
            plaintext_udp,
            pickle_tcp,
            admin,
            admin_http: raw.admin,
            listen: raw.listen,
            relay: raw.relay,
            stats: raw.stats,
            router,
            alerting: raw.alerting,
            notify: NotifyConfig {
                // Seyren drops a trailing slash from SEYREN_URL.
                seyren_url: raw.notify.seyren_url.trim_end_matches('/').to_string(),
                graphite_url: raw.graphite.url.clone(),
                ..raw.notify
            },
            smtp: raw.smtp,
            graphite: raw.graphite,
            checks,
        }
    }

    /// `[[check]]` tables become checks. In the file, `enabled` and `live`
    /// default to true, and so do a subscription's days and `enabled`, as
    /// Seyren's UI defaults them.
    fn checks(&mut self, raw: &[Spanned<toml::Table>]) -> Vec<Check> {
        let mut out: Vec<Check> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in raw.iter().enumerate() {
            let key = format!("check[{i}]");
            let mut table = t.get_ref().clone();
            if let Some(sub) = table.remove("subscription") {
                table.insert("subscriptions".into(), sub);
            }
            for k in ["enabled", "live"] {
                table.entry(k).or_insert(toml::Value::Boolean(true));
            }
            if let Some(toml::Value::Array(subs)) = table.get_mut("subscriptions") {
                for s in subs.iter_mut().filter_map(toml::Value::as_table_mut) {
                    for k in ["enabled", "su", "mo", "tu", "we", "th", "fr", "sa"] {
                        s.entry(k).or_insert(toml::Value::Boolean(true));
                    }
                }
            }
            let mut check: Check = match toml::Value::Table(table).try_into() {
                Ok(c) => c,
                Err(e) => {
                    self.issue(t, key, e.message().to_string());
                    continue;
                }
            };
            // A stable id from the name, so state survives restarts and
            // reloads; a table may also set its own.
            if check.id.is_empty() {
                check.id = crate::alert::config_check_id(&check.name);
            }
            if let Err(e) = crate::alert::validate(&check) {
                self.issue(t, key, e.to_string());
                continue;
            }
            if !names.insert(check.name.clone()) {
                self.issue(t, key, format!("check {:?} is defined twice", check.name));
                continue;
            }
            out.push(check);
        }
        out
    }

    fn router(&mut self, clusters: &[RawCluster], routes: &[RawRoute]) -> Router {
        let mut router = Router::default();
        for (ci, c) in clusters.iter().enumerate() {
            let key = |k: &str| format!("cluster[{ci}].{k}");
            if router.clusters.iter().any(|x| x.name == *c.name.get_ref()) {
                self.issue(
                    &c.name,
                    key("name"),
                    format!("cluster {:?} is defined twice", c.name.get_ref()),
                );
            }
            let (mut nodes, mut members) = (Vec::new(), Vec::new());
            for d in &c.destinations {
                match route::parse_destination(d.get_ref()) {
                    Ok((host, port, instance)) => {
                        let spec = DestinationSpec {
                            host: host.clone(),
                            port,
                            protocol: c.protocol,
                        };
                        let id = match router.destinations.iter().position(|x| *x == spec) {
                            Some(id) => id,
                            None => {
                                router.destinations.push(spec);
                                router.destinations.len() - 1
                            }
                        };
                        nodes.push(Node {
                            host,
                            port,
                            instance,
                        });
                        members.push(id);
                    }
                    Err(e) => self.issue(d, key("destinations"), e.to_string()),
                }
            }
            if c.replication == 0 {
                self.issue(
                    &c.name,
                    key("replication"),
                    "replication must be at least 1",
                );
            }
            let kind = *c.kind.get_ref();
            match Cluster::new(
                c.name.get_ref().clone(),
                kind,
                c.replication,
                c.diverse_replicas,
                &nodes,
                members,
            ) {
                Ok(cluster) => router.clusters.push(cluster),
                Err(e) => {
                    self.issue(&c.kind, key("destinations"), e.to_string());
                    // Keep indices aligned so later errors still resolve names.
                    let placeholder = Cluster::new(
                        c.name.get_ref().clone(),
                        ClusterType::Blackhole,
                        1,
                        true,
                        &[],
                        vec![],
                    );
                    router
                        .clusters
                        .push(placeholder.expect("a blackhole always builds"));
                }
            }
        }
        for (ri, r) in routes.iter().enumerate() {
            if let Some(rule) = self.rule(ri, r, &router) {
                router.rules.push(rule);
            }
        }
        router
    }

    fn rule(&mut self, ri: usize, r: &RawRoute, router: &Router) -> Option<Rule> {
        let key = |k: &str| format!("route[{ri}].{k}");
        let matcher = match (&r.glob, &r.regex, &r.prefix) {
            (Some(g), None, None) if g.get_ref() == "*" => Matcher::All,
            (Some(g), None, None) => match Glob::new(g.get_ref()) {
                Ok(glob) => Matcher::Glob(glob),
                Err(e) => return self.fail(g, key("match"), e.to_string()),
            },
            (None, Some(re), None) => match route::glob::bounded_regex(re.get_ref()) {
                Ok(regex) => Matcher::Regex(regex),
                Err(e) => return self.fail(re, key("regex"), e.to_string()),
            },
            (None, None, Some(p)) => Matcher::Prefix(p.get_ref().clone()),
            _ => {
                let at = r
                    .glob
                    .as_ref()
                    .or(r.regex.as_ref())
                    .or(r.prefix.as_ref())
                    .or(r.to.first());
                let message = "give exactly one of match, regex or prefix";
                match at {
                    Some(at) => self.issue(at, key("match"), message),
                    None => self.issues.push(ConfigIssue {
                        file: self.file.clone(),
                        line: 0,
                        key: key("match"),
                        message: message.into(),
                    }),
                }
                return None;
            }
        };
        let rewrite = match (&r.rewrite, &matcher) {
            (None, _) => None,
            (Some(rw), Matcher::Regex(re)) => Some((re.clone(), backrefs_to_dollar(rw.get_ref()))),
            (Some(rw), _) => return self.fail(rw, key("rewrite"), "rewrite needs a regex rule"),
        };
        let mut to = Vec::new();
        for name in &r.to {
            match router
                .clusters
                .iter()
                .position(|c| c.name == *name.get_ref())
            {
                Some(i) => to.push(i),
                None if self.broken.iter().any(|b| b == "cluster") => {}
                None => self.issue(
                    name,
                    key("to"),
                    format!("no cluster named {:?}", name.get_ref()),
                ),
            }
        }
        Some(Rule {
            matcher,
            rewrite,
            to,
            stop: r.stop,
        })
    }

    fn fail<T, U>(
        &mut self,
        at: &Spanned<T>,
        key: String,
        message: impl Into<String>,
    ) -> Option<U> {
        self.issue(at, key, message);
        None
    }
}

/// Turns carbon-c-relay style `\1` references into the regex crate's `${1}`.
fn backrefs_to_dollar(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
