//! carbon-c-relay statements to carbonwatch's TOML: checked the way
//! carbon-c-relay checks them while parsing (clusters defined before use,
//! regexes compiled, ports in range), each table headed by the file and
//! line it came from.

use std::collections::HashMap;
use std::fmt::Write;

use super::parse::{ClusterKind, Member, SendTo, Stmt, Text};
use super::{Pos, Problem};
use crate::route::glob::bounded_regex;

/// The TOML text and, for each table, the line it starts on and the
/// statement it came from.
#[derive(Debug, Default)]
pub struct Emitted {
    /// The TOML document.
    pub toml: String,
    /// `(1-based TOML line, where in the c-relay files)`, in order.
    pub origins: Vec<(usize, Pos)>,
}

/// The name the blackhole cluster gets in TOML (`send to blackhole` is a
/// keyword in carbon-c-relay, not a cluster).
const BLACKHOLE: &str = "blackhole";

/// carbon-c-relay's default port for members, receptors and `-p`.
const GRAPHITE_PORT: u16 = 2003;

/// Most members a cluster may have (`CONN_DESTS_SIZE`).
const MAX_MEMBERS: usize = 128;

#[derive(Default)]
struct State {
    out: Emitted,
    problems: Vec<Problem>,
    /// Cluster name to its type word, in definition order.
    clusters: HashMap<String, String>,
    /// `host:port` to its instance, as carbon-c-relay checks members.
    servers: HashMap<String, Option<String>>,
    blackhole_used: bool,
    tcp: Option<(String, Pos)>,
    udp: Option<(String, Pos)>,
    unix: Option<(String, Pos)>,
    stats_interval: Option<u64>,
    stats_prefix: Option<String>,
    stats_reset: bool,
    stats_send_to: Vec<String>,
    notes: Vec<String>,
    rules: String,
    rule_origins: Vec<Pos>,
    cluster_tables: String,
    cluster_origins: Vec<Pos>,
}

