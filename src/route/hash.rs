//! Consistent hashing, bit-identical to the two families in use:
//!
//! * [`PyRing`]: Python carbon's `ConsistentHashRing` and
//!   `ConsistentHashingRouter` (`carbon_ch`, `fnv1a_ch`): 100 replicas per
//!   `(server, instance)` node, a colliding position moves `+1` without
//!   wrapping, `DIVERSE_REPLICAS`, and the whole name, tags included, as key.
//! * [`CrelayRing`] and [`JumpRing`]: carbon-c-relay's `carbon_ch`,
//!   `fnv1a_ch` and `jump_fnv1a_ch`, which keep colliding positions (the first
//!   in sort order wins) and hash the name only up to the first `;`.
//!
//! Rings index members by their position in the cluster's member list.

use std::collections::HashSet;

use md5::{Digest, Md5};

/// Ring replicas per node, hardwired in carbon and carbon-c-relay.
const REPLICAS: usize = 100;

/// One cluster member as the hashes see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Node {
    /// Host exactly as written in the config (never resolved for hashing).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Optional instance name (`host:port:instance`).
    pub instance: Option<String>,
}

/// `int(md5(key).hexdigest()[:4], 16)`.
pub fn carbon_position(key: &[u8]) -> u16 {
    let d = Md5::digest(key);
    u16::from_be_bytes([d[0], d[1]])
}

