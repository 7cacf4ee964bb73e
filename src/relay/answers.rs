//! The answer cache behind the tap: "does any live check match this
//! name?", remembered per name.
//!
//! The cache is keyed by a keyed hash of the name rather than the name
//! itself: a table of names cost a second and third cache miss per point
//! (the slot, then the string it points at), which `perf` showed as most
//! of the alerting overhead on the data path. A wrong answer needs two of
//! a connection's names to agree on 63 bits of XXH3 under a secret drawn
//! at random per process: with 100,000 names, about one chance in two
//! billion over the connection's life, far less likely than a memory
//! error. A false "matches" is harmless anyway, since the engine matches
//! every point it gets against the checks again, by name.

use xxhash_rust::xxh3::xxh3_64_with_secret;

/// Ways per bucket: eight 8-byte entries fill one 64-byte cache line.
const WAYS: usize = 8;
/// Buckets a cache starts with (32 KiB); it doubles as names arrive.
const MIN_BUCKETS: usize = 512;

/// Bytes the recorded order may hold per name the table can hold, on
/// average: a bound on its memory for clients whose names are long.
const ORDER_MAX_BYTES_PER_NAME: usize = 128;

/// A name's `pos` while it is not in the recorded order.
const NOT_RECORDED: u32 = u32::MAX;

/// Judgements over which the share of wrong guesses is decided.
const GUESS_WINDOW: u32 = 1024;

/// While names come in a new order, one lookup in this many is judged
/// (with the one before it): reading where a name sits in the order is a
/// cache miss of its own (`pos` is not prefetched), which made up half of
/// alerting's cost on the data path when every lookup paid it, and still
/// most of it at one in eight.
const JUDGE_EVERY: u32 = 64;

/// Judgements while unpredictable over which guessing is decided.
const JUDGE_WINDOW: u32 = 32;

/// One answer in 8 bytes: 63 bits of the name's hash, never all zero (0
/// is an empty way), with the answer in the low bit. Eight fit a cache
/// line, so the table of 100,000 names takes 1 MiB: small enough to stay
/// in a core's L2 cache beside another connection's, where 16-byte entries
/// with the order position inline took four times that and missed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry(u64);

impl Entry {
    #[inline]
    fn is(self, k: Key) -> bool {
        self.0 & !1 == k.0
    }

    #[inline]
    fn answer(self) -> bool {
        self.0 & 1 == 1
    }

    #[inline]
    fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// One cache line of entries.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([Entry; WAYS]);

impl Bucket {
    /// The way holding `k`. Every way is compared, without a branch: which
    /// way holds a name is random, and an early exit mispredicted on
    /// nearly every lookup of names in a new order.
    #[inline]
    fn find(&self, k: Key) -> Option<usize> {
        let mut hits = 0u32;
        for (i, e) in self.0.iter().enumerate() {
            hits |= u32::from(e.is(k)) << i;
        }
        (hits != 0).then(|| hits.trailing_zeros() as usize)
    }
}

/// A cache of match answers keyed by a keyed hash of the metric name (see
/// the module comment for why not the name).
///
/// Clients send the same names in the same order every interval (statsd,
/// collectd and Telegraf all flush in a stable order), so besides the hash
/// table it keeps the names and their answers in arrival order and guesses
/// that the next name is the one that followed the last one. A right guess
/// costs comparing the name with the next one of a buffer read front to
/// back, which the CPU streams in ahead: no hash, where hashing and a
/// table lookup cost several times as much. A wrong guess falls back to
/// the table; where the name was last seen in the order (`pos`, beside the
/// table) says where guessing resumes; a name new to the table is appended
/// to the order.
///
/// The table has two candidate buckets of eight ways per key; it doubles,
/// keeping its entries, when seven eighths full, up to its size limit, and
/// past that evicts. The order is cleared when it holds as many names as
/// the table can, or [`ORDER_MAX_BYTES_PER_NAME`] bytes a name on average,
/// and refills as names come.
pub struct AnswerCache {
    buckets: Vec<Bucket>,
    /// Each way's name's position in the order, by `bucket * WAYS + way`.
    pos: Vec<u32>,
    len: usize,
    max_buckets: usize,
    /// Names in arrival order, back to back.
    order_names: Vec<u8>,
    /// Each name's end in `order_names`, and its answer.
    order: Vec<(u32, bool)>,
    /// Each recorded name's successor: where in `order` the name that
    /// followed it last time is. Names that churn are appended at the end
    /// of the order; the links keep the guess right around them.
    succ: Vec<u32>,
    /// Each recorded name's way in the table (`bucket * WAYS + way`), so
    /// the order can be laid out again without hashing every name.
    slot_of: Vec<u32>,
    /// Where in `order` the last name seen is ([`NOT_RECORDED`] if not
    /// known), and where the next is expected.
    prev: u32,
    next: usize,
    /// Whether the last tracked table lookup found the name where the
    /// order expected it.
    last_right: bool,
    /// Judgements, and wrong guesses among them, since `predictable` was
    /// last decided.
    lookups: u32,
    wrong: u32,
    /// Right guesses since the order was last laid out whose name was not
    /// stored right after the one before it, and lookups since then.
    jumps: u32,
    since_layout: usize,
    /// Table lookups while unpredictable, for choosing which to judge.
    unjudged: u32,
    /// Whether the guesses were right lately: then loading table buckets
    /// ahead of time is wasted work.
    predictable: bool,
    secret: Box<[u8; SECRET_BYTES]>,
}

impl std::fmt::Debug for AnswerCache {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerCache")
            .field("buckets", &self.buckets.len())
            .field("len", &self.len)
            .field("max_buckets", &self.max_buckets)
            .field("order", &self.order.len())
            .finish_non_exhaustive()
    }
}

