//! Remembered routes: what the router answered for a name, kept per
//! connection so a name that repeats every interval is hashed once.
//!
//! Placing a name on `carbon_ch`'s ring costs an MD5 and a search of the
//! ring, about 170 ns, which `perf` showed as half of the relay's CPU with
//! three destinations; a client sends the same names every interval, so the
//! answer for a name is worth remembering. Answers with a rewrite are not
//! kept (the new name would have to be kept too); those of `any_of` and
//! `failover` clusters, which follow the destinations' health, are kept
//! only until a destination goes up or down ([`RouteMemo::sync_health`]).
//! A reload swaps the table, and the dispatcher starts a new memo with it.
//!
//! Like the alerting tap's answer cache, entries are keyed by a keyed hash
//! of the name rather than the name (a second cache miss per point): a
//! wrong route needs two of a connection's names to agree on 62 bits of
//! XXH3 under a seed drawn at random per process, about one chance in
//! 10^17 per new name with 100,000 names, far below the rate of memory
//! errors.

use std::collections::HashMap;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::route::{DestId, Router, Routes};

/// Ways per bucket: eight 8-byte entries fill one 64-byte cache line.
const WAYS: usize = 8;
/// Buckets a memo starts with (16 KiB); it doubles as names arrive.
const MIN_BUCKETS: usize = 256;
/// Destinations one remembered answer may hold.
const MAX_TARGETS: usize = 4;
/// Distinct answers a memo keeps; a name with a new answer past this is
/// routed every time. Real tables have a few per destination.
const MAX_ANSWERS: usize = 4096;
const _: () = assert!(MAX_ANSWERS as u64 <= ANSWER_MASK + 1);
/// In an entry: it belongs to the bucket before, which was full.
const DISPLACED: u64 = 1 << 15;
/// In an entry: its answer's index.
const ANSWER_MASK: u64 = 0x7FFF;
/// An unused destination lane.
const NO_DEST: u16 = u16::MAX;
/// In the first lane: a blackhole took the name.
const BLACKHOLED: u16 = u16::MAX - 1;

/// One remembered name in 8 bytes: the high 48 bits of its hash (never 0,
/// which is an empty way), a [`DISPLACED`] bit and the index of its answer. The bucket is
/// chosen by the hash's low bits, so a wrong hit needs 48 bits and the
/// bucket's to agree: 62 bits with 100,000 names. Eight fit a cache line,
/// so 100,000 names take 1 MiB, which stays in a core's L2 cache.
#[derive(Debug, Clone, Copy, Default)]
struct Entry(u64);

#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([Entry; WAYS]);

/// A connection's remembered routes. See the module comment.
#[derive(Debug)]
pub struct RouteMemo {
    buckets: Vec<Bucket>,
    len: usize,
    /// The table before the last doubling, while names move over: its
    /// entries cannot be rehashed (they keep 48 bits of the hash), so each
    /// moves when its name is next seen. Dropped once the new table holds
    /// as many names, or at the next doubling.
    old: Vec<Bucket>,
    old_len: usize,
    max_buckets: usize,
    seed: u64,
    /// Distinct answers, as destination lanes; entries name them.
    answers: Vec<u64>,
    answer_ids: HashMap<u64, u16>,
    /// The destinations' health generation the remembered answers hold
    /// for, and whether any answer followed health.
    health_epoch: u64,
    holds_volatile: bool,
}

impl RouteMemo {
    /// A memo for up to `max_names` names (rounded up to a power of two
    /// buckets); past that a new name takes the place of an older one.
    pub fn new(max_names: usize, seed: u64) -> Self {
        let max_buckets = max_names.div_ceil(WAYS).next_power_of_two();
        RouteMemo {
            buckets: vec![Bucket::default(); MIN_BUCKETS.min(max_buckets)],
            len: 0,
            old: Vec::new(),
            old_len: 0,
            max_buckets,
            seed,
            answers: Vec::new(),
            answer_ids: HashMap::new(),
            health_epoch: 0,
            holds_volatile: false,
        }
    }

    /// A seed for [`RouteMemo::new`] drawn from the OS's randomness, so
    /// no client can choose names that collide.
    pub fn random_seed() -> u64 {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    }

