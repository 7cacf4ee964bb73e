//! `[[cluster]]` and `[[route]]` tables to a [`Router`], every problem
//! named by its line and key.

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigIssue, Validator};
use crate::relay::StatsConfig;
use crate::route::hash::Node;
use regex::Regex;

use crate::route::{
    self, Cluster, ClusterType, DestinationSpec, Glob, Matcher, Protocol, Replacement, Router, Rule,
};

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
    /// Regular expression to match, unanchored; or a list of them, any of
    /// which matches.
    pub regex: Option<Spanned<OneOrMany>>,
    /// Literal prefix to match.
    pub prefix: Option<Spanned<String>>,
    /// With `regex`: replacement for the name, `\1` or `${1}` for groups,
    /// with carbon-c-relay's `\_1`, `\^1` and `\.1` modifiers.
    pub rewrite: Option<Spanned<String>>,
    /// With `regex`: hashing clusters place the metric by this template
    /// applied to the name (carbon-c-relay's `route using`).
    pub hash_key: Option<Spanned<String>>,
    /// A regular expression the line's `value timestamp` must match, or
    /// the rule sends nowhere (carbon-c-relay's `validate`).
    pub validate: Option<Spanned<String>>,
    /// With `validate`: `"drop"` counts a refused line, `"log"` also logs
    /// it (at most one a second).
    pub on_invalid: Option<Spanned<OnInvalid>>,
    /// Cluster names to send to.
    #[serde(default)]
    pub to: Vec<Spanned<String>>,
    /// Stop at this rule when it matches.
    #[serde(default)]
    pub stop: bool,
}

/// What a refused `validate` does beside counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInvalid {
    /// Count it.
    Drop,
    /// Count it and log it.
    Log,
}

/// A string or a list of strings (`regex = "..."` or `regex = [...]`).
#[derive(Debug, Clone)]
pub struct OneOrMany(pub Vec<String>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    out.push(s);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl Validator<'_> {
    pub(super) fn router(&mut self, clusters: &[RawCluster], routes: &[RawRoute]) -> Router {
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
                router.validates |= rule.validate.is_some();
                router.rules.push(rule);
            }
        }
        router
    }

    /// `[stats] send_to`: a first rule that takes the self-metrics (by
    /// their prefix) to those clusters and stops, as carbon-c-relay's
    /// `statistics send to` adds a route before the others.
    pub(super) fn stats_route(&mut self, stats: &StatsConfig, router: &mut Router) {
        if stats.send_to.is_empty() {
            return;
        }
        let mut to = Vec::new();
        for name in &stats.send_to {
            match router.clusters.iter().position(|c| c.name == *name) {
                Some(i) => to.push(i),
                None => self.issue_at("stats.send_to", format!("no cluster named {name:?}")),
            }
        }
        let prefix = format!("{}.", crate::relay::selfmetrics::prefix(stats));
        router.rules.insert(
            0,
            Rule {
                matcher: Matcher::Prefix(prefix),
                rewrite: None,
                hash_key: None,
                validate: None,
                to,
                stop: true,
            },
        );
    }

    fn rule(&mut self, ri: usize, r: &RawRoute, router: &Router) -> Option<Rule> {
        let key = |k: &str| format!("route[{ri}].{k}");
        let matcher = match (&r.glob, &r.regex, &r.prefix) {
            (Some(g), None, None) if g.get_ref() == "*" => Matcher::All,
            (Some(g), None, None) => match Glob::new(g.get_ref()) {
                Ok(glob) => Matcher::Glob(glob),
                Err(e) => return self.fail(g, key("match"), e.to_string()),
            },
            (None, Some(res), None) => {
                let mut compiled = Vec::new();
                for re in &res.get_ref().0 {
                    match route::glob::bounded_regex(re) {
                        Ok(regex) => compiled.push(regex),
                        Err(e) => return self.fail(res, key("regex"), e.to_string()),
                    }
                }
                match compiled.len() {
                    0 => {
                        let message = "regex needs at least one expression";
                        return self.fail(res, key("regex"), message);
                    }
                    1 => Matcher::Regex(compiled.pop().expect("one")),
                    _ => Matcher::AnyRegex(compiled),
                }
            }
            (None, None, Some(p)) => Matcher::Prefix(p.get_ref().clone()),
            _ => {
                let at = r
                    .glob
                    .as_ref()
                    .map(|g| g.span())
                    .or(r.regex.as_ref().map(|r| r.span()))
                    .or(r.prefix.as_ref().map(|p| p.span()))
                    .or(r.to.first().map(|t| t.span()));
                let message = "give exactly one of match, regex or prefix";
                match at {
                    Some(at) => self.issue_at_offset(at.start, key("match"), message),
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
        let template =
            |this: &mut Self, t: &Spanned<String>, k: &str, re: &Regex| match Replacement::parse(
                t.get_ref(),
                re,
            ) {
                Ok(r) => Some(r),
                Err(e) => this.fail(t, key(k), e.to_string()),
            };
        let rewrite = match (&r.rewrite, &matcher) {
            (None, _) => None,
            (Some(rw), Matcher::Regex(re)) => {
                Some((re.clone(), template(self, rw, "rewrite", re)?))
            }
            (Some(rw), _) => {
                return self.fail(rw, key("rewrite"), "rewrite needs a rule with one regex")
            }
        };
        let hash_key = match (&r.hash_key, &matcher) {
            (None, _) => None,
            (Some(k), Matcher::Regex(re)) => Some(template(self, k, "hash_key", re)?),
            (Some(k), Matcher::AnyRegex(res)) => Some(template(self, k, "hash_key", &res[0])?),
            (Some(k), _) => return self.fail(k, key("hash_key"), "hash_key needs a regex rule"),
        };
        let validate = match (&r.validate, &r.on_invalid) {
            (None, None) => None,
            (None, Some(o)) => return self.fail(o, key("on_invalid"), "on_invalid needs validate"),
            (Some(v), o) => match route::glob::bounded_regex(v.get_ref()) {
                Ok(regex) => Some(route::Validate {
                    regex,
                    log: o.as_ref().is_some_and(|o| *o.get_ref() == OnInvalid::Log),
                }),
                Err(e) => return self.fail(v, key("validate"), e.to_string()),
            },
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
            hash_key,
            validate,
            to,
            stop: r.stop,
        })
    }
}
