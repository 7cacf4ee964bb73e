//! carbon-c-relay's statements (`conffile.y`), parsed into a tree that
//! keeps every token's position for messages.

use super::lex::{Kind, Token};
use super::{Pos, Problem};

/// A word or string with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// The text.
    pub s: String,
    /// Where.
    pub pos: Pos,
}

/// `cluster NAME TYPE ...`: the type and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterKind {
    /// `forward`, `any_of` or `failover`, with `useall`.
    Plain {
        /// The type word.
        kind: Text,
        /// `useall` given.
        useall: bool,
    },
    /// `carbon_ch`, `fnv1a_ch` or `jump_fnv1a_ch`.
    Hash {
        /// The type word.
        kind: Text,
        /// `replication N` (1 when absent).
        replication: u64,
        /// Where `replication` was written.
        replication_at: Option<Pos>,
        /// `dynamic` given.
        dynamic: bool,
    },
    /// `file` or `file ip`.
    File {
        /// The `file` word.
        kind: Text,
        /// `ip` given.
        ip: bool,
    },
}

/// One member of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `host[:port]` or a path.
    pub addr: Text,
    /// `=instance`.
    pub instance: Option<Text>,
    /// `proto udp|tcp`.
    pub proto: Option<Text>,
    /// `type linemode|syslog`.
    pub kind: Option<Text>,
    /// `transport plain|gzip|lz4|snappy`.
    pub transport: Option<Text>,
    /// `ssl` after the transport.
    pub ssl: Option<Text>,
}

/// Where a `match`, `aggregate` or `statistics` sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SendTo {
    /// Cluster names; `blackhole` is one of them.
    pub clusters: Vec<Text>,
    /// `stop` given.
    pub stop: Option<Pos>,
}

/// One `compute ... write to ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compute {
    /// `sum`, `percentile95`, ...
    pub func: Text,
    /// The output name template.
    pub write_to: Text,
}

/// One `listen` receptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receptor {
    /// `[iface]:port`, `port` or a path.
    pub addr: Text,
    /// `tcp`, `udp` or `unix`.
    pub proto: Text,
}

/// A statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `cluster`.
    Cluster {
        /// Its name.
        name: Text,
        /// Type and options.
        kind: ClusterKind,
        /// Members.
        members: Vec<Member>,
    },
    /// `match`.
    Match {
        /// The `match` keyword.
        at: Pos,
        /// The expressions; empty for `*`.
        exprs: Vec<Text>,
        /// `validate REGEX else log|drop`.
        validate: Option<(Text, Text)>,
        /// `route using TEMPLATE`.
        route_using: Option<Text>,
        /// `send to ...` and `stop`.
        send: SendTo,
    },
    /// `rewrite REGEX into TEMPLATE`.
    Rewrite {
        /// The regex.
        expr: Text,
        /// The replacement.
        into: Text,
    },
    /// `aggregate`.
    Aggregate {
        /// The `aggregate` keyword.
        at: Pos,
        /// The expressions.
        exprs: Vec<Text>,
        /// `every N seconds`.
        every: u64,
        /// `expire after M seconds`.
        expire: u64,
        /// `timestamp at start|middle|end of bucket`.
        timestamp: Option<Text>,
        /// The computes.
        computes: Vec<Compute>,
        /// `send to` and `stop`.
        send: SendTo,
    },
    /// `statistics` or `send statistics to`.
    Statistics {
        /// The first keyword.
        at: Pos,
        /// `submit every N seconds`.
        interval: Option<(u64, Pos)>,
        /// `reset counters after interval`.
        reset: Option<Pos>,
        /// `prefix with TEMPLATE`.
        prefix: Option<Text>,
        /// `send to` and `stop`.
        send: SendTo,
    },
    /// `listen type linemode ...`.
    Listen {
        /// The `listen` keyword.
        at: Pos,
        /// `transport ...` with `ssl PEM`.
        transport: Option<Text>,
        /// The `ssl` certificate, if given.
        ssl: Option<Text>,
        /// Where to listen.
        receptors: Vec<Receptor>,
    },
    /// `include PATH`: expanded by the reader, never left in a tree.
    Include {
        /// The path or glob.
        path: Text,
    },
}

