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

pub mod aggrules;
mod checks;
pub mod crelay;
mod env;
mod locate;
mod ranges;
mod routes;
mod split;

pub use routes::{RawAggregate, RawCluster, RawCompute, RawRoute};

use crate::alert::AlertingConfig;
use crate::api::AdminConfig;
use crate::check::model::Check;
use crate::listen::ListenConfig;
use crate::notify::{NotifyConfig, SmtpConfig};
use crate::poll::GraphiteConfig;
use crate::relay::{RelayConfig, StatsConfig};
use crate::route::Router;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigIssue {
    /// The file, as given on the command line.
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
        /// The path as given.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems; each names its line and key.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigIssue>),
    /// A carbon-c-relay file has problems; each names its line and column.
    #[error(transparent)]
    Crelay(#[from] crelay::CrelayError),
}

/// The language a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ConfigFormat {
    /// carbonwatch's TOML.
    #[default]
    Toml,
    /// carbon-c-relay's configuration language.
    CarbonCRelay,
}

impl ConfigFormat {
    /// By extension, as the command line's default: `.toml` is TOML,
    /// anything else carbon-c-relay.
    pub fn of(path: &Path) -> ConfigFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => ConfigFormat::Toml,
            _ => ConfigFormat::CarbonCRelay,
        }
    }
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
    /// `[[aggregate]]`.
    #[serde(default)]
    pub aggregate: Vec<RawAggregate>,
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
    /// The checks, read one table at a time (see `split`).
    #[serde(skip)]
    checks_read: Vec<checks::ReadCheck>,
}

/// A config every stage can start from: addresses parsed, the router
/// built, checks given their ids, every range checked.
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
    /// `[[cluster]]` and `[[route]]`, built and validated.
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
    /// What language the file is in, so a reload reads it the same way.
    pub format: ConfigFormat,
}