/// A TOML string: literal when it can be, so regexes read as written.
pub fn quote(s: &str) -> String {
    if !s.contains('\'') && !s.chars().any(char::is_control) {
        return format!("'{s}'");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl State {
    fn unsupported(&mut self, pos: Pos, what: &str) {
        self.problems.push(Problem::new(
            pos,
            format!("{what} is not supported by carbonwatch yet"),
        ));
    }

    fn regex(&mut self, t: &Text) -> bool {
        // GNU regex's word boundaries; Rust reads `\<` as a plain `<`.
        if t.s.contains("\\<") || t.s.contains("\\>") {
            self.problems.push(Problem::new(
                t.pos,
                format!(
                    "invalid expression '{}': \\< and \\> are not supported; use \\b",
                    t.s
                ),
            ));
            return false;
        }
        match bounded_regex(&t.s) {
            Ok(_) => true,
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim().to_string();
                self.problems.push(Problem::new(
                    t.pos,
                    format!("invalid expression '{}': {reason}", t.s),
                ));
                false
            }
        }
    }

    /// carbon-c-relay's replacement as a TOML template: `$` has no meaning
    /// to c-relay, so it is doubled.
    fn template(t: &Text) -> String {
        quote(&t.s.replace('$', "$$"))
    }

    /// Starts a table with a comment naming where it came from, and a mark
    /// where its line number goes once the document is assembled.
    fn origin(&mut self, buf: Buf, pos: Pos, file: &str) {
        let (text, origins) = match buf {
            Buf::Clusters => (&mut self.cluster_tables, &mut self.cluster_origins),
            Buf::Rules => (&mut self.rules, &mut self.rule_origins),
        };
        let _ = writeln!(text, "\n# {file}:{}", pos.line);
        text.push('\u{1}');
        origins.push(pos);
    }

    fn member(&mut self, m: &Member) -> Option<String> {
        for (opt, what) in [
            (&m.kind, "type"),
            (&m.proto, "proto"),
            (&m.transport, "transport"),
        ] {
            let Some(v) = opt else { continue };
            let fine = match what {
                "type" => v.s == "linemode",
                "proto" => true,
                _ => v.s == "plain",
            };
            if !fine {
                self.unsupported(v.pos, &format!("{what} {}", v.s));
            }
        }
        if let Some(ssl) = &m.ssl {
            self.unsupported(ssl.pos, "transport ssl");
        }
        let (host, port) = match split_address(&m.addr.s) {
            Ok(hp) => hp,
            Err(message) => {
                self.problems.push(Problem::new(m.addr.pos, message));
                return None;
            }
        };
        let Some(host) = host else {
            self.problems
                .push(Problem::new(m.addr.pos, "a server needs a host"));
            return None;
        };
        let key = format!("{host}:{port}");
        let instance = m.instance.as_ref().map(|i| i.s.clone());
        match self.servers.get(&key) {
            Some(prev) if *prev != instance => {
                let message = match (prev, &instance) {
                    (Some(p), Some(i)) => format!(
                        "cannot set instance '{i}' for server {key}: server was previously defined with instance '{p}'"
                    ),
                    (Some(p), None) => format!(
                        "cannot define server {key} without instance: server was previously defined with instance '{p}'"
                    ),
                    (None, _) => {
                        format!("server {key}: server was previously defined without instance")
                    }
                };
                self.problems.push(Problem::new(m.addr.pos, message));
            }
            _ => {
                self.servers.insert(key, instance.clone());
            }
        }
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Some(match instance {
            Some(i) => format!("{host}:{port}:{i}"),
            None => format!("{host}:{port}"),
        })
    }

    fn cluster(&mut self, name: &Text, kind: &ClusterKind, members: &[Member], file: &str) {
        let notes_before = self.notes.len();
        if self.clusters.contains_key(&name.s) || name.s == BLACKHOLE {
            self.problems.push(Problem::new(
                name.pos,
                "cluster with the same name already defined",
            ));
            return;
        }
        let (toml_type, word, replication) = match kind {
            ClusterKind::Plain { kind, useall } => {
                if *useall {
                    self.notes.push(format!(
                        "{file}:{}: cluster {}: useall is ignored; each member is one address, resolved when connecting",
                        kind.pos.line, name.s
                    ));
                }
                (kind.s.clone(), kind, 1)
            }
            ClusterKind::Hash {
                kind,
                replication,
                replication_at,
                dynamic,
            } => {
                if !(1..=255).contains(replication) {
                    self.problems.push(Problem::new(
                        replication_at.unwrap_or(kind.pos),
                        "replication count must be between 1 and 255",
                    ));
                    return;
                }
                if *replication as usize > members.len() {
                    self.problems.push(Problem::new(
                        name.pos,
                        format!(
                            "invalid cluster '{}': replication count ({replication}) is larger than the number of servers ({})",
                            name.s,
                            members.len()
                        ),
                    ));
                    return;
                }
                if *dynamic {
                    self.notes.push(format!(
                        "{file}:{}: cluster {}: dynamic is ignored; a down member's metrics wait in its queue and spool instead of moving to the others",
                        kind.pos.line, name.s
                    ));
                }
                let t = match kind.s.as_str() {
                    "carbon_ch" => "carbon_ch_crelay",
                    "fnv1a_ch" => "fnv1a_ch_crelay",
                    other => other,
                };
                (t.to_string(), kind, *replication)
            }
            ClusterKind::File { kind, ip } => {
                let what = if *ip {
                    "cluster type file ip"
                } else {
                    "cluster type file"
                };
                self.unsupported(kind.pos, what);
                return;
            }
        };
        if members.len() > MAX_MEMBERS {
            self.problems.push(Problem::new(
                members[MAX_MEMBERS].addr.pos,
                format!("a cluster has at most {MAX_MEMBERS} members"),
            ));
        }
        let udp = |m: &Member| m.proto.as_ref().is_some_and(|p| p.s == "udp");
        let any_udp = members.iter().any(udp);
        if any_udp && !members.iter().all(udp) {
            let at = members
                .iter()
                .find(|m| !udp(m))
                .expect("a tcp member")
                .addr
                .pos;
            self.problems.push(Problem::new(
                at,
                "a cluster mixing proto udp and tcp members: carbonwatch sets the protocol per cluster",
            ));
            return;
        }
        let before = self.problems.len();
        let dests: Vec<String> = members.iter().filter_map(|m| self.member(m)).collect();
        if self.problems.len() > before {
            return;
        }
        self.clusters.insert(name.s.clone(), word.s.clone());
        self.origin(Buf::Clusters, name.pos, file);
        let t = &mut self.cluster_tables;
        for note in &self.notes[notes_before..] {
            let (_, what) = note.split_once(": ").unwrap_or(("", note));
            let _ = writeln!(t, "# NOTE {what}");
        }
        let _ = writeln!(t, "[[cluster]]");
        let _ = writeln!(t, "name = {}", quote(&name.s));
        let _ = writeln!(t, "type = {}", quote(&toml_type));
        if replication != 1 {
            let _ = writeln!(t, "replication = {replication}");
        }
        if any_udp {
            let _ = writeln!(t, "protocol = 'plaintext_udp'");
        }
        let list: Vec<String> = dests.iter().map(|d| quote(d)).collect();
        let _ = writeln!(t, "destinations = [{}]", list.join(", "));
    }

    /// The TOML `to` list, or `None` when a name is unknown.
    fn send_to(&mut self, send: &SendTo) -> Option<Vec<String>> {
        let mut to = Vec::new();
        let mut ok = true;
        for c in &send.clusters {
            if c.s == BLACKHOLE {
                self.blackhole_used = true;
                to.push(quote(BLACKHOLE));
            } else if self.clusters.contains_key(&c.s) {
                to.push(quote(&c.s));
            } else {
                self.problems.push(Problem::new(c.pos, "unknown cluster"));
                ok = false;
            }
        }
        ok.then_some(to)
    }

    fn stmt(&mut self, stmt: &Stmt, file: &str) {
        match stmt {
            Stmt::Cluster {
                name,
                kind,
                members,
            } => self.cluster(name, kind, members, file),
            Stmt::Match {
                at,
                exprs,
                validate,
                route_using,
                send,
            } => {
                if let Some((re, _)) = validate {
                    self.regex(re);
                }
                if let (Some(k), true) = (route_using, exprs.is_empty()) {
                    self.unsupported(k.pos, "route using after match *");
                }
                let exprs_ok = exprs.iter().all(|e| self.regex(e));
                let Some(to) = self.send_to(send) else { return };
                if !exprs_ok {
                    return;
                }
                // One rule per expression, as carbon-c-relay adds them.
                let matchers: Vec<Option<&Text>> = if exprs.is_empty() {
                    vec![None]
                } else {
                    exprs.iter().map(Some).collect()
                };
                for e in matchers {
                    self.origin(Buf::Rules, e.map_or(*at, |e| e.pos), file);
                    let r = &mut self.rules;
                    let _ = writeln!(r, "[[route]]");
                    match e {
                        None => {
                            let _ = writeln!(r, "match = '*'");
                        }
                        Some(e) => {
                            let _ = writeln!(r, "regex = {}", quote(&e.s));
                            if let Some(k) = route_using {
                                let _ = writeln!(r, "hash_key = {}", Self::template(k));
                            }
                        }
                    }
                    if let Some((re, action)) = validate {
                        let _ = writeln!(r, "validate = {}", quote(&re.s));
                        let _ = writeln!(r, "on_invalid = {}", quote(&action.s));
                    }
                    let _ = writeln!(r, "to = [{}]", to.join(", "));
                    if send.stop.is_some() && !send.clusters.is_empty() {
                        let _ = writeln!(r, "stop = true");
                    }
                }
            }
            Stmt::Rewrite { expr, into } => {
                if !self.regex(expr) {
                    return;
                }
                self.origin(Buf::Rules, expr.pos, file);
                let r = &mut self.rules;
                let _ = writeln!(r, "[[route]]");
                let _ = writeln!(r, "regex = {}", quote(&expr.s));
                let _ = writeln!(r, "rewrite = {}", Self::template(into));
            }
            Stmt::Aggregate {
                at,
                exprs,
                every,
                expire,
                timestamp,
                computes,
                send,
            } => {
                let exprs_ok = exprs.iter().all(|e| self.regex(e));
                let Some(to) = self.send_to(send) else { return };
                if !exprs_ok {
                    return;
                }
                self.origin(Buf::Rules, exprs.first().map_or(*at, |e| e.pos), file);
                let r = &mut self.rules;
                let _ = writeln!(r, "[[aggregate]]");
                match &exprs[..] {
                    [] => {
                        let _ = writeln!(r, "match = '*'");
                    }
                    [e] => {
                        let _ = writeln!(r, "regex = {}", quote(&e.s));
                    }
                    many => {
                        let list: Vec<String> = many.iter().map(|e| quote(&e.s)).collect();
                        let _ = writeln!(r, "regex = [{}]", list.join(", "));
                    }
                }
                let _ = writeln!(r, "every_secs = {every}");
                let _ = writeln!(r, "expire_secs = {expire}");
                if let Some(t) = timestamp {
                    let _ = writeln!(r, "timestamp = {}", quote(&t.s));
                }
                let _ = writeln!(r, "compute = [");
                for c in computes {
                    let _ = writeln!(
                        r,
                        "  {{ function = {}, write_to = {} }},",
                        quote(&c.func.s),
                        Self::template(&c.write_to)
                    );
                }
                let _ = writeln!(r, "]");
                if !to.is_empty() {
                    let _ = writeln!(r, "send_to = [{}]", to.join(", "));
                }
                if send.stop.is_some() {
                    let _ = writeln!(r, "stop = true");
                }
            }
            Stmt::Statistics {
                interval,
                reset,
                prefix,
                send,
                ..
            } => {
                if let Some((n, _)) = interval {
                    self.stats_interval = Some(*n);
                }
                if reset.is_some() {
                    self.stats_reset = true;
                }
                if let Some(p) = prefix {
                    match stats_prefix(&p.s) {
                        Some(converted) => self.stats_prefix = Some(converted),
                        None => self.unsupported(
                            p.pos,
                            "a statistics prefix other than \\1 (host), \\.1 (host, dots as _) and \\2 (short host)",
                        ),
                    }
                }
                if !send.clusters.is_empty() {
                    if let Some(to) = self.send_to(send) {
                        self.stats_send_to = to;
                    }
                }
            }
            Stmt::Listen {
                transport,
                ssl,
                receptors,
                ..
            } => {
                if let Some(t) = transport.as_ref().filter(|t| t.s != "plain") {
                    self.unsupported(t.pos, &format!("transport {}", t.s));
                }
                if let Some(s) = ssl {
                    self.unsupported(s.pos, "transport ssl");
                }
                for r in receptors {
                    if r.proto.s == "unix" {
                        match &self.unix {
                            Some((prev, _)) if *prev != r.addr.s => {
                                let message = format!(
                                    "a second unix listener ({}, after {prev}): carbonwatch listens on one unix socket",
                                    r.addr.s
                                );
                                self.problems.push(Problem::new(r.addr.pos, message));
                            }
                            _ => self.unix = Some((r.addr.s.clone(), r.addr.pos)),
                        }
                        continue;
                    }
                    let addr = match split_address(&r.addr.s) {
                        Ok((host, port)) => {
                            let host = host.unwrap_or_else(|| "0.0.0.0".into());
                            if host.contains(':') {
                                format!("[{host}]:{port}")
                            } else {
                                format!("{host}:{port}")
                            }
                        }
                        Err(m) => {
                            self.problems.push(Problem::new(r.addr.pos, m));
                            continue;
                        }
                    };
                    let slot = if r.proto.s == "tcp" {
                        &mut self.tcp
                    } else {
                        &mut self.udp
                    };
                    match slot {
                        Some((prev, _)) if *prev != addr => {
                            let message = format!(
                                "a second {} listener ({addr}, after {prev}): carbonwatch listens on one TCP and one UDP address",
                                r.proto.s
                            );
                            self.problems.push(Problem::new(r.addr.pos, message));
                        }
                        _ => *slot = Some((addr, r.addr.pos)),
                    }
                }
            }
            Stmt::Include { .. } => unreachable!("includes are expanded by the reader"),
        }
    }
}

#[derive(Clone, Copy)]
enum Buf {
    Clusters,
    Rules,
}

/// c-relay's statistics prefix template (applied to the host name with
/// `^(([^.]+)(\..*)?)$`) in `[stats] prefix` placeholders.
fn stats_prefix(template: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (placeholder, len) = if after.starts_with(".1") {
            ("{host}", 2)
        } else if after.starts_with('1') {
            ("{fqdn}", 1)
        } else if after.starts_with(".2") {
            ("{short}", 2)
        } else if after.starts_with('2') {
            ("{short}", 1)
        } else {
            return None;
        };
        out.push_str(placeholder);
        rest = &after[len..];
    }
    out.push_str(rest);
    Some(out)
}