    /// Tells the memo the destinations' health generation (a counter
    /// bumped whenever a destination goes up or down): answers of `any_of`
    /// and `failover` clusters hold only while it stays the same, so on a
    /// change they are forgotten and routed again by the new health.
    #[inline]
    pub fn sync_health(&mut self, epoch: u64) {
        if epoch != self.health_epoch {
            self.health_epoch = epoch;
            if self.holds_volatile {
                self.clear();
            }
        }
    }

    /// Forgets every name.
    pub fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = Bucket::default());
        self.old = Vec::new();
        self.len = 0;
        self.holds_volatile = false;
    }

    /// Names remembered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hashes `name` and starts loading its bucket, for a
    /// [`RouteMemo::route_hashed`] a few lines later: with many names the
    /// table is larger than a core's cache, and each lookup would wait for
    /// memory.
    #[inline]
    pub fn prefetch(&self, name: &str) -> u64 {
        let hash = xxh3_64_with_seed(name.as_bytes(), self.seed);
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = &self.buckets[hash as usize & (self.buckets.len() - 1)];
            // SAFETY: a prefetch is only a hint; it never faults, and `p`
            // is a valid reference anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const Bucket).cast()) };
        }
        hash
    }

    /// [`Router::route`], answered from memory when `name` was routed
    /// before.
    #[inline]
    pub fn route(
        &mut self,
        router: &Router,
        name: &str,
        healthy: &dyn Fn(DestId) -> bool,
        out: &mut Routes,
    ) {
        let hash = xxh3_64_with_seed(name.as_bytes(), self.seed);
        self.route_hashed(router, name, hash, healthy, out);
    }

    /// [`RouteMemo::route`] with the hash [`RouteMemo::prefetch`] returned.
    #[inline]
    pub fn route_hashed(
        &mut self,
        router: &Router,
        name: &str,
        hash: u64,
        healthy: &dyn Fn(DestId) -> bool,
        out: &mut Routes,
    ) {
        let tag = (hash & !0xFFFF).max(1 << 16);
        if let Some(answer) = lookup(&self.buckets, hash, tag) {
            decode(self.answers[usize::from(answer)], out);
            return;
        }
        if let Some(answer) = lookup(&self.old, hash, tag) {
            decode(self.answers[usize::from(answer)], out);
            self.insert(hash, tag | u64::from(answer));
            return;
        }
        router.route(name, healthy, out);
        if let Some(answer) = encode(out).and_then(|lanes| self.answer_id(lanes)) {
            self.holds_volatile |= out.volatile;
            self.insert(hash, tag | u64::from(answer));
        }
    }

    fn answer_id(&mut self, lanes: u64) -> Option<u16> {
        if let Some(&id) = self.answer_ids.get(&lanes) {
            return Some(id);
        }
        if self.answers.len() >= MAX_ANSWERS {
            return None;
        }
        let id = self.answers.len() as u16;
        self.answers.push(lanes);
        self.answer_ids.insert(lanes, id);
        Some(id)
    }

    fn insert(&mut self, hash: u64, entry: u64) {
        let mask = self.buckets.len() - 1;
        let b = hash as usize & mask;
        let next = (b + 1) & mask;
        if let Some(e) = self.buckets[b].0.iter_mut().find(|e| e.0 == 0) {
            *e = Entry(entry);
            self.len += 1;
        } else if let Some(e) = self.buckets[next].0.iter_mut().find(|e| e.0 == 0) {
            *e = Entry(entry | DISPLACED);
            self.len += 1;
        } else if self.buckets.len() < self.max_buckets {
            self.grow();
            return self.insert(hash, entry);
        } else {
            // Full at its bound: the name takes a way chosen by hash bits
            // the bucket index did not use.
            self.buckets[b].0[(entry >> 61) as usize] = Entry(entry);
        }
        if self.len >= self.old_len && !self.old.is_empty() {
            self.old = Vec::new();
        }
        if self.len * 8 >= self.buckets.len() * WAYS * 7 && self.buckets.len() < self.max_buckets {
            self.grow();
        }
    }

    /// Doubles the table. Entries keep too few of their hash's bits to be
    /// placed again, so the old table stays beside the new one and each
    /// name moves over when next seen.
    fn grow(&mut self) {
        let bigger = vec![Bucket::default(); self.buckets.len() * 2];
        self.old = std::mem::replace(&mut self.buckets, bigger);
        self.old_len = self.len;
        self.len = 0;
    }
}

