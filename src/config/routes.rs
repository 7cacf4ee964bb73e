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

/// An `[[aggregate]]` table: carbon-c-relay's `aggregate` rule. It sits
/// among the `[[route]]` tables in the order of the file.
#[derive(Debug, Clone, Deserialize)]
pub struct RawAggregate {
    /// Graphite glob to match (`"*"` matches everything).
    #[serde(rename = "match")]
    pub glob: Option<Spanned<String>>,
    /// Regular expression (or a list) to match; its groups fill the
    /// `write_to` templates.
    pub regex: Option<Spanned<OneOrMany>>,
    /// Literal prefix to match.
    pub prefix: Option<Spanned<String>>,
    /// Bucket width.
    pub every_secs: Spanned<u64>,
    /// How long after it starts a bucket takes points; more than
    /// `every_secs`.
    pub expire_secs: Spanned<u64>,
    /// `start`, `middle` or `end` (the default) of the bucket.
    #[serde(default)]
    pub timestamp: route::aggregate::BucketTime,
    /// What to compute and the names to write it to.
    pub compute: Spanned<Vec<RawCompute>>,
    /// Clusters the aggregates go to; without, they re-enter routing at
    /// the first rule.
    #[serde(default)]
    pub send_to: Vec<Spanned<String>>,
    /// Stop the walk for the metrics this rule takes.
    #[serde(default)]
    pub stop: bool,
    /// Without `send_to`: whether the aggregates meet the aggregation
    /// rules again when they re-enter routing (carbon-c-relay's way);
    /// `false` sends them through the `[[route]]` tables only, as
    /// carbon-aggregator does.
    #[serde(default = "yes")]
    pub reaggregate: bool,
}

/// One `compute` of an `[[aggregate]]`.
#[derive(Debug, Clone, Deserialize)]
pub struct RawCompute {
    /// `sum`, `count`, `max`, `min`, `average`, `median`, `percentileNN`,
    /// `variance` or `stddev`.
    pub function: Spanned<String>,
    /// The output name, with the regex's groups as `\1`.
    pub write_to: Spanned<String>,
}

/// Buckets per series past which an `[[aggregate]]` is refused: each
/// series holds `expire_secs / every_secs + 2` of them.
pub const MAX_BUCKETS_PER_SERIES: u64 = 1000;

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

