//! Which live checks match a metric name, at a cost that does not grow with
//! the number of checks, and changed at a cost in proportion to the change.
//!
//! Patterns are split on `.` into a tree ([`tree`]), as graphite-web
//! matches them node by node (no wildcard crosses a dot). The tree is flat:
//! nodes are numbered, every literal edge sits in one table keyed by
//! (parent, label), a bare `*` child is kept apart, and only nodes with
//! other wildcards run a compiled matcher. A name walks the tree level by
//! level with the set of live nodes; the terminals reached at its last
//! level are the matching checks. The few patterns whose groups span dots
//! (`{a.b,c}`) or that use `**` are matched one by one. `seriesByTag(...)`
//! targets go to a [`TagIndex`](crate::route::tags::TagIndex), which files
//! each query under a tag its series must carry.
//!
//! A change does not rebuild the tree of 100,000 patterns: the index is a
//! shared base tree, a small tree of the patterns changed since, and the
//! slots whose base pattern no longer holds. When the changes reach an
//! eighth of the base, the next change builds a new base, so each change
//! costs its own size plus, amortised, a constant.
//!
//! Names repeat every interval, so callers cache the answer per name and
//! invalidate by [`PatternIndex::generation`].

mod tree;

use std::sync::Arc;

use rustc_hash::FxHashSet;

use crate::route::glob::GlobError;
use tree::Tree;

/// A check's slot in the engine, the payload of a pattern.
pub type Slot = u32;

/// Changes the small tree holds before a change rebuilds the base, at the
/// least: below it a rebuild is cheap anyway.
const MIN_RECENT_BEFORE_REBUILD: usize = 1024;

/// An immutable index of glob patterns; a change makes a new one that
/// shares the unchanged part.
#[derive(Debug, Default)]
pub struct PatternIndex {
    base: Arc<Tree>,
    /// The slots `base` holds, sorted.
    base_slots: Arc<[Slot]>,
    /// Slots whose pattern in `base` no longer holds.
    gone: FxHashSet<Slot>,
    /// Of `gone`, how many `base` holds.
    base_gone: usize,
    /// Patterns set since `base` was built, and their tree.
    recent_patterns: Vec<(Slot, Box<str>)>,
    recent: Tree,
    generation: u64,
}

impl PatternIndex {
    /// Builds an index of `(slot, pattern)` pairs. Patterns that are not
    /// valid globs are returned with their error.
    pub fn build<'a>(
        patterns: impl IntoIterator<Item = (Slot, &'a str)>,
        generation: u64,
    ) -> (PatternIndex, Vec<(Slot, GlobError)>) {
        let mut slots = Vec::new();
        let (base, errors) = Tree::build(patterns.into_iter().inspect(|&(s, _)| slots.push(s)));
        slots.retain(|s| !errors.iter().any(|(e, _)| e == s));
        slots.sort_unstable();
        let index = PatternIndex {
            base: Arc::new(base),
            base_slots: slots.into(),
            generation,
            ..PatternIndex::default()
        };
        (index, errors)
    }

    /// Whether `pattern` would be taken by [`PatternIndex::build`], and is
    /// within the whole-pattern glob limits.
    pub fn check(pattern: &str) -> Result<(), GlobError> {
        Tree::check(pattern)
    }

    /// Whether the changes held beside the base are many enough that the
    /// next change should build the index anew.
    pub fn wants_rebuild(&self) -> bool {
        self.recent_patterns.len() >= MIN_RECENT_BEFORE_REBUILD.max(self.base_slots.len() / 8)
    }

    /// This index with the patterns of `changed` slots set: `Some` to the
    /// new pattern, `None` when the slot no longer has a live pattern. Costs
    /// the size of the changes held beside the base, not of the base.
    pub fn update<'a>(
        &self,
        changed: impl IntoIterator<Item = (Slot, Option<&'a str>)>,
        generation: u64,
    ) -> (PatternIndex, Vec<(Slot, GlobError)>) {
        // The last word on each slot; sorted, so the small tree is built
        // the same way whatever order the changes came in.
        let changes: std::collections::BTreeMap<Slot, Option<&str>> = changed.into_iter().collect();
        let mut gone = self.gone.clone();
        let mut base_gone = self.base_gone;
        for &slot in changes.keys() {
            if gone.insert(slot) && self.base_slots.binary_search(&slot).is_ok() {
                base_gone += 1;
            }
        }
        let mut recent_patterns: Vec<(Slot, Box<str>)> = self
            .recent_patterns
            .iter()
            .filter(|(s, _)| !changes.contains_key(s))
            .cloned()
            .collect();
        recent_patterns.extend(
            changes
                .iter()
                .filter_map(|(&s, p)| p.map(|p| (s, Box::from(p)))),
        );
        let (recent, errors) = Tree::build(recent_patterns.iter().map(|(s, p)| (*s, &**p)));
        recent_patterns.retain(|(s, _)| !errors.iter().any(|(e, _)| e == s));
        let index = PatternIndex {
            base: self.base.clone(),
            base_slots: self.base_slots.clone(),
            gone,
            base_gone,
            recent_patterns,
            recent,
            generation,
        };
        (index, errors)
    }

