//! Which live checks match a metric name, at a cost that does not grow with
//! the number of checks.
//!
//! Patterns are split on `.` into a tree, as graphite-web matches them node
//! by node (no wildcard crosses a dot). A node's literal children sit in a
//! hash map, a bare `*` child is kept apart, and only nodes with other
//! wildcards run a compiled matcher. A name walks the tree level by level
//! with the set of live nodes; the terminals reached at its last level are
//! the matching checks. The few patterns whose groups span dots (`{a.b,c}`)
//! or that use `**` are matched one by one.
//!
//! `seriesByTag(...)` targets go to a [`TagIndex`], which files each query
//! under a tag its series must carry.
//!
//! Names repeat every interval, so callers cache the answer per name and
//! invalidate by [`PatternIndex::generation`].

use rustc_hash::FxHashMap;

use crate::route::glob::{check_limits, GlobError, NodeGlob};
use crate::route::tags::{is_tag_query, TagIndex, TagQuery};
use crate::route::Glob;

/// A check's slot in the engine, the payload of a pattern.
pub type Slot = u32;

#[derive(Debug, Default)]
struct Node {
    literal: FxHashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    globs: Vec<(NodeGlob, Node)>,
    terminal: Vec<Slot>,
}

/// An immutable index of glob patterns; rebuilt and swapped when checks
/// change.
#[derive(Debug, Default)]
pub struct PatternIndex {
    root: Node,
    complex: Vec<(Glob, Slot)>,
    tagged: TagIndex<Slot>,
    len: usize,
    generation: u64,
}

/// Whether splitting `pattern` on dots cuts through a `{...}` or `[...]`
/// group, or it uses `**`: then it is matched whole.
fn is_complex(pattern: &str) -> bool {
    if pattern.contains("**") || pattern.contains('\\') {
        return true;
    }
    pattern.split('.').any(|part| {
        let (mut braces, mut brackets) = (0i32, 0i32);
        for c in part.chars() {
            match c {
                '{' => braces += 1,
                '}' => braces -= 1,
                '[' => brackets += 1,
                ']' => brackets -= 1,
                _ => {}
            }
        }
        braces != 0 || brackets != 0
    })
}

impl PatternIndex {
    /// Builds an index of `(slot, pattern)` pairs. Patterns that are not
    /// valid globs are returned with their error.
    pub fn build<'a>(
        patterns: impl IntoIterator<Item = (Slot, &'a str)>,
        generation: u64,
    ) -> (PatternIndex, Vec<(Slot, GlobError)>) {
        let mut index = PatternIndex {
            generation,
            ..PatternIndex::default()
        };
        let mut errors = Vec::new();
        for (slot, pattern) in patterns {
            match index.insert(slot, pattern) {
                Ok(()) => index.len += 1,
                Err(e) => errors.push((slot, e)),
            }
        }
        (index, errors)
    }

    /// Whether `pattern` would be taken by [`PatternIndex::build`], and is
    /// within the whole-pattern glob limits: it is inserted into an index
    /// of its own, so the rule is the index's by construction. Validating
    /// a check this way rather than compiling a regex for every live glob
    /// took most of the time of loading 100,000 checks.
    pub fn check(pattern: &str) -> Result<(), GlobError> {
        if !is_tag_query(pattern) {
            check_limits(pattern)?;
        }
        PatternIndex::default().insert(0, pattern)
    }

    fn insert(&mut self, slot: Slot, pattern: &str) -> Result<(), GlobError> {
        if is_tag_query(pattern) {
            self.tagged.insert(TagQuery::parse(pattern)?, slot);
            return Ok(());
        }
        if is_complex(pattern) {
            let glob = Glob::new(pattern)?;
            self.complex.push((glob, slot));
            return Ok(());
        }
        let mut node = &mut self.root;
        for part in pattern.split('.') {
            node = if part == "*" {
                node.star.get_or_insert_with(Box::default)
            } else if Glob::is_literal(part) {
                node.literal.entry(part.into()).or_default()
            } else {
                let at = node.globs.iter().position(|(g, _)| g.as_str() == part);
                let at = match at {
                    Some(i) => i,
                    None => {
                        let glob = NodeGlob::new(part).ok_or_else(|| GlobError {
                            pattern: pattern.to_string(),
                            reason: format!(
                                "node {part:?} has unbalanced braces or expands to too many alternatives"
                            ),
                        })?;
                        node.globs.push((glob, Node::default()));
                        node.globs.len() - 1
                    }
                };
                &mut node.globs[at].1
            };
        }
        node.terminal.push(slot);
        Ok(())
    }