/// 32-bit FNV-1a over bytes.
pub fn fnv1a_32(key: &[u8]) -> u32 {
    key.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// FNV-1a folded into a ring position: `(h >> 16) ^ (h & 0xffff)`.
pub fn fnv1a_position(key: &[u8]) -> u16 {
    let h = fnv1a_32(key);
    ((h >> 16) ^ (h & 0xffff)) as u16
}

/// 64-bit FNV-1a over bytes.
pub fn fnv1a_64(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lamping and Veach's jump consistent hash, in carbon-c-relay's form.
pub fn jump(mut key: u64, n: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// Python's `repr()` of a `str`, as `str((server, instance))` writes it.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Which position function a ring uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingHash {
    /// MD5, `carbon_ch`.
    Carbon,
    /// FNV-1a, `fnv1a_ch`.
    Fnv1a,
}

impl RingHash {
    fn position(self, key: &[u8]) -> u16 {
        match self {
            RingHash::Carbon => carbon_position(key),
            RingHash::Fnv1a => fnv1a_position(key),
        }
    }
}

/// Python carbon's ring and router.
#[derive(Debug, Clone)]
pub struct PyRing {
    hash: RingHash,
    /// `(position, member)`, sorted; positions are unique and may exceed
    /// 65535 after collision moves.
    ring: Vec<(u32, usize)>,
    /// Per member, a small integer naming its host (for
    /// `DIVERSE_REPLICAS`); its length is the member count.
    host_ids: Vec<usize>,
    diverse_replicas: bool,
}

impl PyRing {
    /// Builds the ring from members in config order. Two members with the
    /// same `(host, instance)` are refused, as carbon refuses them.
    pub fn new(
        hash: RingHash,
        nodes: &[Node],
        diverse_replicas: bool,
    ) -> Result<Self, crate::route::RouteError> {
        let mut seen = HashSet::new();
        for n in nodes {
            if !seen.insert((&n.host, &n.instance)) {
                return Err(crate::route::RouteError::DuplicateInstance {
                    host: n.host.clone(),
                    instance: n.instance.as_deref().unwrap_or("None").to_string(),
                });
            }
        }
        let mut used = HashSet::with_capacity(nodes.len() * REPLICAS);
        let mut ring = Vec::with_capacity(nodes.len() * REPLICAS);
        for (idx, n) in nodes.iter().enumerate() {
            for i in 0..REPLICAS {
                let key = match hash {
                    RingHash::Carbon => {
                        let inst = n.instance.as_deref().map_or("None".to_string(), py_repr);
                        format!("({}, {}):{}", py_repr(&n.host), inst, i)
                    }
                    RingHash::Fnv1a => format!("{}-{}", i, n.instance.as_deref().unwrap_or("None")),
                };
                let mut pos = u32::from(hash.position(key.as_bytes()));
                while !used.insert(pos) {
                    pos += 1;
                }
                ring.push((pos, idx));
            }
        }
        ring.sort_unstable();
        let host_ids = nodes
            .iter()
            .map(|n| nodes.iter().position(|m| m.host == n.host).unwrap_or(0))
            .collect();
        Ok(PyRing {
            hash,
            ring,
            host_ids,
            diverse_replicas,
        })
    }

    /// The members for `key`, in carbon's order, appended to `out`.
    ///
    /// Equivalent to carbon's generator pipeline (`get_nodes` filtered by
    /// `getDestinations`), without allocating: `out` itself records which
    /// nodes and hosts were already chosen.
    pub fn get(&self, key: &[u8], replication: usize, out: &mut Vec<usize>) {
        if self.ring.is_empty() {
            return;
        }
        let start = out.len();
        // Quirk kept from carbon: a one-node ring yields its node twice,
        // which only shows without diverse replicas.
        if self.host_ids.len() == 1 {
            out.push(0);
            if !self.diverse_replicas && replication >= 2 {
                out.push(0);
            }
            return;
        }
        let pos = u32::from(self.hash.position(key));
        let len = self.ring.len();
        let mut index = self.ring.partition_point(|&(p, _)| p < pos) % len;
        let last = (index + len - 1) % len;
        // carbon's loop ends before revisiting the entry just before the
        // start, and never examines that entry.
        while out.len() - start < replication && index != last {
            let node = self.ring[index].1;
            let taken = if self.diverse_replicas {
                let host = self.host_ids[node];
                out[start..].iter().any(|&n| self.host_ids[n] == host)
            } else {
                out[start..].contains(&node)
            };
            if !taken {
                out.push(node);
            }
            index = (index + 1) % len;
        }
    }
}

/// carbon-c-relay's `carbon_ch` and `fnv1a_ch` ring.
#[derive(Debug, Clone)]
pub struct CrelayRing {
    hash: RingHash,
    ring: Vec<(u16, usize)>,
    members: usize,
}

impl CrelayRing {
    /// Builds the ring as `ch_addnode` does, including its collision rule.
    pub fn new(hash: RingHash, nodes: &[Node]) -> Self {
        let mut ring = Vec::with_capacity(nodes.len() * REPLICAS);
        for (idx, n) in nodes.iter().enumerate() {
            for i in 0..REPLICAS {
                let key = match (hash, &n.instance) {
                    (RingHash::Carbon, Some(inst)) => format!("('{}', '{}'):{}", n.host, inst, i),
                    (RingHash::Carbon, None) => format!("('{}', None):{}", n.host, i),
                    (RingHash::Fnv1a, Some(inst)) => format!("{i}-{inst}"),
                    (RingHash::Fnv1a, None) => format!("{}-{}:{}", i, n.host, n.port),
                };
                ring.push((hash.position(key.as_bytes()), idx));
            }
        }
        ring.sort_by(|a, b| {
            let (na, nb) = (&nodes[a.1], &nodes[b.1]);
            a.0.cmp(&b.0)
                .then_with(|| na.host.cmp(&nb.host))
                .then_with(|| match hash {
                    RingHash::Carbon => match (&na.instance, &nb.instance) {
                        (None, None) => std::cmp::Ordering::Equal,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (Some(x), Some(y)) => x.cmp(y),
                    },
                    RingHash::Fnv1a => na.port.cmp(&nb.port),
                })
        });
        // Equal positions: the first entry in sort order takes them all.
        for i in 1..ring.len() {
            if ring[i].0 == ring[i - 1].0 {
                ring[i].1 = ring[i - 1].1;
            }
        }
        CrelayRing {
            hash,
            ring,
            members: nodes.len(),
        }
    }

    /// The members for `key` (already cut at `;`), appended to `out`.
    pub fn get(&self, key: &[u8], replication: usize, out: &mut Vec<usize>) {
        if self.ring.is_empty() {
            return;
        }
        let start = out.len();
        let want = replication.min(self.members);
        let pos = self.hash.position(key);
        let mut index = self.ring.partition_point(|&(p, _)| p < pos) % self.ring.len();
        let mut steps = 0;
        while out.len() - start < want && steps < self.ring.len() {
            let node = self.ring[index].1;
            if !out[start..].contains(&node) {
                out.push(node);
            }
            index = (index + 1) % self.ring.len();
            steps += 1;
        }
    }
}

/// carbon-c-relay's `jump_fnv1a_ch`.
#[derive(Debug, Clone)]
pub struct JumpRing {
    /// Member indices in jump order.
    order: Vec<usize>,
}

impl JumpRing {
    /// Orders members as carbon-c-relay does: those with an instance first,
    /// sorted by instance (numerically when both are base-10 numbers), then
    /// those without, in config order.
    pub fn new(nodes: &[Node]) -> Self {
        let mut with: Vec<usize> = (0..nodes.len())
            .filter(|&i| nodes[i].instance.is_some())
            .collect();
        let without = (0..nodes.len()).filter(|&i| nodes[i].instance.is_none());
        with.sort_by(|&a, &b| {
            let (x, y) = (
                nodes[a].instance.as_deref().unwrap(),
                nodes[b].instance.as_deref().unwrap(),
            );
            match (x.parse::<i64>(), y.parse::<i64>()) {
                (Ok(p), Ok(q)) => p.cmp(&q),
                _ => x.cmp(y),
            }
        });
        with.extend(without);
        JumpRing { order: with }
    }

    /// The members for `key` (already cut at `;`), appended to `out`.
    pub fn get(&self, key: &[u8], replication: usize, out: &mut Vec<usize>) {
        if replication == 1 && !self.order.is_empty() {
            out.push(self.order[jump(fnv1a_64(key), self.order.len())]);
            return;
        }
        let mut lst = self.order.clone();
        let mut n = lst.len();
        let mut h = fnv1a_64(key);
        for _ in 0..replication.min(lst.len()) {
            let j = jump(h, n);
            out.push(lst[j]);
            h ^= h >> 12;
            h ^= h << 25;
            h ^= h >> 27;
            h = h.wrapping_mul(2_685_821_657_736_338_717);
            n -= 1;
            lst[j] = lst[n];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(host: &str, instance: Option<&str>) -> Node {
        Node {
            host: host.into(),
            port: 2003,
            instance: instance.map(Into::into),
        }
    }

    #[test]
    fn carbon_vectors() {
        assert_eq!(carbon_position(b"('10.0.0.1', 'a'):0"), 31534);
        assert_eq!(carbon_position(b"('10.0.0.1', None):0"), 46982);
        assert_eq!(carbon_position(b"foo.bar"), 1273);
        assert_eq!(fnv1a_position(b"hosts.worker1.cpu"), 59573);
    }

    #[test]
    fn python_ring_replication_two() {
        let nodes = [
            node("10.0.0.1", Some("a")),
            node("10.0.0.2", Some("b")),
            node("10.0.0.3", Some("c")),
        ];
        let ring = PyRing::new(RingHash::Carbon, &nodes, true).unwrap();
        let starts: Vec<(u32, usize)> = ring.ring[..5].to_vec();
        assert_eq!(
            starts,
            vec![(164, 1), (332, 0), (485, 0), (635, 2), (644, 2)]
        );
        let pick = |m: &str| {
            let mut out = Vec::new();
            ring.get(m.as_bytes(), 2, &mut out);
            out.iter()
                .map(|&i| nodes[i].instance.clone().unwrap())
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(pick("foo.bar"), "c,b");
        assert_eq!(pick("carbon.agents.host1.cpuUsage"), "c,b");
        assert_eq!(pick("servers.web01.cpu.user"), "b,c");
        assert_eq!(pick("a"), "c,a");
        assert_eq!(pick("hosts.worker1.cpu"), "a,b");
    }

    #[test]
    fn python_ring_without_instances() {
        let nodes = [
            node("10.0.0.1", None),
            node("10.0.0.2", None),
            node("10.0.0.3", None),
        ];
        let ring = PyRing::new(RingHash::Carbon, &nodes, true).unwrap();
        let first = |m: &str| {
            let mut out = Vec::new();
            ring.get(m.as_bytes(), 1, &mut out);
            nodes[out[0]].host.clone()
        };
        assert_eq!(first("foo.bar"), "10.0.0.3");
        assert_eq!(first("servers.web01.cpu.user"), "10.0.0.2");
    }

    #[test]
    fn python_fnv_ring_vectors() {
        // Answers of Debian graphite-carbon 1.1.7's ConsistentHashRing(fnv1a_ch).
        let nodes = [
            node("127.0.0.1", Some("127.0.0.1")),
            node("127.0.0.2", Some("127.0.0.2")),
            node("127.0.0.3", Some("127.0.0.3")),
        ];
        let ring = PyRing::new(RingHash::Fnv1a, &nodes, true).unwrap();
        let first = |m: &str| {
            let mut out = Vec::new();
            ring.get(m.as_bytes(), 1, &mut out);
            nodes[out[0]].host.clone()
        };
        assert_eq!(first("hosts.worker1.cpu"), "127.0.0.1");
        assert_eq!(first("hosts.worker2.cpu"), "127.0.0.2");
    }

    #[test]
    fn single_node_quirk() {
        let nodes = [node("h", None)];
        let plain = PyRing::new(RingHash::Carbon, &nodes, false).unwrap();
        let mut out = Vec::new();
        plain.get(b"x", 2, &mut out);
        assert_eq!(out, vec![0, 0]);
        let diverse = PyRing::new(RingHash::Carbon, &nodes, true).unwrap();
        out.clear();
        diverse.get(b"x", 2, &mut out);
        assert_eq!(out, vec![0]);
    }

    #[test]
    fn duplicate_ring_key_is_refused() {
        let a = Node {
            host: "h".into(),
            port: 1,
            instance: None,
        };
        let b = Node {
            host: "h".into(),
            port: 2,
            instance: None,
        };
        assert!(PyRing::new(RingHash::Carbon, &[a, b], true).is_err());
    }

    #[test]
    fn jump_example_from_reference() {
        let nodes: Vec<Node> = (1..=4)
            .map(|i| node(&format!("10.0.1.{i}"), None))
            .collect();
        let ring = JumpRing::new(&nodes);
        assert_eq!(jump(fnv1a_64(b"foo.bar"), 4), 1);
        let mut out = Vec::new();
        ring.get(b"foo.bar", 2, &mut out);
        assert_eq!(out, vec![1, 3]);
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_repr("10.0.0.1"), "'10.0.0.1'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(py_repr("t\tb\\"), "'t\\tb\\\\'");
    }
}
