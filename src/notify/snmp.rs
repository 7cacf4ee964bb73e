//! SNMP: an SNMPv2c trap per alert to `SNMP_HOST:SNMP_PORT` over UDP, with
//! community `SNMP_COMMUNITY`, exactly Seyren's PDU: `sysUpTime.0` =
//! 5000 ticks, `snmpTrapOID.0` = `SNMP_OID`, then strings under it: `.1`
//! check name, `.2` series, `.3` check state, `.4` value, `.6` warn and
//! `.5` error (in that order, as Seyren adds them), `.7` check id, `.8`
//! check link. The BER encoding is written here: it is a few dozen lines,
//! and the SNMP crates carry far more than a trap needs.

use std::sync::atomic::{AtomicU32, Ordering};

use crate::check::model::{SubscriptionType, Threshold};
use crate::check::NewNotification;
use crate::notify::message::value;
use crate::notify::{Delivery, Links, Notifier, NotifyConfig, NotifyError};

/// `sysUpTime.0`.
const SYS_UP_TIME: &str = "1.3.6.1.2.1.1.3.0";
/// `snmpTrapOID.0`.
const SNMP_TRAP_OID: &str = "1.3.6.1.6.3.1.1.4.1.0";

/// What the SNMP notifier needs of `[notify]`.
#[derive(Debug, Clone)]
pub struct SnmpConfig {
    /// Trap receiver host.
    pub host: String,
    /// Trap receiver port.
    pub port: u16,
    /// Community.
    pub community: String,
    /// The trap's OID, dotted.
    pub oid: String,
    /// Links back to the UI.
    pub links: Links,
}

impl From<&NotifyConfig> for SnmpConfig {
    fn from(c: &NotifyConfig) -> Self {
        SnmpConfig {
            host: c.snmp_host.clone(),
            port: c.snmp_port,
            community: c.snmp_community.clone(),
            oid: c.snmp_oid.trim_start_matches('.').to_string(),
            links: Links::from(c),
        }
    }
}

/// A dotted OID's arcs, or why it is not one.
pub fn parse_oid(s: &str) -> Result<Vec<u32>, NotifyError> {
    let bad = || NotifyError::NotConfigured("snmp_oid (SNMP_OID) is not a dotted OID");
    let arcs: Vec<u32> = s
        .trim_start_matches('.')
        .split('.')
        .map(|a| a.parse().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    if arcs.len() < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] > 39) {
        return Err(bad());
    }
    Ok(arcs)
}

fn push_len(out: &mut Vec<u8>, n: usize) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 4);
    out.push(tag);
    push_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// A two's-complement INTEGER (or, with `tag` 0x43, TimeTicks, which is
/// unsigned: a leading zero keeps it positive).
fn integer(tag: u8, v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(tag, &bytes[start..])
}

fn oid(arcs: &[u32]) -> Vec<u8> {
    let mut content = Vec::new();
    let mut arc = |mut v: u64| {
        let mut groups = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            groups.push((v & 0x7f) as u8 | 0x80);
            v >>= 7;
        }
        content.extend(groups.iter().rev());
    };
    arc(u64::from(arcs[0]) * 40 + u64::from(arcs[1]));
    for &a in &arcs[2..] {
        arc(u64::from(a));
    }
    tlv(0x06, &content)
}

fn varbind(name: &[u32], value: Vec<u8>) -> Vec<u8> {
    let mut content = oid(name);
    content.extend(value);
    tlv(0x30, &content)
}

