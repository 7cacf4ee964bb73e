//! The pattern tree: one build of a set of patterns.

use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxHashMap;

use crate::route::glob::{check_limits, GlobError, NodeGlob};
use crate::route::tags::{is_tag_query, TagIndex, TagQuery};
use crate::route::Glob;

use super::Slot;

/// A node's place in [`Tree::nodes`]; the root is 0.
type NodeId = u32;
const NO_NODE: NodeId = NodeId::MAX;

/// A node of the frozen tree: its `*` child, and where its label (the
/// literal that leads to it; empty for a wildcard child), its wildcard
/// children and its terminals start in their arrays (each ends where the
/// next node's starts). 16 bytes: 100,000 checks hold about 300,000.
#[derive(Debug, Clone, Copy)]
struct Node {
    star: NodeId,
    label: u32,
    globs: u32,
    terminals: u32,
}

/// A literal child, its label the child's. All the tree's literal edges
/// share one table keyed by (parent, label), rather than a map per node:
/// a map per node cost about 1 KB a check.
#[derive(Debug, Clone, Copy)]
struct Edge {
    parent: NodeId,
    child: NodeId,
}

/// The label of node `id`, from where each node's label starts.
fn label<'a>(labels: &'a [u8], starts: &[u32], id: NodeId) -> &'a [u8] {
    &labels[starts[id as usize] as usize..starts[id as usize + 1] as usize]
}

fn edge_hash(parent: NodeId, label: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(label, u64::from(parent))
}

/// An immutable tree of glob patterns, built at once.
#[derive(Debug)]
pub(super) struct Tree {
    /// One past the last node is a sentinel that closes the last ranges.
    nodes: Vec<Node>,
    edges: HashTable<Edge>,
    labels: Vec<u8>,
    globs: Vec<(Arc<NodeGlob>, NodeId)>,
    terminals: Vec<Slot>,
    complex: Vec<(Glob, Slot)>,
    tagged: TagIndex<Slot>,
}

impl Default for Tree {
    fn default() -> Self {
        Builder::default().freeze()
    }
}

/// The index as patterns go in: wildcard children and terminals are
/// listed by node and laid out per node when frozen.
#[derive(Debug, Default)]
struct Builder {
    stars: Vec<NodeId>,
    /// Where each node's label starts in `labels`, with one past the last.
    label_at: Vec<u32>,
    edges: HashTable<Edge>,
    labels: Vec<u8>,
    glob_children: FxHashMap<(NodeId, Box<str>), NodeId>,
    /// Each distinct wildcard node compiled once: `host[0-9]` under
    /// 10,000 parents is one matcher.
    compiled: FxHashMap<Box<str>, Arc<NodeGlob>>,
    globs: Vec<(NodeId, Arc<NodeGlob>, NodeId)>,
    terminals: Vec<(NodeId, Slot)>,
    complex: Vec<(Glob, Slot)>,
    tagged: TagIndex<Slot>,
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

impl Builder {
    /// A new node whose label is `label`.
    fn node(&mut self, label: &str) -> NodeId {
        if self.label_at.is_empty() {
            self.label_at.push(0);
        }
        self.stars.push(NO_NODE);
        self.labels.extend_from_slice(label.as_bytes());
        self.label_at.push(self.labels.len() as u32);
        (self.stars.len() - 1) as NodeId
    }

    fn literal_child(&mut self, parent: NodeId, part: &str) -> NodeId {
        let hash = edge_hash(parent, part.as_bytes());
        let (labels, starts) = (&self.labels, &self.label_at);
        let found = self.edges.find(hash, |e| {
            e.parent == parent && label(labels, starts, e.child) == part.as_bytes()
        });
        if let Some(e) = found {
            return e.child;
        }
        let child = self.node(part);
        let (labels, starts) = (&self.labels, &self.label_at);
        self.edges.insert_unique(hash, Edge { parent, child }, |e| {
            edge_hash(e.parent, label(labels, starts, e.child))
        });
        child
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
        if self.stars.is_empty() {
            self.node("");
        }
        let mut node: NodeId = 0;
        for part in pattern.split('.') {
            node = if part == "*" {
                match self.stars[node as usize] {
                    NO_NODE => {
                        let child = self.node("");
                        self.stars[node as usize] = child;
                        child
                    }
                    child => child,
                }
            } else if Glob::is_literal(part) {
                self.literal_child(node, part)
            } else if let Some(&child) = self.glob_children.get(&(node, part.into())) {
                child
            } else {
                let glob = match self.compiled.get(part) {
                    Some(g) => g.clone(),
                    None => {
                        let g = NodeGlob::new(part).ok_or_else(|| GlobError {
                            pattern: pattern.to_string(),
                            reason: format!(
                                "node {part:?} has unbalanced braces or expands to too many alternatives"
                            ),
                        })?;
                        let g = Arc::new(g);
                        self.compiled.insert(part.into(), g.clone());
                        g
                    }
                };
                let child = self.node("");
                self.glob_children.insert((node, part.into()), child);
                self.globs.push((node, glob, child));
                child
            };
        }
        self.terminals.push((node, slot));
        Ok(())
    }

