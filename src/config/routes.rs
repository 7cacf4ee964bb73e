//! `[[cluster]]` and `[[route]]` tables to a [`Router`], every problem
//! named by its line and key.

use serde::Deserialize;
use toml::Spanned;

use crate::config::{ConfigIssue, Validator};
use crate::route::hash::Node;
use crate::route::{
    self, Cluster, ClusterType, DestinationSpec, Glob, Matcher, Protocol, Router, Rule,
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
}

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
mod tests {
    use super::*;

    #[test]
    fn backreferences() {
        assert_eq!(backrefs_to_dollar(r"new.\1.\2"), "new.${1}.${2}");
    }
}