    /// Appends the slots of every pattern that matches `name`.
    pub fn matches(&self, name: &str, out: &mut Vec<Slot>) {
        let mut live: Vec<&Node> = vec![&self.root];
        let mut next: Vec<&Node> = Vec::new();
        for part in name.split('.') {
            next.clear();
            for node in &live {
                if let Some(n) = node.literal.get(part) {
                    next.push(n);
                }
                if let Some(n) = &node.star {
                    next.push(n);
                }
                for (g, n) in &node.globs {
                    if g.is_match(part) {
                        next.push(n);
                    }
                }
            }
            std::mem::swap(&mut live, &mut next);
            if live.is_empty() {
                break;
            }
        }
        for node in live {
            out.extend_from_slice(&node.terminal);
        }
        for (g, slot) in &self.complex {
            if g.is_match(name) {
                out.push(*slot);
            }
        }
        self.tagged.matches(name, out);
    }

    /// Whether `name` matches any pattern.
    pub fn is_match(&self, name: &str) -> bool {
        let mut out = Vec::new();
        self.matches(name, &mut out);
        !out.is_empty()
    }

    /// How many patterns it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Changes whenever the set of patterns changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `check` takes what `build` takes, refuses what it refuses, and
    /// also holds the whole pattern to the glob limits.
    #[test]
    fn check_agrees_with_build() {
        let patterns = [
            "a.b.c",
            "a.*.c",
            "a.b{1,2}.c",
            "a.{b.c,d}",
            "a.**",
            "a.[0-9].x",
            "a.b{1,2.c",
            "a.b}.c",
            "x.{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}{o,p}{q,r}",
        ];
        for p in patterns {
            let built = PatternIndex::build([(0, p)], 1).1.is_empty();
            assert_eq!(PatternIndex::check(p).is_ok(), built, "{p}");
        }
        assert!(
            PatternIndex::check("a.b{1,2.c").is_err(),
            "an unclosed brace"
        );
        let long = format!("a.{}", "b".repeat(crate::route::glob::MAX_GLOB_BYTES));
        assert!(PatternIndex::check(&long).is_err(), "longer than the limit");
    }

    fn index(patterns: &[&str]) -> PatternIndex {
        let (idx, errors) =
            PatternIndex::build(patterns.iter().enumerate().map(|(i, p)| (i as Slot, *p)), 1);
        assert!(errors.is_empty(), "{errors:?}");
        idx
    }

    fn hits(idx: &PatternIndex, name: &str) -> Vec<Slot> {
        let mut out = Vec::new();
        idx.matches(name, &mut out);
        out.sort_unstable();
        out
    }

    #[test]
    fn agrees_with_whole_pattern_globs() {
        let patterns = [
            "servers.*.cpu",
            "servers.web01.cpu",
            "servers.web{01,02}.cpu",
            "servers.web[0-9]*.cpu",
            "servers.*",
            "auth.*.failed_logins",
            "{auth,radius}.{eu,us}.failed_logins",
            "a.{b.c,d}.e",
            "**.denied",
            "x?z.*",
        ];
        let idx = index(&patterns);
        let names = [
            "servers.web01.cpu",
            "servers.web02.cpu",
            "servers.db1.cpu",
            "servers.web01",
            "servers.web01.cpu.user",
            "auth.eu.failed_logins",
            "radius.us.failed_logins",
            "radius.asia.failed_logins",
            "a.b.c.e",
            "a.d.e",
            "fw.eu.iptables.denied",
            "xyz.q",
            "xz.q",
            "servers..cpu",
            "",
        ];
        let globs: Vec<Glob> = patterns.iter().map(|p| Glob::new(p).unwrap()).collect();
        for name in names {
            let want: Vec<Slot> = (0..patterns.len() as Slot)
                .filter(|&i| globs[i as usize].is_match(name))
                .collect();
            assert_eq!(hits(&idx, name), want, "{name}");
        }
    }

    #[test]
    fn identical_patterns_keep_every_check() {
        let idx = index(&["a.*", "a.*", "a.b"]);
        assert_eq!(hits(&idx, "a.b"), vec![0, 1, 2]);
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn tag_queries_sit_beside_globs() {
        let idx = index(&[
            "disk.*",
            "seriesByTag('name=disk.used', 'dc=ams')",
            "seriesByTag('host=~web')",
        ]);
        assert_eq!(hits(&idx, "disk.used;dc=ams;host=db1"), [0, 1]);
        assert_eq!(hits(&idx, "cpu;host=web2"), [2]);
        assert_eq!(hits(&idx, "disk.used"), [0]);
        assert!(PatternIndex::check("seriesByTag('a=~x{2}')").is_ok());
        assert!(PatternIndex::check("seriesByTag('a!=x')").is_err());
    }

    #[test]
    fn a_bad_pattern_is_reported_not_fatal() {
        let (idx, errors) = PatternIndex::build([(0, "a.{b"), (1, "a.b")], 1);
        assert_eq!(errors.len(), 1);
        assert!(idx.is_match("a.b"));
    }
}
