//! `seriesByTag(...)` for live checks, with graphite-web's semantics
//! (`graphite.tags.localdatabase.LocalDatabaseTagDB`):
//!
//! * `tag=spec` the tag's value is `spec`; `tag!=spec` it is not;
//! * `tag=~re` the value matches `re` anchored at its start (`^(re)`,
//!   unless `re` starts with `^`), as Python's `re.match`; `tag!=~re`
//!   it does not;
//! * a series without the tag has the value `""` for it, so `tag=` means
//!   "has no such tag" and `tag!=x` holds for series without `tag`;
//! * `name` is the metric path before the first `;` (carbon registers
//!   untagged metrics too, with only their `name`);
//! * at least one expression must not match the empty value.
//!
//! Names are read as carbon parses them: a repeated tag keeps its last
//! value, a `name` tag is the metric itself, a leading `~` is dropped.

use regex::Regex;
use rustc_hash::FxHashMap;

use crate::route::glob::{bounded_regex, GlobError, MAX_GLOB_BYTES};

/// Expressions one `seriesByTag` may hold: each costs a comparison per
/// candidate series.
pub const MAX_TAG_EXPRESSIONS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Match,
    NotMatch,
}

#[derive(Debug)]
struct Expr {
    tag: Box<str>,
    op: Op,
    spec: Box<str>,
    regex: Option<Regex>,
}

impl Expr {
    fn holds(&self, value: &str) -> bool {
        match self.op {
            Op::Eq => value == &*self.spec,
            Op::Ne => value != &*self.spec,
            Op::Match => self.regex.as_ref().is_some_and(|r| r.is_match(value)),
            Op::NotMatch => !self.regex.as_ref().is_some_and(|r| r.is_match(value)),
        }
    }
}

/// Where a query is filed in a [`TagIndex`]: by the most selective of its
/// expressions that a matching series must satisfy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Anchor {
    /// `tag=value`, `value` not empty (`name=...` included).
    Pair(Box<str>, Box<str>),
    /// The series must carry `tag`, whatever its value.
    Has(Box<str>),
}

/// One parsed `seriesByTag(...)`.
#[derive(Debug)]
pub struct TagQuery {
    exprs: Vec<Expr>,
    anchor: Anchor,
}

/// Whether `target` is a tag query rather than a glob.
pub fn is_tag_query(target: &str) -> bool {
    target.trim_start().starts_with("seriesByTag(")
}

impl TagQuery {
    /// Parses `seriesByTag('tag=spec', "tag=~re", ...)`.
    pub fn parse(target: &str) -> Result<TagQuery, GlobError> {
        let err = |reason: String| GlobError {
            pattern: target.to_string(),
            reason,
        };
        if target.len() > MAX_GLOB_BYTES {
            return Err(err(format!("longer than {MAX_GLOB_BYTES} bytes")));
        }
        let args = target
            .trim()
            .strip_prefix("seriesByTag(")
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| err("not of the form seriesByTag('tag=value', ...)".into()))?;
        let mut exprs = Vec::new();
        let mut rest = args.trim_start();
        while !rest.is_empty() {
            let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"');
            let quote =
                quote.ok_or_else(|| err(format!("expected a quoted expression at {rest:?}")))?;
            let body = &rest[1..];
            let end = body
                .find(quote)
                .ok_or_else(|| err("an expression's quote is not closed".into()))?;
            exprs.push(parse_spec(&body[..end]).map_err(&err)?);
            rest = body[end + 1..].trim_start();
            if let Some(after) = rest.strip_prefix(',') {
                rest = after.trim_start();
                if rest.is_empty() {
                    return Err(err("a comma with no expression after it".into()));
                }
            } else if !rest.is_empty() {
                return Err(err(format!("expected ',' or ')' at {rest:?}")));
            }
        }
        if exprs.is_empty() {
            return Err(err("seriesByTag needs at least one expression".into()));
        }
        if exprs.len() > MAX_TAG_EXPRESSIONS {
            return Err(err(format!("more than {MAX_TAG_EXPRESSIONS} expressions")));
        }
        let positive = |e: &&Expr| !e.holds("");
        // The most selective anchor: name=, then any tag=value, then any
        // expression that needs the tag to be there.
        let anchor = exprs
            .iter()
            .filter(positive)
            .filter(|e| e.op == Op::Eq)
            .min_by_key(|e| &*e.tag != "name")
            .map(|e| Anchor::Pair(e.tag.clone(), e.spec.clone()))
            .or_else(|| {
                exprs
                    .iter()
                    .find(positive)
                    .map(|e| Anchor::Has(e.tag.clone()))
            })
            .ok_or_else(|| err("at least one expression must not match an empty value".into()))?;
        Ok(TagQuery { exprs, anchor })
    }

    /// Whether the series with these tags matches.
    pub fn matches(&self, tags: &SeriesTags<'_>) -> bool {
        self.exprs.iter().all(|e| e.holds(tags.get(&e.tag)))
    }
}

