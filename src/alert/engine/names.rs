//! Which checks match a name, remembered per name so a point costs a hash
//! lookup rather than a walk of the pattern index.
//!
//! A name is kept as a 128-bit keyed hash (XXH3 under a secret drawn per
//! process), not as a string, and each distinct list of matching checks
//! once: with a million names through one check, the strings and the
//! per-name lists took about 70 bytes a series. Two names would have to
//! agree on 128 bits for one to be evaluated by the other's checks.

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128_with_secret;

use crate::relay::answers::{random_secret, SECRET_BYTES};
use crate::route::index::Slot;

pub(super) struct NameCache {
    by_name: FxHashMap<u128, u32>,
    /// Each distinct list of matching slots, and its index in `lists`.
    lists: Vec<Box<[Slot]>>,
    list_ids: FxHashMap<Box<[Slot]>, u32>,
    max_names: usize,
    secret: Box<[u8; SECRET_BYTES]>,
}

impl NameCache {
    /// A cache of about `max_names` names.
    pub(super) fn new(max_names: usize) -> Self {
        NameCache {
            by_name: FxHashMap::default(),
            lists: Vec::new(),
            list_ids: FxHashMap::default(),
            max_names: max_names.max(1),
            secret: random_secret(),
        }
    }

    /// The slots matching `name`, from the cache or from `find`, whose
    /// answer is then kept.
    pub(super) fn get_or(
        &mut self,
        name: &str,
        out: &mut Vec<Slot>,
        find: impl FnOnce(&mut Vec<Slot>),
    ) {
        let key = xxh3_128_with_secret(name.as_bytes(), &self.secret[..]);
        if let Some(&id) = self.by_name.get(&key) {
            out.extend_from_slice(&self.lists[id as usize]);
            return;
        }
        find(out);
        if self.by_name.len() >= self.max_names {
            self.clear();
        }
        let id = match self.list_ids.get(out.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.lists.len() as u32;
                self.lists.push(out.as_slice().into());
                self.list_ids.insert(out.as_slice().into(), id);
                id
            }
        };
        self.by_name.insert(key, id);
    }

    /// Forgets every name (the checks changed).
    pub(super) fn clear(&mut self) {
        self.by_name.clear();
        self.lists.clear();
        self.list_ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_names_slots_and_shares_equal_lists() {
        let mut c = NameCache::new(1000);
        let mut finds = 0;
        for round in 0..2 {
            for i in 0..100u32 {
                let mut out = Vec::new();
                c.get_or(&format!("n.{i}"), &mut out, |o| {
                    finds += 1;
                    o.extend([i % 3, 7]);
                });
                assert_eq!(out, [i % 3, 7], "round {round}");
            }
        }
        assert_eq!(finds, 100, "each name found once");
        assert_eq!(c.lists.len(), 3, "three distinct lists");
        // Full: it starts over rather than grow.
        let mut small = NameCache::new(2);
        for i in 0..5 {
            small.get_or(&format!("m.{i}"), &mut Vec::new(), |o| o.push(1));
        }
        assert!(small.by_name.len() <= 2);
    }
}