/// carbon-c-relay's `router_validate_address`: the port follows the last
/// `:` unless the address ends in `]`; `[v6]` brackets come off; no host
/// (`:2003`, or a bare port for receptors) is `None`.
fn split_address(s: &str) -> Result<(Option<String>, u16), String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return port(s).map(|p| (None, p));
    }
    let (host, p) = match s.rfind(':') {
        Some(i) if !s.ends_with(']') => (&s[..i], port(&s[i + 1..])?),
        _ => (s, GRAPHITE_PORT),
    };
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or("expected ']'")?,
        None => host,
    };
    Ok(((!host.is_empty()).then(|| host.to_string()), p))
}

fn port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|&p| p >= 1)
        .ok_or_else(|| format!("invalid port number '{s}'"))
}

/// Turns every statement into TOML, or every problem found.
pub fn emit(
    stmts: &[(Stmt, String)],
    relay_port: u16,
) -> Result<(Emitted, Vec<String>), Vec<Problem>> {
    let mut st = State::default();
    for (stmt, file) in stmts {
        st.stmt(stmt, file);
    }
    if !st.problems.is_empty() {
        return Err(st.problems);
    }
    let mut head = String::new();
    let listen_default = st.tcp.is_none() && st.udp.is_none() && st.unix.is_none();
    let any = format!("0.0.0.0:{relay_port}");
    let tcp = st.tcp.map(|t| t.0).unwrap_or_else(|| {
        if listen_default {
            any.clone()
        } else {
            String::new()
        }
    });
    let udp = st.udp.map(|t| t.0).unwrap_or_else(|| {
        if listen_default {
            any.clone()
        } else {
            String::new()
        }
    });
    let _ = writeln!(head, "[listen]");
    let _ = writeln!(head, "plaintext_tcp = {}", quote(&tcp));
    let _ = writeln!(head, "plaintext_udp = {}", quote(&udp));
    if let Some((path, _)) = &st.unix {
        let _ = writeln!(head, "plaintext_unix = {}", quote(path));
    }
    let _ = writeln!(head, "# carbon-c-relay has no pickle listener.");
    let _ = writeln!(head, "pickle_tcp = ''");
    let _ = writeln!(head, "\n[admin]");
    let _ = writeln!(
        head,
        "# carbon-c-relay has no HTTP port; give an address for the API, the UI"
    );
    let _ = writeln!(head, "# and /metrics.");
    let _ = writeln!(head, "listen = ''");
    let _ = writeln!(head, "\n[alerting]");
    let _ = writeln!(
        head,
        "# Alerting is off: a carbon-c-relay file has no checks. Give a store"
    );
    let _ = writeln!(
        head,
        "# path (and [[check]] tables or the API) to turn it on."
    );
    let _ = writeln!(head, "store = ''");
    let _ = writeln!(head, "\n[relay]");
    let _ = writeln!(
        head,
        "# Names are cleansed as carbon-c-relay's dispatcher does."
    );
    let _ = writeln!(head, "cleanse_names = true");
    let _ = writeln!(head, "\n[stats]");
    let _ = writeln!(head, "interval_secs = {}", st.stats_interval.unwrap_or(60));
    let prefix = st
        .stats_prefix
        .clone()
        .unwrap_or_else(|| "carbon.relays.{host}".into());
    let _ = writeln!(head, "prefix = {}", quote(&prefix));
    if st.stats_reset {
        let _ = writeln!(head, "reset_counters = true");
    }
    if !st.stats_send_to.is_empty() {
        let _ = writeln!(head, "send_to = [{}]", st.stats_send_to.join(", "));
    }
    if st.blackhole_used {
        let _ = writeln!(
            st.cluster_tables,
            "\n[[cluster]]\nname = '{BLACKHOLE}'\ntype = 'blackhole'"
        );
    }
    let body = format!("{head}{}{}", st.cluster_tables, st.rules);
    // Number the marked origins now that the document is whole.
    let mut toml = String::with_capacity(body.len());
    let mut marked = st.cluster_origins.iter().chain(&st.rule_origins);
    let mut line = 1;
    for c in body.chars() {
        match c {
            '\u{1}' => {
                let pos = *marked.next().expect("one origin per mark");
                st.out.origins.push((line, pos));
            }
            '\n' => {
                line += 1;
                toml.push(c);
            }
            c => toml.push(c),
        }
    }
    st.out.toml = toml;
    Ok((st.out, st.notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_like_carbon_c_relay() {
        assert_eq!(split_address("h:2004").unwrap(), (Some("h".into()), 2004));
        assert_eq!(split_address("h").unwrap(), (Some("h".into()), 2003));
        assert_eq!(split_address("[::1]:5").unwrap(), (Some("::1".into()), 5));
        assert_eq!(split_address("[::1]").unwrap(), (Some("::1".into()), 2003));
        assert_eq!(split_address(":2003").unwrap(), (None, 2003));
        assert_eq!(split_address("2004").unwrap(), (None, 2004));
        assert_eq!(
            split_address("h:99999").unwrap_err(),
            "invalid port number '99999'"
        );
        assert_eq!(split_address("h:0").unwrap_err(), "invalid port number '0'");
    }

    #[test]
    fn statistics_prefixes() {
        assert_eq!(
            stats_prefix("carbon.relays.\\.1").unwrap(),
            "carbon.relays.{host}"
        );
        assert_eq!(stats_prefix("x.\\2.y").unwrap(), "x.{short}.y");
        assert_eq!(stats_prefix("x.\\1").unwrap(), "x.{fqdn}");
        assert!(stats_prefix("x.\\_1").is_none());
    }

    #[test]
    fn strings_quote_for_toml() {
        assert_eq!(quote(r"^a\.b"), r"'^a\.b'");
        assert_eq!(quote("it's"), "\"it's\"");
        assert_eq!(quote("a'\\"), "\"a'\\\\\"");
    }
}