/// XXH3's secret size (its default secret's); at least its minimum of 136.
pub const SECRET_BYTES: usize = 192;

/// A secret for XXH3 drawn from the OS's randomness (through std's
/// randomly keyed SipHash), so that names cannot be chosen to collide.
pub fn random_secret() -> Box<[u8; SECRET_BYTES]> {
    use std::hash::BuildHasher;
    let keyed = std::collections::hash_map::RandomState::new();
    let mut secret = [0; SECRET_BYTES];
    for (i, chunk) in secret.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&keyed.hash_one(i).to_le_bytes());
    }
    Box::new(secret)
}

/// A name's hash: the entry's bits, answer bit clear. Its buckets come
/// from the same bits, so the table can grow without the names.
#[derive(Debug, Clone, Copy, Default)]
pub struct Key(u64);

impl AnswerCache {
    /// A cache that grows to hold about `max_names` answers.
    pub fn new(max_names: usize) -> Self {
        let max_buckets = (max_names / WAYS).next_power_of_two().max(MIN_BUCKETS);
        AnswerCache {
            buckets: vec![Bucket::default(); MIN_BUCKETS],
            pos: vec![NOT_RECORDED; MIN_BUCKETS * WAYS],
            len: 0,
            max_buckets,
            order_names: Vec::new(),
            order: Vec::new(),
            succ: Vec::new(),
            slot_of: Vec::new(),
            prev: NOT_RECORDED,
            next: 0,
            last_right: false,
            lookups: 0,
            wrong: 0,
            jumps: 0,
            since_layout: 0,
            unjudged: 0,
            predictable: false,
            secret: random_secret(),
        }
    }

    /// The key of `name`.
    #[inline]
    pub fn key(&self, name: &[u8]) -> Key {
        let bits = xxh3_64_with_secret(name, &self.secret[..]) & !1;
        Key(if bits == 0 { 2 } else { bits })
    }

    /// The two buckets `k` may live in.
    #[inline]
    fn buckets_of(&self, k: Key) -> [usize; 2] {
        let mask = self.buckets.len() - 1;
        [(k.0 >> 1) as usize & mask, (k.0 >> 33) as usize & mask]
    }