    fn freeze(mut self) -> Tree {
        // Stable sorts keep each node's terminals in insertion order, so
        // identical patterns report their checks in slot order.
        self.globs.sort_by_key(|g| g.0);
        self.terminals.sort_by_key(|t| t.0);
        let mut nodes = Vec::with_capacity(self.stars.len() + 1);
        let (mut g, mut t) = (0, 0);
        for (id, &star) in self.stars.iter().enumerate() {
            nodes.push(Node {
                star,
                label: self.label_at[id],
                globs: g as u32,
                terminals: t as u32,
            });
            while g < self.globs.len() && self.globs[g].0 as usize == id {
                g += 1;
            }
            while t < self.terminals.len() && self.terminals[t].0 as usize == id {
                t += 1;
            }
        }
        nodes.push(Node {
            star: NO_NODE,
            label: self.labels.len() as u32,
            globs: g as u32,
            terminals: t as u32,
        });
        let (labels, starts) = (&self.labels, &self.label_at);
        self.edges
            .shrink_to_fit(|e| edge_hash(e.parent, label(labels, starts, e.child)));
        self.labels.shrink_to_fit();
        let mut complex = self.complex;
        complex.shrink_to_fit();
        Tree {
            nodes,
            edges: self.edges,
            labels: self.labels,
            // Not `collect()`, which would keep the wider buffers.
            globs: exact(self.globs.into_iter().map(|(_, g, c)| (g, c))),
            terminals: exact(self.terminals.into_iter().map(|(_, s)| s)),
            complex,
            tagged: self.tagged,
        }
    }
}

fn exact<T>(items: impl ExactSizeIterator<Item = T>) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    out.extend(items);
    out
}

impl Tree {
    /// Builds an index of `(slot, pattern)` pairs. Patterns that are not
    /// valid globs are returned with their error.
    pub fn build<'a>(
        patterns: impl IntoIterator<Item = (Slot, &'a str)>,
    ) -> (Tree, Vec<(Slot, GlobError)>) {
        let mut builder = Builder::default();
        let mut errors = Vec::new();
        for (slot, pattern) in patterns {
            if let Err(e) = builder.insert(slot, pattern) {
                errors.push((slot, e));
            }
        }
        (builder.freeze(), errors)
    }

    /// Whether `pattern` would be taken by [`Tree::build`], and is
    /// within the whole-pattern glob limits: it is inserted into an index
    /// of its own, so the rule is the index's by construction. Validating
    /// a check this way rather than compiling a regex for every live glob
    /// took most of the time of loading 100,000 checks.
    pub fn check(pattern: &str) -> Result<(), GlobError> {
        if !is_tag_query(pattern) {
            check_limits(pattern)?;
        }
        Builder::default().insert(0, pattern)
    }

    fn child(&self, parent: NodeId, part: &str) -> Option<NodeId> {
        let hash = edge_hash(parent, part.as_bytes());
        self.edges
            .find(hash, |e| {
                e.parent == parent && {
                    let (from, to) = (
                        self.nodes[e.child as usize].label,
                        self.nodes[e.child as usize + 1].label,
                    );
                    &self.labels[from as usize..to as usize] == part.as_bytes()
                }
            })
            .map(|e| e.child)
    }

    /// Appends the slots of every pattern that matches `name`.
    pub fn matches(&self, name: &str, out: &mut Vec<Slot>) {
        if self.nodes.len() > 1 {
            self.walk(name, out);
        }
        for (g, slot) in &self.complex {
            if g.is_match(name) {
                out.push(*slot);
            }
        }
        self.tagged.matches(name, out);
    }

    fn walk(&self, name: &str, out: &mut Vec<Slot>) {
        let mut live: Vec<NodeId> = vec![0];
        let mut next: Vec<NodeId> = Vec::new();
        for part in name.split('.') {
            next.clear();
            for &id in &live {
                if let Some(n) = self.child(id, part) {
                    next.push(n);
                }
                let (node, end) = (self.nodes[id as usize], self.nodes[id as usize + 1]);
                if node.star != NO_NODE {
                    next.push(node.star);
                }
                for (g, n) in &self.globs[node.globs as usize..end.globs as usize] {
                    if g.is_match(part) {
                        next.push(*n);
                    }
                }
            }
            std::mem::swap(&mut live, &mut next);
            if live.is_empty() {
                return;
            }
        }
        for id in live {
            let (from, to) = (
                self.nodes[id as usize].terminals,
                self.nodes[id as usize + 1].terminals,
            );
            out.extend_from_slice(&self.terminals[from as usize..to as usize]);
        }
    }

    /// Whether `name` matches any pattern.
    #[cfg(test)]
    pub fn is_match(&self, name: &str) -> bool {
        let mut out = Vec::new();
        self.matches(name, &mut out);
        !out.is_empty()
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
            let built = Tree::build([(0, p)]).1.is_empty();
            assert_eq!(Tree::check(p).is_ok(), built, "{p}");
        }
        assert!(Tree::check("a.b{1,2.c").is_err(), "an unclosed brace");
        let long = format!("a.{}", "b".repeat(crate::route::glob::MAX_GLOB_BYTES));
        assert!(Tree::check(&long).is_err(), "longer than the limit");
    }

    fn index(patterns: &[&str]) -> Tree {
        let (idx, errors) = Tree::build(patterns.iter().enumerate().map(|(i, p)| (i as Slot, *p)));
        assert!(errors.is_empty(), "{errors:?}");
        idx
    }

    fn hits(idx: &Tree, name: &str) -> Vec<Slot> {
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
        assert!(Tree::check("seriesByTag('a=~x{2}')").is_ok());
        assert!(Tree::check("seriesByTag('a!=x')").is_err());
    }

    #[test]
    fn a_bad_pattern_is_reported_not_fatal() {
        let (idx, errors) = Tree::build([(0, "a.{b"), (1, "a.b")]);
        assert_eq!(errors.len(), 1);
        assert!(idx.is_match("a.b"));
    }
}