/// graphite-web's `parse_tagspec`: `^([^;!=]+)(!?=~?)([^;]*)$`.
fn parse_spec(spec: &str) -> Result<Expr, String> {
    let bad = || {
        format!("{spec:?} is not a tag expression (tag=value, tag!=value, tag=~regex, tag!=~regex)")
    };
    let tag_end = spec.find([';', '!', '=']).ok_or_else(bad)?;
    let (tag, rest) = spec.split_at(tag_end);
    if tag.is_empty() {
        return Err(bad());
    }
    let (op, value) = if let Some(v) = rest.strip_prefix("!=~") {
        (Op::NotMatch, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (Op::Ne, v)
    } else if let Some(v) = rest.strip_prefix("=~") {
        (Op::Match, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (Op::Eq, v)
    } else {
        return Err(bad());
    };
    if value.contains(';') {
        return Err(bad());
    }
    let regex = match op {
        Op::Match | Op::NotMatch => {
            let anchored = if value.starts_with('^') {
                value.to_string()
            } else {
                format!("^({value})")
            };
            Some(bounded_regex(&anchored).map_err(|e| format!("{value:?}: {e}"))?)
        }
        Op::Eq | Op::Ne => None,
    };
    Ok(Expr {
        tag: tag.into(),
        op,
        spec: value.into(),
        regex,
    })
}

/// A series' tags as carbon reads them, borrowed from its name.
#[derive(Debug)]
pub struct SeriesTags<'a> {
    name: &'a str,
    /// Sorted by tag; a repeated tag keeps its last value.
    tags: Vec<(&'a str, &'a str)>,
}

impl<'a> SeriesTags<'a> {
    /// Reads `metric;tag=value;...`. Segments that are not `tag=value` are
    /// skipped (the decoder refuses such names before they get here).
    pub fn parse(path: &'a str) -> SeriesTags<'a> {
        let mut segments = path.split(';');
        let name = segments.next().unwrap_or_default().trim_start_matches('~');
        let mut tags: Vec<(usize, &str, &str)> = segments
            .enumerate()
            .filter_map(|(i, s)| s.split_once('=').map(|(t, v)| (i, t, v)))
            .filter(|(_, t, _)| !t.is_empty() && *t != "name")
            .collect();
        tags.sort_unstable_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
        tags.dedup_by(|later, kept| later.1 == kept.1);
        SeriesTags {
            name,
            tags: tags.into_iter().map(|(_, t, v)| (t, v)).collect(),
        }
    }

    /// The value of `tag`, `""` if the series has none.
    pub fn get(&self, tag: &str) -> &'a str {
        if tag == "name" {
            return self.name;
        }
        self.tags
            .binary_search_by(|(t, _)| (*t).cmp(tag))
            .map_or("", |i| self.tags[i].1)
    }
}

/// The queries filed under one anchor, with their payloads.
type Filed<S> = Vec<(TagQuery, S)>;

/// Tag queries filed by anchor, so a series is compared only with the
/// queries its own tags could satisfy: the cost per series grows with its
/// tags and with the queries anchored on them, not with the number of
/// queries.
#[derive(Debug, Default)]
pub struct TagIndex<S> {
    /// Tag → value → queries; `name` is one of the tags.
    pairs: FxHashMap<Box<str>, FxHashMap<Box<str>, Filed<S>>>,
    /// Tag → queries that only need the tag present (regular expressions,
    /// `!=`-only sets).
    present: FxHashMap<Box<str>, Filed<S>>,
    len: usize,
}

impl<S: Copy> TagIndex<S> {
    /// Files a query.
    pub fn insert(&mut self, query: TagQuery, slot: S) {
        self.len += 1;
        match query.anchor.clone() {
            Anchor::Pair(t, v) => self
                .pairs
                .entry(t)
                .or_default()
                .entry(v)
                .or_default()
                .push((query, slot)),
            Anchor::Has(t) => self.present.entry(t).or_default().push((query, slot)),
        }
    }

    /// How many queries it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the slots of the queries `path` matches.
    pub fn matches(&self, path: &str, out: &mut Vec<S>) {
        if self.len == 0 {
            return;
        }
        let tags = SeriesTags::parse(path);
        let all = std::iter::once(("name", tags.name)).chain(tags.tags.iter().copied());
        for (tag, value) in all {
            if let Some(qs) = self.pairs.get(tag).and_then(|values| values.get(value)) {
                out.extend(qs.iter().filter(|(q, _)| q.matches(&tags)).map(|(_, s)| *s));
            }
            if let Some(qs) = self.present.get(tag) {
                out.extend(qs.iter().filter(|(q, _)| q.matches(&tags)).map(|(_, s)| *s));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> TagQuery {
        TagQuery::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn hits(query: &str, path: &str) -> bool {
        let mut idx = TagIndex::default();
        idx.insert(q(query), 0u32);
        let mut out = Vec::new();
        idx.matches(path, &mut out);
        let direct = q(query).matches(&SeriesTags::parse(path));
        assert_eq!(
            !out.is_empty(),
            direct,
            "{query} on {path}: index and query disagree"
        );
        direct
    }

    #[test]
    fn graphite_webs_operators() {
        let s = "disk.used;host=web1;dc=ams;env=prod";
        assert!(hits("seriesByTag('name=disk.used')", s));
        assert!(hits("seriesByTag('name=disk.used', 'dc=ams')", s));
        assert!(!hits("seriesByTag('name=disk.used', 'dc=fra')", s));
        assert!(
            hits("seriesByTag('host=~web')", s),
            "anchored at the start only"
        );
        assert!(!hits("seriesByTag('host=~eb')", s));
        assert!(hits("seriesByTag('host=~^web[0-9]$')", s));
        assert!(hits("seriesByTag(\"dc=ams\", \"env!=dev\")", s));
        assert!(!hits("seriesByTag('dc=ams', 'env!=prod')", s));
        assert!(hits("seriesByTag('dc=ams', 'role!=~db.*')", s));
        assert!(!hits("seriesByTag('dc=ams', 'host!=~web.*')", s));
        // A missing tag is the empty value.
        assert!(hits("seriesByTag('dc=ams', 'role=')", s));
        assert!(!hits("seriesByTag('dc=ams', 'host=')", s));
        assert!(hits("seriesByTag('dc=ams', 'role!=db')", s));
        // Untagged metrics have their name.
        assert!(hits("seriesByTag('name=disk.used')", "disk.used"));
        assert!(hits("seriesByTag('name=~disk')", "disk.used"));
        // Carbon's reading of a name: the last repeat wins, name= is the
        // metric, a leading ~ goes.
        assert!(hits("seriesByTag('dc=fra')", "m;dc=ams;dc=fra"));
        assert!(!hits("seriesByTag('dc=ams')", "m;dc=ams;dc=fra"));
        assert!(hits("seriesByTag('name=m')", "~m;name=x"));
    }

    #[test]
    fn refuses_what_graphite_web_refuses() {
        for bad in [
            "seriesByTag()",
            "seriesByTag('dc!=ams')",
            "seriesByTag('role=')",
            "seriesByTag('host=~.*')",
            "seriesByTag('=x')",
            "seriesByTag('novalue')",
            "seriesByTag('a=b'",
            "seriesByTag('a=b' 'c=d')",
            "seriesByTag('a=b',)",
            "seriesByTag('a=~(')",
            "seriesByTag('a=b;c')",
        ] {
            assert!(TagQuery::parse(bad).is_err(), "{bad}");
        }
        // `!=` with an empty spec means "has the tag": positive.
        assert!(TagQuery::parse("seriesByTag('role!=')").is_ok());
        assert!(hits("seriesByTag('role!=')", "m;role=db"));
        assert!(!hits("seriesByTag('role!=')", "m"));
    }

    #[test]
    fn a_series_meets_only_the_queries_anchored_on_its_tags() {
        let mut idx = TagIndex::default();
        for i in 0..10_000u32 {
            idx.insert(q(&format!("seriesByTag('name=m{i}', 'dc=ams')")), i);
        }
        idx.insert(q("seriesByTag('host=~web')"), 10_000);
        let mut out = Vec::new();
        idx.matches("m42;dc=ams;host=web7", &mut out);
        assert_eq!(out, [42, 10_000]);
        assert_eq!(idx.pairs["name"].len(), 10_000);
        assert_eq!(idx.present.len(), 1);
    }
}