    /// Hints the CPU to load `k`'s buckets, for when the guess is wrong.
    #[inline]
    pub fn prefetch(&self, k: Key) {
        #[cfg(target_arch = "x86_64")]
        for b in self.buckets_of(k) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p: *const Bucket = &self.buckets[b];
            // SAFETY: a prefetch is only a hint; it never faults, and `p`
            // points into the table anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
        }
    }

    /// Whether any check matches `name` (whose key is `key`, if already
    /// computed): from the guess, else from the table, else from
    /// `is_match`, whose answer is then kept.
    #[inline]
    pub fn answer(
        &mut self,
        name: &str,
        key: Option<Key>,
        is_match: impl FnOnce() -> bool,
    ) -> bool {
        let bytes = name.as_bytes();
        if self.predictable {
            if let Some(hit) = self.guess(bytes) {
                return hit;
            }
        }
        // While names come in a new order a guess is a wasted compare, so
        // the table answers alone, and a sample of lookups (a pair: the
        // one that says where the next name should be, and the next) is
        // judged for whether the guess would have been right.
        let phase = if self.predictable {
            0
        } else {
            self.unjudged = self.unjudged.wrapping_add(1);
            self.unjudged % JUDGE_EVERY
        };
        let track = self.predictable || phase <= 1;
        // Links are learnt only from a lookup whose predecessor is known:
        // every one while guessing, the second of a judged pair otherwise.
        let learn = self.predictable || phase == 1;
        if !track {
            // The last name seen is not followed: a name appended now must
            // not become its successor.
            self.prev = NOT_RECORDED;
        }
        let key = key.unwrap_or_else(|| self.key(bytes));
        let found = self.get(bytes, key, track, learn);
        if !self.predictable && phase == 1 {
            self.tally(found.is_none() || !self.last_right);
        }
        if let Some(hit) = found {
            return hit;
        }
        let hit = is_match();
        self.put(bytes, key, hit);
        hit
    }

    /// Counts one judgement, and whether its name was not the one
    /// guessed; every [`GUESS_WINDOW`] guesses, or [`JUDGE_WINDOW`]
    /// judgements while not guessing, decides whether to guess.
    #[inline]
    fn tally(&mut self, wrong: bool) {
        self.lookups += 1;
        self.wrong += u32::from(wrong);
        // Judged one lookup in JUDGE_EVERY while unpredictable.
        let window = if self.predictable {
            GUESS_WINDOW
        } else {
            JUDGE_WINDOW
        };
        if self.lookups >= window {
            self.predictable = self.wrong <= window / 16;
            (self.lookups, self.wrong) = (0, 0);
        }
    }

    /// The name recorded at `pos` of the order, and its answer.
    #[inline]
    fn recorded(&self, pos: usize) -> Option<(&[u8], bool)> {
        let &(end, answer) = self.order.get(pos)?;
        let start = pos.checked_sub(1).map_or(0, |p| self.order[p].0 as usize);
        Some((&self.order_names[start..end as usize], answer))
    }

    /// The answer for `name` if it is the name guessed to come next, which
    /// is then the one after it.
    #[inline]
    fn guess(&mut self, name: &[u8]) -> Option<bool> {
        match self.recorded(self.next) {
            Some((guessed, answer)) if guessed == name => {
                self.tally(false);
                self.jumps += u32::from(self.next != self.prev.wrapping_add(1) as usize);
                self.since_layout += 1;
                self.prev = self.next as u32;
                self.next = self.succ[self.next] as usize;
                if self.since_layout >= self.order.len()
                    && self.jumps as usize > self.order.len() / 4
                {
                    self.lay_out();
                }
                Some(answer)
            }
            _ => {
                self.tally(true);
                None
            }
        }
    }

    /// The cached answer for `name`, whose key is `k`, if any. With
    /// `track`, the next name is then guessed to be the one that followed
    /// it last time, and a name missing from the order is appended to it;
    /// with `learn` too, the name becomes the successor of the last one.
    fn get(&mut self, name: &[u8], k: Key, track: bool, learn: bool) -> Option<bool> {
        let [a, b] = self.buckets_of(k);
        let (bucket, way) = match self.buckets[a].find(k) {
            Some(way) => (a, way),
            None => (b, self.buckets[b].find(k)?),
        };
        let e = self.buckets[bucket].0[way];
        if track {
            let at = bucket * WAYS + way;
            if self.pos[at] == NOT_RECORDED {
                // The order was cleared since: the name goes to its end.
                self.last_right = false;
                if !learn {
                    self.prev = NOT_RECORDED;
                }
                let p = self.append(name, e.answer());
                self.set_pos(at, p);
            } else {
                // Positions are forgotten when the order is cleared, so
                // this one is the name's own: no need to compare names.
                let pos = self.pos[at];
                self.last_right = pos as usize == self.next;
                self.follow(pos, learn);
            }
        }
        Some(e.answer())
    }

    /// Whether the next names are likely guessed right (at most one in 16
    /// wrong over the last [`GUESS_WINDOW`] judgements).
    #[inline]
    pub fn predictable(&self) -> bool {
        self.predictable
    }

    /// Rewrites the order in the sequence its links give, from the name
    /// expected next: names that churn are appended at the end and the
    /// links jump there and back, so after enough churn every guess read
    /// a different part of memory, and the compare missed the cache each
    /// time where it used to stream. Names no link reaches any more (gone
    /// from the client's rounds) are dropped from the order, and each
    /// name's position in the table is rewritten through `slot_of`, with
    /// no hashing (done once the order has come to jump on a quarter of
    /// its guesses).
    fn lay_out(&mut self) {
        let n = self.order.len();
        let mut seen = vec![false; n];
        let mut sequence = Vec::with_capacity(n);
        let mut at = self.next;
        while at < n && !seen[at] {
            seen[at] = true;
            sequence.push(at);
            at = self.succ[at] as usize;
        }
        let mut names = Vec::with_capacity(self.order_names.len());
        let mut order = Vec::with_capacity(sequence.len());
        for &p in &sequence {
            let (name, answer) = self.recorded(p).expect("a linked position is recorded");
            names.extend_from_slice(name);
            order.push((names.len() as u32, answer));
        }
        let len = order.len() as u32;
        self.order_names = names;
        self.order = order;
        // The walk ends where the round wraps: its last name is followed
        // by the first.
        self.succ = (1..=len).map(|p| if p == len { 0 } else { p }).collect();
        let slots: Vec<u32> = sequence.iter().map(|&p| self.slot_of[p]).collect();
        self.pos.fill(NOT_RECORDED);
        self.slot_of = vec![NOT_RECORDED; slots.len()];
        for (p, at) in slots.into_iter().enumerate() {
            if at != NOT_RECORDED {
                self.set_pos(at as usize, p as u32);
            }
        }
        self.prev = NOT_RECORDED;
        self.next = 0;
        self.jumps = 0;
        self.since_layout = 0;
    }

    /// Records that the way `at` holds the name at `p` in the order.
    #[inline]
    fn set_pos(&mut self, at: usize, p: u32) {
        self.pos[at] = p;
        if let Some(s) = self.slot_of.get_mut(p as usize) {
            *s = at as u32;
        }
    }

    /// `pos` was seen: with `learn`, it becomes the successor of the name
    /// seen before it; the next name is guessed to be its successor.
    #[inline]
    fn follow(&mut self, pos: u32, learn: bool) {
        if learn && self.prev != NOT_RECORDED {
            self.succ[self.prev as usize] = pos;
        }
        self.prev = pos;
        self.next = self.succ[pos as usize] as usize;
    }

    /// Appends a name to the order, as the successor of the last name
    /// seen, and guesses the next name comes after it. Returns its
    /// position.
    fn append(&mut self, name: &[u8], answer: bool) -> u32 {
        let max_names = self.max_buckets * WAYS;
        if self.order.len() >= max_names
            || self.order_names.len() + name.len() > max_names * ORDER_MAX_BYTES_PER_NAME
        {
            self.order.clear();
            self.order_names.clear();
            self.succ.clear();
            self.slot_of.clear();
            self.prev = NOT_RECORDED;
            self.pos.fill(NOT_RECORDED);
            (self.jumps, self.since_layout) = (0, 0);
        }
        self.order_names.extend_from_slice(name);
        // At most max_names * ORDER_MAX_BYTES_PER_NAME bytes (the table's
        // limit is a few million names at most), far below 4 GiB.
        self.order.push((self.order_names.len() as u32, answer));
        let pos = (self.order.len() - 1) as u32;
        // Until learnt otherwise, a name is followed by the next one
        // appended.
        self.succ.push(pos + 1);
        self.slot_of.push(NOT_RECORDED);
        self.follow(pos, true);
        pos
    }

    /// Stores the answer for `name`, whose key is `k`, which neither
    /// [`AnswerCache::guess`] nor [`AnswerCache::get`] knew.
    fn put(&mut self, name: &[u8], k: Key, hit: bool) {
        if self.len >= self.buckets.len() * WAYS / 8 * 7 {
            self.try_grow();
        }
        let entry = Entry(k.0 | u64::from(hit));
        let pos = self.append(name, hit);
        while !self.place(entry, k, pos) {
            if !self.try_grow() {
                // Both buckets full at the size limit: evict one way.
                let [b, _] = self.buckets_of(k);
                let way = (k.0 >> 60) as usize % WAYS;
                self.buckets[b].0[way] = entry;
                let evicted = self.pos[b * WAYS + way];
                if let Some(s) = self.slot_of.get_mut(evicted as usize) {
                    *s = NOT_RECORDED;
                }
                self.set_pos(b * WAYS + way, pos);
                return;
            }
        }
    }

    /// Puts `e` (whose key is `k`) in the emptier of its buckets; false if
    /// both are full. Taking the emptier one, not the first with room, is
    /// what keeps both from filling up at high load.
    fn place(&mut self, e: Entry, k: Key, pos: u32) -> bool {
        let free = |b: &Bucket| b.0.iter().filter(|s| s.is_empty()).count();
        let [a, b] = self.buckets_of(k);
        let target = if free(&self.buckets[a]) >= free(&self.buckets[b]) {
            a
        } else {
            b
        };
        match self.buckets[target].0.iter().position(|s| s.is_empty()) {
            Some(way) => {
                self.buckets[target].0[way] = e;
                self.set_pos(target * WAYS + way, pos);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Doubles the table below its size limit, keeping every entry (its
    /// buckets follow from its bits) and its place in the order: should
    /// one not fit, it doubles again. False at the limit.
    fn try_grow(&mut self) -> bool {
        if self.buckets.len() >= self.max_buckets {
            return false;
        }
        let kept: Vec<(Entry, u32)> = self
            .buckets
            .iter()
            .flat_map(|b| b.0)
            .zip(self.pos.iter().copied())
            .filter(|(e, _)| !e.is_empty())
            .collect();
        loop {
            let n = self.buckets.len() * 2;
            self.buckets = vec![Bucket::default(); n];
            self.pos = vec![NOT_RECORDED; n * WAYS];
            self.len = 0;
            let mut all = true;
            for &(e, p) in &kept {
                all &= self.place(e, Key(e.0 & !1), p);
            }
            // At the limit, what did not fit is forgotten: it is a cache.
            if all || self.buckets.len() >= self.max_buckets {
                return true;
            }
        }
    }

    /// Forgets every answer (the checks changed).
    pub fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.pos.fill(NOT_RECORDED);
        self.len = 0;
        self.order.clear();
        self.order_names.clear();
        self.succ.clear();
        self.slot_of.clear();
        self.prev = NOT_RECORDED;
        self.next = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_per_name_and_survive_growth() {
        // Each cache has its own secret, so each round places differently.
        for _ in 0..20 {
            cache_round();
        }
    }

    fn cache_round() {
        let mut c = AnswerCache::new(1 << 20);
        let names: Vec<String> = (0..50_000).map(|i| format!("a.b{i}.c")).collect();
        for (i, n) in names.iter().enumerate() {
            let k = c.key(n.as_bytes());
            assert_eq!(c.guess(n.as_bytes()), None, "{n} not recorded yet");
            assert_eq!(
                c.get(n.as_bytes(), k, true, true),
                None,
                "{n} not cached yet"
            );
            c.put(n.as_bytes(), k, i % 7 == 0);
        }
        // The table grew as the names came in, and kept every answer. Its
        // load limit asks for 8,192 buckets (57,344 names at seven
        // eighths); one full pair of buckets near that load may double it
        // once more, but no further.
        assert!(c.buckets.len() > MIN_BUCKETS);
        assert!(c.buckets.len() <= 16_384, "{} buckets", c.buckets.len());
        for (i, n) in names.iter().enumerate() {
            let k = c.key(n.as_bytes());
            assert_eq!(c.get(n.as_bytes(), k, true, true), Some(i % 7 == 0), "{n}");
        }
        assert_eq!(c.len, names.len());
        c.clear();
        for n in &names {
            let k = c.key(n.as_bytes());
            assert_eq!(c.guess(n.as_bytes()), None);
            assert_eq!(c.get(n.as_bytes(), k, true, true), None);
        }
    }

    /// A fixed shuffle (xorshift64 from `state`): each call a new order.
    fn shuffle(names: &mut [String], state: &mut u64) {
        for i in (1..names.len()).rev() {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            names.swap(i, (*state % (i as u64 + 1)) as usize);
        }
    }

    /// Looks `names` up in order, storing what is not cached; returns the
    /// wrong guesses.
    fn pass(c: &mut AnswerCache, names: &[String]) -> u32 {
        let mut wrong = 0;
        for (i, n) in names.iter().enumerate() {
            let want = n.len() % 3 == 0;
            if let Some(hit) = c.guess(n.as_bytes()) {
                assert_eq!(hit, want, "{n} at {i}, guessed");
                continue;
            }
            wrong += 1;
            let k = c.key(n.as_bytes());
            match c.get(n.as_bytes(), k, true, true) {
                Some(hit) => assert_eq!(hit, want, "{n} at {i}"),
                None => c.put(n.as_bytes(), k, want),
            }
        }
        wrong
    }

    #[test]
    fn names_in_a_repeated_order_are_guessed_and_a_change_resyncs() {
        let mut c = AnswerCache::new(1 << 16);
        let mut names: Vec<String> = (0..900).map(|i| format!("h{}.m{i}", i % 7)).collect();
        assert_eq!(pass(&mut c, &names), 900, "all new");
        assert!(!c.predictable());
        // The first name of a round follows the last one: one wrong guess,
        // once; then the link from the last name to the first is known.
        assert_eq!(pass(&mut c, &names), 1);
        assert_eq!(pass(&mut c, &names), 0);
        assert!(c.predictable(), "decided after {GUESS_WINDOW} lookups");
        // A name dropped, one added and a block moved: each jump in the
        // recorded order costs a wrong guess, the new name two, once;
        // the next round follows the links they taught. Every answer
        // stays right.
        names.remove(100);
        names.insert(400, "new.name".into());
        let moved: Vec<String> = names.drain(600..650).collect();
        names.splice(10..10, moved);
        assert_eq!(pass(&mut c, &names), 6);
        assert_eq!(pass(&mut c, &names), 0);
        assert!(c.predictable());
        assert_eq!(c.order.len(), 901, "known names are not appended again");
    }

    /// Through `answer`, as the tap asks: a repeated order turns guessing
    /// on, a new order every pass turns it off (answers then come from the
    /// table alone), and the recorded order coming back turns it on again;
    /// every answer stays right and `is_match` runs once per name.
    #[test]
    fn answer_guesses_only_while_the_order_repeats() {
        let mut c = AnswerCache::new(1 << 16);
        let first: Vec<String> = (0..3000).map(|i| format!("s.{i}.y")).collect();
        let mut names = first.clone();
        let mut asked = 0;
        let mut pass = |c: &mut AnswerCache, names: &[String]| {
            for n in names {
                let want = n.len() % 3 == 0;
                let got = c.answer(n, None, || {
                    asked += 1;
                    want
                });
                assert_eq!(got, want, "{n}");
            }
        };
        pass(&mut c, &names);
        assert!(!c.predictable(), "all new");
        // Judged on a sample, guessing turns on within two passes.
        pass(&mut c, &names);
        pass(&mut c, &names);
        assert!(c.predictable(), "the same order again");
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3 {
            shuffle(&mut names, &mut state);
            pass(&mut c, &names);
            assert!(!c.predictable(), "a new order every pass");
        }
        // The judged lookups learnt some of the shuffles' links; guessing
        // relearns the rest of the old order as it goes.
        let mut passes = 0;
        while !c.predictable() || passes < 2 {
            pass(&mut c, &first);
            passes += 1;
            assert!(passes <= 12, "the recorded order again");
        }
        // A new order that then stays is learnt too, from the judged
        // lookups alone, within a few dozen passes.
        shuffle(&mut names, &mut state);
        let mut passes = 0;
        while !c.predictable() {
            pass(&mut c, &names);
            passes += 1;
            assert!(passes <= 100, "a new order that stays");
        }
        assert_eq!(asked, 3000, "each name matched once");
        assert_eq!(c.order.len(), 3000, "known names are not appended again");
    }

    #[test]
    fn names_in_random_order_are_answered_from_the_table() {
        let mut c = AnswerCache::new(1 << 16);
        let mut names: Vec<String> = (0..2000).map(|i| format!("r.{i}.x")).collect();
        pass(&mut c, &names);
        // A fixed shuffle: each round visits the names in a new order.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..3 {
            shuffle(&mut names, &mut state);
            assert!(pass(&mut c, &names) > 1900);
        }
        assert!(!c.predictable());
        assert!(c.order.len() <= 2000, "known names are not appended again");
    }

    #[test]
    fn a_full_order_starts_over_and_answers_stay_right() {
        // The smallest table: 512 buckets, an order of at most 4,096.
        let mut c = AnswerCache::new(100);
        let names: Vec<String> = (0..3000).map(|i| format!("o.{i}")).collect();
        for _ in 0..5 {
            pass(&mut c, &names);
            assert!(c.order.len() <= MIN_BUCKETS * WAYS);
        }
        // Every name still in the table still has its answer.
        let mut found = 0;
        for n in &names {
            if let Some(hit) = c.get(n.as_bytes(), c.key(n.as_bytes()), true, true) {
                assert_eq!(hit, n.len() % 3 == 0, "{n}");
                found += 1;
            }
        }
        assert!(found > 2500, "{found} of 3000 kept");
        // Long names: the order's bytes are bounded too.
        let long: Vec<String> = (0..3000)
            .map(|i| format!("{i}.{}", "x".repeat(1000)))
            .collect();
        for _ in 0..2 {
            pass(&mut c, &long);
            assert!(c.order_names.len() <= MIN_BUCKETS * WAYS * ORDER_MAX_BYTES_PER_NAME);
        }
    }

    #[test]
    fn keys_differ_between_caches_and_agree_within_one() {
        // Each cache draws its own secret, so a name's key is not
        // predictable from outside the process.
        let (a, b) = (AnswerCache::new(10), AnswerCache::new(10));
        let (ka, kb) = (a.key(b"x.y"), b.key(b"x.y"));
        assert_ne!(ka.0, kb.0);
        assert_eq!(ka.0, a.key(b"x.y").0);
    }

    #[test]
    fn a_small_cache_stays_small_and_answers_right() {
        let mut c = AnswerCache::new(100);
        for i in 0..100_000 {
            let n = format!("x.{i}");
            let k = c.key(n.as_bytes());
            c.put(n.as_bytes(), k, i % 2 == 0);
            assert_eq!(c.get(n.as_bytes(), k, true, true), Some(i % 2 == 0));
        }
        assert_eq!(c.buckets.len(), MIN_BUCKETS);
    }

    /// Names in a stable order of which a few are replaced by new ones
    /// each pass (agents come and go, series are renamed): the links
    /// around the new names keep guessing on, pass after pass.
    #[test]
    fn churning_names_in_a_stable_order_stay_predictable() {
        let mut c = AnswerCache::new(500_000);
        let (names, every) = (20_000usize, 60usize);
        for pass in 0..40 {
            let mut guessing = 0;
            for i in 0..names {
                let generation = (pass + every - i % every) / every;
                let n = format!("a.host{:03}.metric{i:05}g{generation}", i % 100);
                let want = i % 100 == 0;
                assert_eq!(c.answer(&n, None, || want), want, "{n}");
                guessing += usize::from(c.predictable());
            }
            if pass >= 3 {
                assert_eq!(
                    guessing, names,
                    "pass {pass}: guessing for {guessing} of {names}"
                );
            }
            // Laid out again as churn scatters it, the order holds about
            // the names of a round, not every name ever seen.
            assert!(c.order.len() <= names + names / 2, "{}", c.order.len());
        }
    }
}