impl Config {
    /// Reads and validates a config file.
    ///
    /// Seyren's environment variables are applied on top (see
    /// [`Config::apply_env`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_as(path, ConfigFormat::Toml)
    }

    /// [`Config::load`] for a file in `format`. A carbon-c-relay file is
    /// converted to TOML first (see [`crelay`]); a problem the conversion
    /// did not catch is reported at the c-relay line it came from.
    pub fn load_as(path: &Path, format: ConfigFormat) -> Result<Config, ConfigError> {
        let text = match format {
            ConfigFormat::Toml => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    file: path.display().to_string(),
                    source,
                })?
            }
            ConfigFormat::CarbonCRelay => {
                let converted = crelay::convert(path, crelay::DEFAULT_PORT)?;
                for note in &converted.notes {
                    tracing::warn!(%note, "carbon-c-relay construct not applied");
                }
                let mut config = Config::parse(&converted.toml, path).map_err(|e| match e {
                    ConfigError::Invalid(issues) => ConfigError::Invalid(
                        issues
                            .into_iter()
                            .map(|mut i| {
                                // The header (listen, relay, stats) has no
                                // one statement to blame.
                                let (file, line) = converted.origin_of(i.line).unwrap_or(("", 0));
                                if !file.is_empty() {
                                    i.file = file.to_string();
                                }
                                i.line = line;
                                i
                            })
                            .collect(),
                    ),
                    other => other,
                })?;
                config.format = format;
                return config.finish(&converted.toml);
            }
        };
        Config::parse(&text, path)?.finish(&text)
    }

    /// What loading does after parsing: the environment, the admin guard,
    /// paths.
    fn finish(self, text: &str) -> Result<Config, ConfigError> {
        let mut config = self;
        config.apply_env(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        config.require_auth_off_loopback(text)?;
        // systemd's StateDirectory= (the first, if several).
        let state = std::env::var_os("STATE_DIRECTORY")
            .and_then(|v| std::env::split_paths(&v).next())
            .filter(|p| !p.as_os_str().is_empty());
        config.resolve_paths(state.as_deref());
        Ok(config)
    }

    /// Makes the file's relative paths absolute, never against the current
    /// directory: what carbonwatch writes (`[alerting] store`, `[relay]
    /// spool_dir`) goes under `state_dir` when systemd gives one, else
    /// beside the config file; what it reads (`[admin] tls_cert_file`,
    /// `tls_key_file`) is beside the config file.
    pub fn resolve_paths(&mut self, state_dir: Option<&Path>) {
        let file_dir = self
            .path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        let state_dir = state_dir.map_or(file_dir.clone(), Path::to_path_buf);
        let resolve = |p: &mut String, base: &Path| {
            // URLs (a future database) and absolute paths stay.
            if !p.is_empty() && !p.contains("://") && Path::new(p.as_str()).is_relative() {
                *p = base.join(p.as_str()).display().to_string();
            }
        };
        resolve(&mut self.alerting.store, &state_dir);
        resolve(&mut self.relay.spool_dir, &state_dir);
        resolve(&mut self.admin_http.tls_cert_file, &file_dir);
        resolve(&mut self.admin_http.tls_key_file, &file_dir);
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
/// that does not deserialize keeps its defaults and adds an issue. The
/// `[[check]]` tables, when the text can be cut into them, are each parsed
/// and read on their own, so the document tree never holds them all.
fn read_sections(
    text: &str,
    file: &str,
    issues: &mut Vec<ConfigIssue>,
    broken: &mut Vec<String>,
) -> RawConfig {
    if let Some(pieces) = split::check_tables(text).filter(|p| !p.is_empty()) {
        if let Some(read) = read_pieces(text, &pieces) {
            let (mut found, mut failed) = (Vec::new(), Vec::new());
            let rest = split::without(text, &pieces);
            let mut raw = read_document(&rest, file, &mut found, &mut failed);
            // Checks left in the rest (an inline array) would clash with
            // the pieces: the whole document says how.
            if raw.check.is_empty() {
                raw.checks_read = read;
                issues.extend(found);
                broken.extend(failed);
                return raw;
            }
        }
    }
    let mut raw = read_document(text, file, issues, broken);
    raw.checks_read = std::mem::take(&mut raw.check)
        .into_iter()
        .map(|t| checks::ReadCheck::from_table(t, 0))
        .collect();
    raw
}

/// Each `[[check]]` piece parsed on its own; `None` if one does not parse
/// (the whole document then says where and why).
fn read_pieces(text: &str, pieces: &[std::ops::Range<usize>]) -> Option<Vec<checks::ReadCheck>> {
    #[derive(Deserialize)]
    struct Piece {
        check: Vec<Spanned<toml::Table>>,
    }
    let mut out = Vec::with_capacity(pieces.len());
    for p in pieces {
        let piece: Piece = toml::from_str(&text[p.clone()]).ok()?;
        out.extend(
            piece
                .check
                .into_iter()
                .map(|t| checks::ReadCheck::from_table(t, p.start)),
        );
    }
    Some(out)
}

/// Parses `text` as one document and reads each top-level section.
fn read_document(
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
            "aggregate" => self.aggregate = part.aggregate,
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
    fn issue_at_offset(&mut self, offset: usize, key: String, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            line: line_of(self.text, offset),
            key,
            message: message.into(),
        });
    }

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

    fn build(&mut self, mut raw: RawConfig, path: &Path) -> Config {
        let plaintext_tcp = self.addr(&raw.listen.plaintext_tcp, "listen.plaintext_tcp");
        let plaintext_udp = self.addr(&raw.listen.plaintext_udp, "listen.plaintext_udp");
        let pickle_tcp = self.addr(&raw.listen.pickle_tcp, "listen.pickle_tcp");
        let admin = self.addr(&raw.admin.listen, "admin.listen");
        let mut router = self.router(&raw.cluster, &raw.route, &raw.aggregate);
        router.cleanse = raw.relay.cleanse_names;
        self.stats_route(&raw.stats, &mut router);
        self.admin_rules(&raw.admin);
        let checks = self.checks(std::mem::take(&mut raw.checks_read));
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
            format: ConfigFormat::Toml,
        }
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

#[cfg(test)]
mod tests;
