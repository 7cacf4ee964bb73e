//! A check's series by name, held densely: the names and states in one
//! vector in the order they were first seen, and a table of 4-byte
//! positions keyed by the name's hash. A hash map of (name, state)
//! entries is at most 7/8 full and just past a power of two half empty: at
//! a million series it took 136 bytes a series, this about 75.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::check::SeriesState;

#[derive(Debug, Default)]
pub(super) struct SeriesMap {
    at: HashTable<u32>,
    entries: Vec<(Box<str>, SeriesState)>,
}

fn hash(name: &str) -> u64 {
    FxBuildHasher.hash_one(name)
}

impl SeriesMap {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    fn position(&self, name: &str) -> Option<usize> {
        let entries = &self.entries;
        self.at
            .find(hash(name), |&i| &*entries[i as usize].0 == name)
            .map(|&i| i as usize)
    }

    pub(super) fn get(&self, name: &str) -> Option<&SeriesState> {
        self.position(name).map(|i| &self.entries[i].1)
    }

    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut SeriesState> {
        self.position(name).map(|i| &mut self.entries[i].1)
    }

    /// Adds `name`, or replaces its state; returns the state in place.
    pub(super) fn insert(&mut self, name: &str, state: SeriesState) -> &mut SeriesState {
        if let Some(i) = self.position(name) {
            self.entries[i].1 = state;
            return &mut self.entries[i].1;
        }
        let i = self.entries.len();
        self.entries.push((name.into(), state));
        let entries = &self.entries;
        self.at
            .insert_unique(hash(name), i as u32, |&j| hash(&entries[j as usize].0));
        &mut self.entries[i].1
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &SeriesState)> {
        self.entries.iter().map(|(n, s)| (&**n, s))
    }

    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut SeriesState)> {
        self.entries.iter_mut().map(|(n, s)| (&**n, s))
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| &**n)
    }

    pub(super) fn clear(&mut self) {
        *self = SeriesMap::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_it_holds_in_the_order_first_seen() {
        let mut m = SeriesMap::default();
        for i in 0..1000 {
            m.insert(&format!("s.{i}"), SeriesState::new());
        }
        m.insert("s.7", SeriesState::new()).set_value(7.0);
        assert_eq!(m.len(), 1000);
        assert_eq!(m.get("s.7").unwrap().value(), Some(7.0));
        assert!(m.get("s.1000").is_none());
        assert_eq!(m.names().nth(999), Some("s.999"));
        for (name, s) in m.iter_mut() {
            if name == "s.3" {
                s.set_value(3.0);
            }
        }
        assert_eq!(m.get_mut("s.3").unwrap().value(), Some(3.0));
        m.clear();
        assert_eq!((m.len(), m.get("s.3").is_none()), (0, true));
    }
}