struct Parser<'a> {
    toks: &'a [Token],
    i: usize,
    /// Where the file ends, for "unexpected end of file".
    end: Pos,
}

const AGGREGATE_FUNCS: &[&str] = &[
    "sum", "summary", "count", "cnt", "max", "maximum", "min", "minimum", "average", "avg",
    "median", "variance", "stddev",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.i)
    }

    fn here(&self) -> Pos {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn next(&mut self) -> Option<&'a Token> {
        let t = self.toks.get(self.i);
        self.i += 1;
        t
    }

    fn unexpected(&self, expecting: &str) -> Problem {
        let found = match self.peek().map(|t| &t.kind) {
            None => "end of file".to_string(),
            Some(Kind::Semi) => "';'".to_string(),
            Some(Kind::Eq) => "'='".to_string(),
            Some(Kind::Word(w)) | Some(Kind::Quoted(w)) => format!("'{w}'"),
        };
        Problem::new(
            self.here(),
            format!("syntax error, unexpected {found}, expecting {expecting}"),
        )
    }

    fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is(kw))
    }

    fn eat(&mut self, kw: &str) -> Option<Pos> {
        if self.at_kw(kw) {
            Some(self.next().expect("peeked").pos)
        } else {
            None
        }
    }

    fn expect(&mut self, kw: &str) -> Result<Pos, Problem> {
        self.eat(kw)
            .ok_or_else(|| self.unexpected(&format!("'{kw}'")))
    }

    fn string(&mut self, what: &str) -> Result<Text, Problem> {
        match self.peek() {
            Some(t) if t.text().is_some() => {
                self.i += 1;
                Ok(Text {
                    s: t.text().expect("checked").to_string(),
                    pos: t.pos,
                })
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn number(&mut self, what: &str) -> Result<(u64, Pos), Problem> {
        match self.peek() {
            Some(Token {
                kind: Kind::Word(w),
                pos,
            }) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                self.i += 1;
                let n = w
                    .parse()
                    .map_err(|_| Problem::new(*pos, format!("{what} is too large")))?;
                Ok((n, *pos))
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn end_of_statement(&mut self) -> Result<(), Problem> {
        match self.peek() {
            Some(Token {
                kind: Kind::Semi, ..
            }) => {
                self.i += 1;
                Ok(())
            }
            _ => Err(self.unexpected("';'")),
        }
    }

    fn at_semi(&self) -> bool {
        matches!(
            self.peek(),
            Some(Token {
                kind: Kind::Semi,
                ..
            })
        )
    }

    fn stmt(&mut self) -> Result<Stmt, Problem> {
        let t = self.peek().expect("called with tokens left");
        let stmt = match &t.kind {
            Kind::Word(w) => match w.as_str() {
                "cluster" => self.cluster()?,
                "match" => self.matching()?,
                "rewrite" => {
                    self.next();
                    let expr = self.string("a regular expression")?;
                    self.expect("into")?;
                    let into = self.string("a replacement")?;
                    Stmt::Rewrite { expr, into }
                }
                "aggregate" => self.aggregate()?,
                "statistics" => {
                    let at = self.next().expect("peeked").pos;
                    self.statistics(at)?
                }
                "send" => {
                    let at = self.next().expect("peeked").pos;
                    self.expect("statistics")?;
                    let mut send = SendTo::default();
                    self.expect("to")?;
                    self.destinations(&mut send)?;
                    send.stop = self.eat("stop");
                    Stmt::Statistics {
                        at,
                        interval: None,
                        reset: None,
                        prefix: None,
                        send,
                    }
                }
                "listen" => self.listen()?,
                "include" => {
                    self.next();
                    Stmt::Include {
                        path: self.string("a path")?,
                    }
                }
                _ => return Err(self.unexpected("a statement")),
            },
            _ => return Err(self.unexpected("a statement")),
        };
        self.end_of_statement()?;
        Ok(stmt)
    }

    fn cluster(&mut self) -> Result<Stmt, Problem> {
        self.next();
        let name = self.string("a cluster name")?;
        let kind_tok = self.string("a cluster type")?;
        let kind = match kind_tok.s.as_str() {
            "forward" | "any_of" | "failover" => ClusterKind::Plain {
                kind: kind_tok,
                useall: self.eat("useall").is_some(),
            },
            "carbon_ch" | "fnv1a_ch" | "jump_fnv1a_ch" => {
                let (mut replication, mut replication_at) = (1, None);
                if let Some(at) = self.eat("replication") {
                    replication = self.number("a replication count")?.0;
                    replication_at = Some(at);
                }
                ClusterKind::Hash {
                    kind: kind_tok,
                    replication,
                    replication_at,
                    dynamic: self.eat("dynamic").is_some(),
                }
            }
            "file" => ClusterKind::File {
                kind: kind_tok,
                ip: self.eat("ip").is_some(),
            },
            _ => {
                return Err(Problem::new(
                    kind_tok.pos,
                    format!(
                        "syntax error, unknown cluster type '{}', expecting forward, any_of, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch or file",
                        kind_tok.s
                    ),
                ))
            }
        };
        let mut members = Vec::new();
        while !self.at_semi() && self.peek().is_some() {
            let addr = self.string("a server")?;
            let mut m = Member {
                addr,
                instance: None,
                proto: None,
                kind: None,
                transport: None,
                ssl: None,
            };
            if matches!(self.peek(), Some(Token { kind: Kind::Eq, .. })) {
                self.next();
                m.instance = Some(self.string("an instance")?);
            }
            if self.eat("proto").is_some() {
                m.proto = Some(self.one_of(&["udp", "tcp"])?);
            }
            if self.eat("type").is_some() {
                m.kind = Some(self.one_of(&["linemode", "syslog"])?);
            }
            if self.eat("transport").is_some() {
                m.transport = Some(self.one_of(&["plain", "gzip", "lz4", "snappy"])?);
                if let Some(at) = self.eat("ssl") {
                    m.ssl = Some(Text {
                        s: "ssl".into(),
                        pos: at,
                    });
                }
            }
            members.push(m);
        }
        if members.is_empty() {
            return Err(self.unexpected("a server"));
        }
        Ok(Stmt::Cluster {
            name,
            kind,
            members,
        })
    }

    fn one_of(&mut self, words: &[&str]) -> Result<Text, Problem> {
        match self.peek() {
            Some(t) if words.iter().any(|w| t.is(w)) => {
                self.next();
                Ok(Text {
                    s: t.text().expect("a word").to_string(),
                    pos: t.pos,
                })
            }
            _ => Err(self.unexpected(&words.join(" or "))),
        }
    }

    /// Expressions up to one of `until`; `*` alone means every name.
    fn expressions(&mut self, until: &[&str]) -> Result<Vec<Text>, Problem> {
        if self.at_kw("*") {
            self.next();
            return Ok(Vec::new());
        }
        let mut exprs = Vec::new();
        while let Some(t) = self.peek() {
            if t.text().is_none() || until.iter().any(|u| t.is(u)) {
                break;
            }
            exprs.push(self.string("an expression")?);
        }
        if exprs.is_empty() {
            return Err(self.unexpected("'*' or an expression"));
        }
        Ok(exprs)
    }

    fn destinations(&mut self, send: &mut SendTo) -> Result<(), Problem> {
        while let Some(t) = self.peek() {
            if t.text().is_none() || t.is("stop") {
                break;
            }
            send.clusters.push(self.string("a cluster")?);
        }
        if send.clusters.is_empty() {
            return Err(self.unexpected("a cluster"));
        }
        Ok(())
    }

    fn send_to(&mut self) -> Result<SendTo, Problem> {
        let mut send = SendTo::default();
        if self.eat("send").is_some() {
            self.expect("to")?;
            self.destinations(&mut send)?;
        }
        send.stop = self.eat("stop");
        Ok(send)
    }

    fn matching(&mut self) -> Result<Stmt, Problem> {
        let at = self.next().expect("peeked").pos;
        let exprs = self.expressions(&["validate", "route", "send"])?;
        let validate = match self.eat("validate") {
            Some(_) => {
                let re = self.string("a regular expression")?;
                self.expect("else")?;
                Some((re, self.one_of(&["log", "drop"])?))
            }
            None => None,
        };
        let route_using = match self.eat("route") {
            Some(_) => {
                self.expect("using")?;
                Some(self.string("a replacement")?)
            }
            None => None,
        };
        let send = self.send_to()?;
        Ok(Stmt::Match {
            at,
            exprs,
            validate,
            route_using,
            send,
        })
    }

    fn aggregate(&mut self) -> Result<Stmt, Problem> {
        let at = self.next().expect("peeked").pos;
        let exprs = self.expressions(&["every"])?;
        self.expect("every")?;
        let (every, every_at) = self.number("a number of seconds")?;
        self.expect("seconds")?;
        self.expect("expire")?;
        self.expect("after")?;
        let (expire, expire_at) = self.number("a number of seconds")?;
        self.expect("seconds")?;
        if every == 0 {
            return Err(Problem::new(every_at, "interval must be > 0"));
        }
        if expire == 0 {
            return Err(Problem::new(expire_at, "expire must be > 0"));
        }
        if expire <= every {
            return Err(Problem::new(
                expire_at,
                "expire must be greater than interval",
            ));
        }
        let timestamp = match self.eat("timestamp") {
            Some(_) => {
                self.expect("at")?;
                let when = self.one_of(&["start", "middle", "end"])?;
                self.expect("of")?;
                self.expect("bucket")?;
                Some(when)
            }
            None => None,
        };
        let mut computes = Vec::new();
        while self.eat("compute").is_some() {
            let func = self.string("an aggregate function")?;
            let known = AGGREGATE_FUNCS.contains(&func.s.as_str())
                || func
                    .s
                    .strip_prefix("percentile")
                    .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| (1..=99).contains(&n)));
            if !known {
                let message = if func.s.starts_with("percentile") {
                    "percentile<x>: value x must be between 1 and 99".to_string()
                } else {
                    format!("syntax error, unknown aggregate function '{}'", func.s)
                };
                return Err(Problem::new(func.pos, message));
            }
            self.expect("write")?;
            self.expect("to")?;
            let write_to = self.string("a metric name")?;
            computes.push(Compute { func, write_to });
        }
        if computes.is_empty() {
            return Err(self.unexpected("'compute'"));
        }
        let send = self.send_to()?;
        Ok(Stmt::Aggregate {
            at,
            exprs,
            every,
            expire,
            timestamp,
            computes,
            send,
        })
    }

    fn statistics(&mut self, at: Pos) -> Result<Stmt, Problem> {
        let interval = match self.eat("submit") {
            Some(_) => {
                self.expect("every")?;
                let (n, pos) = self.number("a number of seconds")?;
                self.expect("seconds")?;
                if n == 0 {
                    return Err(Problem::new(pos, "interval must be > 0"));
                }
                Some((n, pos))
            }
            None => None,
        };
        let reset = match self.eat("reset") {
            Some(pos) => {
                self.expect("counters")?;
                self.expect("after")?;
                self.expect("interval")?;
                Some(pos)
            }
            None => None,
        };
        let prefix = match self.eat("prefix") {
            Some(_) => {
                self.expect("with")?;
                Some(self.string("a prefix")?)
            }
            None => None,
        };
        let send = self.send_to()?;
        Ok(Stmt::Statistics {
            at,
            interval,
            reset,
            prefix,
            send,
        })
    }

    fn listen(&mut self) -> Result<Stmt, Problem> {
        let at = self.next().expect("peeked").pos;
        self.expect("type")?;
        self.expect("linemode")?;
        let (mut transport, mut ssl) = (None, None);
        if self.eat("transport").is_some() {
            transport = Some(self.one_of(&["plain", "gzip", "lz4", "snappy"])?);
            if self.eat("ssl").is_some() {
                ssl = Some(self.string("a PEM certificate")?);
            }
        }
        let mut receptors = Vec::new();
        while !self.at_semi() && self.peek().is_some() {
            let addr = self.string("an address")?;
            self.expect("proto")?;
            let proto = self.one_of(&["tcp", "udp", "unix"])?;
            receptors.push(Receptor { addr, proto });
        }
        if receptors.is_empty() {
            return Err(self.unexpected("an address"));
        }
        Ok(Stmt::Listen {
            at,
            transport,
            ssl,
            receptors,
        })
    }
}

/// Parses one file's tokens; `end` is where the file ends.
pub fn statements(toks: &[Token], end: Pos) -> Result<Vec<Stmt>, Problem> {
    let mut p = Parser { toks, i: 0, end };
    let mut out = Vec::new();
    while p.peek().is_some() {
        out.push(p.stmt()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::lex::tokens;
    use super::*;

    fn parse(text: &str) -> Result<Vec<Stmt>, Problem> {
        let end = Pos {
            file: 0,
            line: text.lines().count().max(1),
            col: 0,
            len: 1,
        };
        statements(&tokens(text, 0)?, end)
    }

    #[test]
    fn every_statement() {
        let text = r#"
cluster c carbon_ch replication 2 dynamic 10.0.0.1:2003=a 10.0.0.2=b proto tcp type linemode transport gzip ssl;
cluster f any_of useall h1:2003 h2:2003;
cluster out file ip /tmp/x.out;
match ^a\. ^b\. validate ^[0-9.]+\ [0-9]+$ else drop route using \1 send to c f stop;
match * send to blackhole;
rewrite ^(.*)\.x$ into \_1;
aggregate ^sys\.(.*)\.cpu every 10 seconds expire after 35 seconds timestamp at start of bucket
    compute sum write to \1.sum compute percentile95 write to \1.p95 send to c stop;
statistics submit every 30 seconds reset counters after interval prefix with "carbon.\.1" send to f stop;
send statistics to f;
listen type linemode transport plain 2003 proto tcp :2003 proto udp /tmp/s proto unix;
include /etc/carbon-c-relay.d/*.conf;
"#;
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 11);
        match &s[3] {
            Stmt::Match {
                exprs,
                validate,
                route_using,
                send,
                ..
            } => {
                assert_eq!(exprs.len(), 2);
                assert_eq!(validate.as_ref().unwrap().1.s, "drop");
                assert_eq!(route_using.as_ref().unwrap().s, "\\1");
                assert_eq!(send.clusters.len(), 2);
                assert!(send.stop.is_some());
            }
            other => panic!("{other:?}"),
        }
        match &s[6] {
            Stmt::Aggregate {
                computes, every, ..
            } => assert_eq!((computes.len(), *every), (2, 10)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        let e = parse("cluster a bogus 127.0.0.1:2003;").unwrap_err();
        assert_eq!((e.pos.line, e.pos.col), (1, 10));
        let e = parse("cluster a forward 127.0.0.1:2003;\nmatch * send to a").unwrap_err();
        assert!(e.message.contains("end of file"), "{}", e.message);
        let e =
            parse("aggregate x every 10 seconds expire after 5 seconds compute sum write to y;")
                .unwrap_err();
        assert_eq!(e.message, "expire must be greater than interval");
        let e = parse(
            "aggregate x every 1 seconds expire after 5 seconds compute percentile100 write to y;",
        )
        .unwrap_err();
        assert!(e.message.contains("between 1 and 99"));
        assert!(parse("match ^a").is_err());
        assert!(parse("match ^a send to;").is_err());
    }
}