/// An SNMPv2c trap message with `binds` after `sysUpTime.0` and
/// `snmpTrapOID.0`.
pub fn trap(
    community: &str,
    request_id: i32,
    trap_oid: &[u32],
    binds: &[(Vec<u32>, String)],
) -> Vec<u8> {
    let mut list = varbind(
        &parse_oid(SYS_UP_TIME).expect("constant"),
        integer(0x43, 5000),
    );
    list.extend(varbind(
        &parse_oid(SNMP_TRAP_OID).expect("constant"),
        oid(trap_oid),
    ));
    for (name, text) in binds {
        list.extend(varbind(name, tlv(0x04, text.as_bytes())));
    }
    let mut pdu = integer(0x02, i64::from(request_id));
    pdu.extend(integer(0x02, 0));
    pdu.extend(integer(0x02, 0));
    pdu.extend(tlv(0x30, &list));
    let mut msg = integer(0x02, 1); // version 2c
    msg.extend(tlv(0x04, community.as_bytes()));
    msg.extend(tlv(0xa7, &pdu));
    tlv(0x30, &msg)
}

/// Delivers SNMP subscriptions.
#[derive(Debug, Clone)]
pub struct SnmpNotifier {
    cfg: SnmpConfig,
}

impl SnmpNotifier {
    /// From its config.
    pub fn new(cfg: SnmpConfig) -> Self {
        SnmpNotifier { cfg }
    }

    /// One trap per alert, as Seyren builds them.
    pub fn traps(&self, n: &NewNotification) -> Result<Vec<Vec<u8>>, NotifyError> {
        static REQUEST_ID: AtomicU32 = AtomicU32::new(1);
        let base = parse_oid(&self.cfg.oid)?;
        let under = |i: u32| {
            let mut o = base.clone();
            o.push(i);
            o
        };
        let c = &n.check;
        let t = |x: &Option<Threshold>| x.as_ref().map_or("null".to_string(), |t| t.text.clone());
        Ok(n.alerts
            .iter()
            .map(|a| {
                let binds = [
                    (under(1), c.name.clone()),
                    (under(2), a.target.clone()),
                    (under(3), c.state.as_str().to_string()),
                    (under(4), value(a.value)),
                    (under(6), t(&c.warn)),
                    (under(5), t(&c.error)),
                    (under(7), c.id.clone()),
                    (under(8), self.cfg.links.check_url(&c.id)),
                ];
                let id = (REQUEST_ID.fetch_add(1, Ordering::Relaxed) & 0x7fff_ffff) as i32;
                trap(&self.cfg.community, id, &base, &binds)
            })
            .collect())
    }

    async fn deliver(&self, n: &NewNotification) -> Result<(), NotifyError> {
        let traps = self.traps(n)?;
        let addr = tokio::net::lookup_host((self.cfg.host.as_str(), self.cfg.port))
            .await
            .map_err(NotifyError::Io)?
            .next()
            .ok_or(NotifyError::NotConfigured(
                "snmp_host (SNMP_HOST) does not resolve",
            ))?;
        let local: std::net::SocketAddr = if addr.is_ipv6() {
            "[::]:0".parse().expect("constant")
        } else {
            "0.0.0.0:0".parse().expect("constant")
        };
        let socket = tokio::net::UdpSocket::bind(local)
            .await
            .map_err(NotifyError::Io)?;
        for t in traps {
            socket.send_to(&t, addr).await.map_err(NotifyError::Io)?;
        }
        Ok(())
    }
}

impl Notifier for SnmpNotifier {
    fn kind(&self) -> SubscriptionType {
        SubscriptionType::Snmp
    }

    fn send<'a>(&'a self, n: &'a NewNotification) -> Delivery<'a> {
        Box::pin(self.deliver(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ber_pieces_are_minimal() {
        assert_eq!(integer(0x02, 0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(0x02, 128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(0x02, -1), [0x02, 0x01, 0xff]);
        assert_eq!(integer(0x43, 5000), [0x43, 0x02, 0x13, 0x88]);
        // 1.3.6.1.4.1.32473.1: 32473 takes three base-128 groups.
        assert_eq!(
            oid(&parse_oid("1.3.6.1.4.1.32473.1").unwrap()),
            [0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0xfd, 0x59, 0x01]
        );
        let mut long = Vec::new();
        push_len(&mut long, 300);
        assert_eq!(long, [0x82, 0x01, 0x2c]);
        assert!(parse_oid("1.x").is_err() && parse_oid("3.1").is_err() && parse_oid("1").is_err());
    }
}