/// The answer id `table` holds for `tag`: in the name's bucket, or, when
/// that is full, displaced into the next one.
#[inline]
fn lookup(table: &[Bucket], hash: u64, tag: u64) -> Option<u16> {
    if table.is_empty() {
        return None;
    }
    let mask = table.len() - 1;
    let b = hash as usize & mask;
    find(&table[b], tag).or_else(|| {
        let full = table[b].0.iter().all(|e| e.0 != 0);
        full.then(|| find(&table[(b + 1) & mask], tag | DISPLACED))
            .flatten()
    })
}

/// The answer id `bucket` holds for `key` (a tag, with [`DISPLACED`] for
/// an entry of the bucket before). Every way is compared without a
/// branch: which way holds a name is random, and an early exit would
/// mispredict.
#[inline]
fn find(bucket: &Bucket, key: u64) -> Option<u16> {
    let mut hits = 0u32;
    for (i, e) in bucket.0.iter().enumerate() {
        hits |= u32::from(e.0 & !ANSWER_MASK == key) << i;
    }
    (hits != 0).then(|| (bucket.0[hits.trailing_zeros() as usize].0 & ANSWER_MASK) as u16)
}

fn decode(lanes: u64, out: &mut Routes) {
    out.clear();
    if lanes as u16 == BLACKHOLED {
        out.blackholed = true;
        return;
    }
    for i in 0..MAX_TARGETS {
        let d = (lanes >> (16 * i)) as u16;
        if d == NO_DEST {
            break;
        }
        out.targets.push((usize::from(d), None));
    }
}