impl RawRoute {
    /// Where the table is in the file (`usize::MAX` when it has no key
    /// that says).
    fn offset(&self) -> usize {
        self.glob
            .as_ref()
            .map(|g| g.span())
            .or(self.regex.as_ref().map(|r| r.span()))
            .or(self.prefix.as_ref().map(|p| p.span()))
            .or(self.to.first().map(|t| t.span()))
            .map_or(usize::MAX, |s| s.start)
    }
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl Validator<'_> {
    pub(super) fn router(
        &mut self,
        clusters: &[RawCluster],
        routes: &[RawRoute],
        aggregates: &[RawAggregate],
    ) -> Router {
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
        // Rules run in the order of the file, routes and aggregates alike.
        let mut order: Vec<(usize, Result<usize, usize>)> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.offset(), Ok(i)))
            .chain(
                aggregates
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.every_secs.span().start, Err(i))),
            )
            .collect();
        order.sort_by_key(|&(at, _)| at);
        for (_, which) in order {
            let rule = match which {
                Ok(ri) => self.rule(ri, &routes[ri], &router),
                Err(ai) => self.aggregate(ai, &aggregates[ai], &mut router),
            };
            if let Some(rule) = rule {
                router.validates |= rule.validate.is_some();
                router.rules.push(rule);
            }
        }
        router
    }

    fn aggregate(&mut self, ai: usize, a: &RawAggregate, router: &mut Router) -> Option<Rule> {
        let key = |k: &str| format!("aggregate[{ai}].{k}");
        let at = a.every_secs.span().start;
        let matcher = self.matcher(&key, &a.glob, &a.regex, &a.prefix, at)?;
        let (every, expire) = (*a.every_secs.get_ref(), *a.expire_secs.get_ref());
        if !(1..=86_400).contains(&every) {
            return self.fail(
                &a.every_secs,
                key("every_secs"),
                "every_secs must be from 1 to 86400",
            );
        }
        if expire <= every {
            return self.fail(
                &a.expire_secs,
                key("expire_secs"),
                "expire_secs must be greater than every_secs (as carbon-c-relay requires)",
            );
        }
        if expire / every + 2 > MAX_BUCKETS_PER_SERIES {
            return self.fail(
                &a.expire_secs,
                key("expire_secs"),
                format!("expire_secs / every_secs must be at most {}: each series holds that many buckets", MAX_BUCKETS_PER_SERIES - 2),
            );
        }
        if a.compute.get_ref().is_empty() {
            return self.fail(
                &a.compute,
                key("compute"),
                "an aggregate needs at least one compute",
            );
        }
        let no_groups = Regex::new("").expect("empty regex");
        let groups = match &matcher {
            Matcher::Regex(re) => re,
            Matcher::AnyRegex(res) => &res[0],
            _ => &no_groups,
        };
        let mut computes = Vec::new();
        let mut identity = format!(
            "{:?}|{:?}|{:?}|{every}|{expire}|{:?}|{}",
            a.glob.as_ref().map(|g| g.get_ref()),
            a.regex.as_ref().map(|r| &r.get_ref().0),
            a.prefix.as_ref().map(|p| p.get_ref()),
            a.timestamp,
            a.reaggregate
        );
        for (ci, c) in a.compute.get_ref().iter().enumerate() {
            let k = |f: &str| key(&format!("compute[{ci}].{f}"));
            let Some(function) = route::aggregate::Function::parse(c.function.get_ref()) else {
                return self.fail(
                    &c.function,
                    k("function"),
                    format!(
                        "unknown function {:?}: sum, count, max, min, average, median, percentile1 to percentile99, variance, stddev, or carbon-aggregator's avg, p50, p75, p80, p90, p95, p99, p999",
                        c.function.get_ref()
                    ),
                );
            };
            let write_to = match Replacement::parse(c.write_to.get_ref(), groups) {
                Ok(r) => r,
                Err(e) => return self.fail(&c.write_to, k("write_to"), e.to_string()),
            };
            identity.push_str(&format!("|{}>{}", function.name(), write_to.source));
            computes.push(route::aggregate::Compute { function, write_to });
        }
        let mut send_to = Vec::new();
        for name in &a.send_to {
            match router
                .clusters
                .iter()
                .position(|c| c.name == *name.get_ref())
            {
                Some(i) => send_to.push(i),
                None => {
                    let message = format!("no cluster named {:?}", name.get_ref());
                    return self.fail(name, key("send_to"), message);
                }
            }
            identity.push_str(&format!("|>{}", name.get_ref()));
        }
        router.aggregates.push(route::Aggregation {
            every_secs: every as u32,
            expire_secs: expire as u32,
            timestamp: a.timestamp,
            computes,
            send_to,
            reaggregate: a.reaggregate,
            identity,
        });
        Some(Rule {
            matcher,
            rewrite: None,
            hash_key: None,
            validate: None,
            aggregate: Some(router.aggregates.len() - 1),
            to: Vec::new(),
            stop: a.stop,
        })
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
                aggregate: None,
                to,
                stop: true,
            },
        );
    }

    /// The matcher of a rule's `match`, `regex` or `prefix`; `at` is where
    /// the rule is (`usize::MAX`: unknown).
    fn matcher(
        &mut self,
        key: &dyn Fn(&str) -> String,
        glob: &Option<Spanned<String>>,
        regex: &Option<Spanned<OneOrMany>>,
        prefix: &Option<Spanned<String>>,
        at: usize,
    ) -> Option<Matcher> {
        Some(match (glob, regex, prefix) {
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
                let message = "give exactly one of match, regex or prefix";
                match at {
                    usize::MAX => self.issues.push(ConfigIssue {
                        file: self.file.clone(),
                        line: 0,
                        key: key("match"),
                        message: message.into(),
                    }),
                    at => self.issue_at_offset(at, key("match"), message),
                }
                return None;
            }
        })
    }

    fn rule(&mut self, ri: usize, r: &RawRoute, router: &Router) -> Option<Rule> {
        let key = |k: &str| format!("route[{ri}].{k}");
        let at = r.offset();
        let matcher = self.matcher(&key, &r.glob, &r.regex, &r.prefix, at)?;
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
            aggregate: None,
            to,
            stop: r.stop,
        })
    }
}
