//! Clusters: a named set of destinations and the policy that picks among
//! them for each metric. Every cluster type has the same shape: built once
//! from its members, then asked [`Cluster::select`] per metric.

use serde::Deserialize;

use crate::route::hash::{CrelayRing, JumpRing, Node, PyRing, RingHash};
use crate::route::{crelay_key, DestId, RouteError};

/// The cluster types, named as in carbon-c-relay and carbon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterType {
    /// Every member gets every metric.
    Forward,
    /// One member per metric, by FNV-1a of the name; a down member's share
    /// goes to the next healthy member.
    AnyOf,
    /// The first healthy member in config order.
    Failover,
    /// Metrics are counted and discarded.
    Blackhole,
    /// Python carbon's MD5 ring (carbon-relay `consistent-hashing`).
    CarbonCh,
    /// Python carbon's FNV-1a ring (`ROUTER_HASH_TYPE = fnv1a_ch`).
    Fnv1aCh,
    /// carbon-c-relay's `carbon_ch`.
    CarbonChCrelay,
    /// carbon-c-relay's `fnv1a_ch`.
    Fnv1aChCrelay,
    /// carbon-c-relay's `jump_fnv1a_ch`.
    JumpFnv1aCh,
}

#[derive(Debug, Clone)]
enum Placement {
    All,
    AnyOf,
    Failover,
    Blackhole,
    Python(PyRing),
    Crelay(CrelayRing),
    Jump(JumpRing),
}

/// A cluster ready to route: its members resolved to destination ids and
/// its hash ring, if it has one, built.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Its name in the config.
    pub name: String,
    /// How it picks members: forward, any_of, failover, a hash ring.
    pub kind: ClusterType,
    replication: usize,
    placement: Placement,
    /// Destination of each member, in config order.
    members: Vec<DestId>,
    /// Instance of each member, for display.
    instances: Vec<Option<String>>,
}

impl Cluster {
    /// Builds a cluster from its members (`nodes[i]` is sent to `members[i]`).
    pub fn new(
        name: String,
        kind: ClusterType,
        replication: usize,
        diverse_replicas: bool,
        nodes: &[Node],
        members: Vec<DestId>,
    ) -> Result<Self, RouteError> {
        let placement = match kind {
            ClusterType::Forward => Placement::All,
            ClusterType::AnyOf => Placement::AnyOf,
            ClusterType::Failover => Placement::Failover,
            ClusterType::Blackhole => Placement::Blackhole,
            ClusterType::CarbonCh => {
                Placement::Python(PyRing::new(RingHash::Carbon, nodes, diverse_replicas)?)
            }
            ClusterType::Fnv1aCh => {
                Placement::Python(PyRing::new(RingHash::Fnv1a, nodes, diverse_replicas)?)
            }
            ClusterType::CarbonChCrelay => {
                Placement::Crelay(CrelayRing::new(RingHash::Carbon, nodes))
            }
            ClusterType::Fnv1aChCrelay => {
                Placement::Crelay(CrelayRing::new(RingHash::Fnv1a, nodes))
            }
            ClusterType::JumpFnv1aCh => Placement::Jump(JumpRing::new(nodes)),
        };
        if members.is_empty() && kind != ClusterType::Blackhole {
            return Err(RouteError::NoDestinations);
        }
        let instances = nodes.iter().map(|n| n.instance.clone()).collect();
        Ok(Cluster {
            name,
            kind,
            replication: replication.max(1),
            placement,
            members,
            instances,
        })
    }

    /// Whether metrics sent here are discarded.
    pub fn is_blackhole(&self) -> bool {
        matches!(self.placement, Placement::Blackhole)
    }

    /// Whether its answer depends on its members' health.
    pub fn follows_health(&self) -> bool {
        matches!(self.placement, Placement::AnyOf | Placement::Failover)
    }

    /// Whether it hashes each name to place it (the rings and `any_of`).
    pub fn hashes(&self) -> bool {
        matches!(
            self.placement,
            Placement::AnyOf | Placement::Python(_) | Placement::Crelay(_) | Placement::Jump(_)
        )
    }

    /// The destination of member `i`.
    pub fn member(&self, i: usize) -> DestId {
        self.members[i]
    }

    /// The instance name of member `i`, if it has one.
    pub fn instance(&self, i: usize) -> Option<&str> {
        self.instances.get(i).and_then(Option::as_deref)
    }

    /// Appends the members chosen for `name` to `out` (indices into this
    /// cluster's members), in the order chosen. `healthy` tells whether a
    /// destination is currently taking data.
    pub fn select(&self, name: &str, healthy: &dyn Fn(DestId) -> bool, out: &mut Vec<usize>) {
        let n = self.members.len();
        match &self.placement {
            Placement::All => out.extend(0..n),
            Placement::Blackhole => {}
            Placement::Failover => {
                out.push((0..n).find(|&i| healthy(self.members[i])).unwrap_or(0))
            }
            Placement::AnyOf => {
                let h = crate::route::hash::fnv1a_32(&crelay_key(name)) as usize;
                let pick = (0..n)
                    .map(|i| (h + i) % n)
                    .find(|&i| healthy(self.members[i]));
                out.push(pick.unwrap_or(h % n));
            }
            Placement::Python(ring) => ring.get(name.as_bytes(), self.replication, out),
            Placement::Crelay(ring) => ring.get(&crelay_key(name), self.replication, out),
            Placement::Jump(ring) => ring.get(&crelay_key(name), self.replication, out),
        }
    }
}