/// The answer in `out` as lanes, when it may be remembered.
fn encode(out: &Routes) -> Option<u64> {
    // An aggregated metric's answer must reach the aggregator each time.
    if !out.names.is_empty()
        || out.targets.len() > MAX_TARGETS
        || out.data_dependent
        || !out.aggregated.is_empty()
    {
        return None;
    }
    if out.targets.is_empty() {
        let first = if out.blackholed { BLACKHOLED } else { NO_DEST };
        return Some(u64::MAX << 16 | u64::from(first));
    }
    let mut lanes = u64::MAX;
    for (i, &(d, name)) in out.targets.iter().enumerate() {
        let d = u16::try_from(d).ok().filter(|&d| d < BLACKHOLED)?;
        if name.is_some() {
            return None;
        }
        lanes &= !(0xFFFF << (16 * i));
        lanes |= u64::from(d) << (16 * i);
    }
    Some(lanes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::hash::Node;
    use crate::route::{Cluster, ClusterType, Matcher, Rule};

    fn ring(kind: ClusterType, n: usize, replication: usize) -> Cluster {
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                host: "127.0.0.1".into(),
                port: 2000 + i as u16,
                instance: Some(format!("{i}")),
            })
            .collect();
        Cluster::new(
            "c".into(),
            kind,
            replication,
            false,
            &nodes,
            (0..n).collect(),
        )
        .unwrap()
    }

    fn router(rules: Vec<Rule>, clusters: Vec<Cluster>) -> Router {
        Router {
            rules,
            clusters,
            destinations: Vec::new(),
            cleanse: false,
            validates: false,
            aggregates: Vec::new(),
        }
    }

    fn rule(matcher: Matcher, to: Vec<usize>, stop: bool) -> Rule {
        Rule {
            matcher,
            rewrite: None,
            hash_key: None,
            validate: None,
            aggregate: None,
            to,
            stop,
        }
    }

    /// Every answer from memory is the router's own, for every cluster
    /// type, replication and blackholes, across growth and eviction.
    #[test]
    fn answers_that_depend_on_the_data_are_not_remembered() {
        let mut checked = rule(Matcher::All, vec![0], true);
        checked.validate = Some(crate::route::Validate {
            regex: regex::Regex::new("^1 ").unwrap(),
            log: false,
        });
        let mut r = router(vec![checked], vec![ring(ClusterType::CarbonCh, 3, 1)]);
        r.validates = true;
        let mut memo = RouteMemo::new(1024, 1);
        let mut out = Routes::default();
        for (data, sent) in [("1 5", true), ("2 5", false), ("1 6", true), ("3 6", false)] {
            out.data = data.into();
            memo.route(&r, "a.b", &|_| true, &mut out);
            assert_eq!(!out.targets.is_empty(), sent, "{data}");
        }
    }

    #[test]
    fn remembered_routes_are_the_routers() {
        let kinds = [
            ClusterType::CarbonCh,
            ClusterType::Fnv1aCh,
            ClusterType::CarbonChCrelay,
            ClusterType::Fnv1aChCrelay,
            ClusterType::JumpFnv1aCh,
            ClusterType::Forward,
        ];
        for kind in kinds {
            for replication in [1, 2] {
                let r = router(
                    vec![
                        rule(Matcher::Prefix("drop.".into()), vec![1], true),
                        rule(Matcher::Prefix("none.".into()), vec![], true),
                        rule(Matcher::All, vec![0], false),
                    ],
                    vec![
                        ring(kind, 5, replication),
                        Cluster::new("bh".into(), ClusterType::Blackhole, 1, false, &[], vec![])
                            .unwrap(),
                    ],
                );
                // 1,000 names a bound of 256: growth, then eviction.
                let mut memo = RouteMemo::new(256, 7);
                let (mut want, mut got) = (Routes::default(), Routes::default());
                for pass in 0..3 {
                    for i in 0..1000 {
                        let name = match i % 10 {
                            0 => format!("drop.{i}"),
                            1 => format!("none.{i}"),
                            _ => format!("servers.host{i}.cpu.{pass}"),
                        };
                        r.route(&name, &|_| true, &mut want);
                        memo.route(&r, &name, &|_| true, &mut got);
                        assert_eq!(got.targets, want.targets, "{kind:?} {name}");
                        assert_eq!(got.blackholed, want.blackholed, "{kind:?} {name}");
                    }
                }
                assert!(memo.len() <= 256 && memo.len() > 100, "{}", memo.len());
            }
        }
    }

    /// Answers that follow health are forgotten when health changes, and
    /// those that rename the metric are never remembered.
    #[test]
    fn health_changes_and_rewrites_are_not_remembered() {
        for kind in [ClusterType::AnyOf, ClusterType::Failover] {
            let r = router(
                vec![rule(Matcher::All, vec![0], false)],
                vec![ring(kind, 3, 1)],
            );
            let mut memo = RouteMemo::new(1024, 1);
            let mut out = Routes::default();
            memo.sync_health(5);
            memo.route(&r, "a.b", &|_| true, &mut out);
            let usual = out.targets[0].0;
            assert_eq!(memo.len(), 1);
            // A destination went down: the generation moves on.
            memo.sync_health(6);
            assert!(memo.is_empty());
            memo.route(&r, "a.b", &|d| d != usual, &mut out);
            assert_ne!(out.targets[0].0, usual, "{kind:?}");
            memo.route(&r, "a.b", &|_| true, &mut out);
            assert_ne!(out.targets[0].0, usual, "remembered until health changes");
            memo.sync_health(7);
            memo.route(&r, "a.b", &|_| true, &mut out);
            assert_eq!(out.targets[0].0, usual, "{kind:?}");
        }
        let mut memo = RouteMemo::new(1024, 1);
        let mut out = Routes::default();

        let mut renaming = rule(Matcher::All, vec![0], false);
        let re = regex::Regex::new("^a").unwrap();
        renaming.rewrite = Some((
            re.clone(),
            crate::route::Replacement::parse("z", &re).unwrap(),
        ));
        let r = router(vec![renaming], vec![ring(ClusterType::CarbonCh, 3, 1)]);
        memo.route(&r, "a.b", &|_| true, &mut out);
        assert_eq!(out.names, ["z.b"]);
        memo.route(&r, "a.b", &|_| true, &mut out);
        assert_eq!(out.names, ["z.b"]);
        assert!(memo.is_empty());
    }
}