    /// Appends the slots of every pattern that matches `name`.
    pub fn matches(&self, name: &str, out: &mut Vec<Slot>) {
        let from = out.len();
        self.base.matches(name, out);
        if !self.gone.is_empty() {
            let mut keep = from;
            for i in from..out.len() {
                if !self.gone.contains(&out[i]) {
                    out[keep] = out[i];
                    keep += 1;
                }
            }
            out.truncate(keep);
        }
        if !self.recent_patterns.is_empty() {
            self.recent.matches(name, out);
        }
    }

    /// Whether `name` matches any pattern.
    pub fn is_match(&self, name: &str) -> bool {
        let mut out = Vec::new();
        self.matches(name, &mut out);
        !out.is_empty()
    }

    /// How many patterns it holds.
    pub fn len(&self) -> usize {
        self.base_slots.len() - self.base_gone + self.recent_patterns.len()
    }

    /// Whether it holds no pattern.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever the set of patterns changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hits(idx: &PatternIndex, name: &str) -> Vec<Slot> {
        let mut out = Vec::new();
        idx.matches(name, &mut out);
        out.sort_unstable();
        out
    }

    const PATTERNS: [&str; 8] = [
        "a.*",
        "a.b",
        "a.{b,c}",
        "*.b",
        "x.y.z",
        "seriesByTag('name=a.b')",
        "a.{b.c,b}",
        "a.[bc]",
    ];
    const NAMES: [&str; 6] = ["a.b", "a.c", "q.b", "x.y.z", "a.b.c", "a.b;dc=ams"];

    proptest! {
        /// Any sequence of changes gives what a build of the result gives:
        /// the same matches for every name, the same size.
        #[test]
        fn updates_match_a_fresh_build(
            initial in proptest::collection::vec(proptest::option::of(0..PATTERNS.len()), 0..12),
            changes in proptest::collection::vec(
                proptest::collection::vec((0u32..16, proptest::option::of(0..PATTERNS.len())), 1..4),
                0..40),
        ) {
            let mut want: std::collections::BTreeMap<Slot, &str> = initial
                .iter()
                .enumerate()
                .filter_map(|(s, p)| p.map(|p| (s as Slot, PATTERNS[p])))
                .collect();
            let (mut idx, _) = PatternIndex::build(want.iter().map(|(s, p)| (*s, *p)), 1);
            for (g, step) in changes.iter().enumerate() {
                let step: Vec<(Slot, Option<&str>)> =
                    step.iter().map(|&(s, p)| (s, p.map(|p| PATTERNS[p]))).collect();
                for &(s, p) in &step {
                    match p {
                        Some(p) => want.insert(s, p),
                        None => want.remove(&s),
                    };
                }
                idx = idx.update(step.iter().copied(), g as u64 + 2).0;
                let (fresh, _) = PatternIndex::build(want.iter().map(|(s, p)| (*s, *p)), 0);
                prop_assert_eq!(idx.len(), fresh.len());
                for name in NAMES {
                    prop_assert_eq!(hits(&idx, name), hits(&fresh, name), "{}", name);
                }
            }
        }
    }

    #[test]
    fn a_bad_pattern_in_an_update_is_reported_and_left_out() {
        let (idx, _) = PatternIndex::build([(0, "a.b")], 1);
        let (idx, errors) = idx.update([(1, Some("a.{b")), (2, Some("a.*"))], 2);
        assert_eq!(errors.len(), 1);
        assert_eq!((hits(&idx, "a.b"), idx.len()), (vec![0, 2], 2));
    }

    #[test]
    fn many_changes_ask_for_a_rebuild() {
        let (mut idx, _) = PatternIndex::build([(0, "a.b")], 1);
        for s in 1..=MIN_RECENT_BEFORE_REBUILD as Slot {
            assert!(!idx.wants_rebuild());
            idx = idx.update([(s, Some("c.d"))], 2).0;
        }
        assert!(idx.wants_rebuild());
    }
}
