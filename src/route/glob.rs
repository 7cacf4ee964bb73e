//! Graphite globs with graphite-web's semantics, compiled to an anchored
//! regular expression:
//!
//! * `*` is any run of characters and `?` one character, never crossing `.`;
//! * `[a-z0-9]` is a class and `[!x]` its negation (Python `fnmatch`);
//! * `{a,b}` is an alternation: several per node and nested groups work;
//! * `**` matches any number of nodes (graphite-web's globstar);
//! * a backslash is removed, as graphite-web's finder does.

use regex::Regex;

/// A compiled Graphite glob.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    regex: Regex,
}

/// A glob that could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let err = |reason: String| GlobError {
            pattern: pattern.to_string(),
            reason,
        };
        let chars: Vec<char> = pattern.chars().filter(|&c| c != '\\').collect();
        let mut re = String::with_capacity(pattern.len() * 2 + 8);
        re.push('^');
        translate(&chars, 0, &mut re, 0).map_err(|r| err(r.to_string()))?;
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| err(e.to_string()))?;
        Ok(Glob {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// Whether `name` matches the whole pattern.
    pub fn is_match(&self, name: &str) -> bool {
        self.regex.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the pattern has no wildcard at all, so it matches one name.
    pub fn is_literal(pattern: &str) -> bool {
        !pattern.contains(['*', '?', '[', '{', '\\'])
    }
}

/// Translates from `i` until the end, or until the `}` or `,` that closes
/// the current brace group when `depth > 0`. Returns the index it stopped at.
fn translate(
    p: &[char],
    mut i: usize,
    re: &mut String,
    depth: usize,
) -> Result<usize, &'static str> {
    while i < p.len() {
        match p[i] {
            '*' if p.get(i + 1) == Some(&'*') => {
                re.push_str(".*");
                i += 2;
            }
            '*' => {
                re.push_str("[^.]*");
                i += 1;
            }
            '?' => {
                re.push_str("[^.]");
                i += 1;
            }
            '[' => i = class(p, i, re),
            '{' => {
                re.push_str("(?:");
                i += 1;
                loop {
                    i = translate(p, i, re, depth + 1)?;
                    match p.get(i) {
                        Some(',') => {
                            re.push('|');
                            i += 1;
                        }
                        Some('}') => {
                            re.push(')');
                            i += 1;
                            break;
                        }
                        _ => return Err("unclosed '{'"),
                    }
                }
            }
            '}' | ',' if depth > 0 => return Ok(i),
            c => {
                let mut buf = [0u8; 4];
                re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
                i += 1;
            }
        }
    }
    Ok(i)
}

/// An fnmatch class starting at `p[i] == '['`: whether it is negated
/// (`[!...]`), its body, and the index after its `]`. A `]` right after
/// `[` or `[!` belongs to the body. `None` when no `]` closes it: then, as in
/// fnmatch, the `[` is a literal.
fn class_span(p: &[char], i: usize) -> Option<(bool, &[char], usize)> {
    let negate = p.get(i + 1) == Some(&'!');
    let body_start = i + 1 + usize::from(negate);
    let search_from = body_start + usize::from(p.get(body_start) == Some(&']'));
    let close = search_from + p.get(search_from..)?.iter().position(|&c| c == ']')?;
    Some((negate, &p[body_start..close], close + 1))
}

/// Translates the class at `p[i] == '['` into `re`; returns the index after it.
fn class(p: &[char], i: usize, re: &mut String) -> usize {
    let Some((negate, body, next)) = class_span(p, i) else {
        re.push_str(r"\[");
        return i + 1;
    };
    re.push('[');
    if negate {
        re.push('^');
    }
    for &c in body {
        match c {
            '\\' | '[' | ']' | '^' | '&' | '~' => {
                re.push('\\');
                re.push(c);
            }
            _ => re.push(c),
        }
    }
    // A class never matches the node separator.
    if negate {
        re.push('.');
    }
    re.push(']');
    next
}

/// One dot-free node of a Graphite glob, matched without a regex engine.
///
/// The pattern index holds one matcher per wildcard node of every live
/// check; as `regex::Regex` values they cost about 10 KB each (1 GB for
/// 100,000 checks in `scripts/bench-alerts.sh`), as tokens about a hundred
/// bytes. Braces are expanded when the matcher is built, as graphite-web's
/// `expand_braces` does; matching backtracks over `*`.
#[derive(Debug, Clone)]
pub struct NodeGlob {
    pattern: Box<str>,
    alternatives: Box<[Box<[Tok]>]>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    One,
    Class {
        negate: bool,
        items: Box<[(char, char)]>,
    },
}

/// Most alternatives a node's braces may expand to; beyond it the node is
/// refused (the index then matches the whole pattern with [`Glob`]).
const MAX_ALTERNATIVES: usize = 256;

impl NodeGlob {
    /// Compiles one node (no `.`). `None` if it has unbalanced braces or
    /// expands to too many alternatives.
    pub fn new(pattern: &str) -> Option<NodeGlob> {
        let chars: Vec<char> = pattern.chars().filter(|&c| c != '\\').collect();
        let expanded = expand(&chars)?;
        let alternatives = expanded
            .iter()
            .map(|alt| tokens(alt).into_boxed_slice())
            .collect();
        Some(NodeGlob {
            pattern: pattern.into(),
            alternatives,
        })
    }

    /// The node as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `name` matches.
    pub fn is_match(&self, name: &str) -> bool {
        self.alternatives.iter().any(|t| match_toks(t, name))
    }
}

/// Expands `{a,b}` groups, innermost first in effect, into plain patterns.
fn expand(p: &[char]) -> Option<Vec<Vec<char>>> {
    let Some(open) = p.iter().position(|&c| c == '{') else {
        return Some(vec![p.to_vec()]);
    };
    let (mut depth, mut close, mut commas) = (0, None, Vec::new());
    for (i, &c) in p.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            ',' if depth == 1 => commas.push(i),
            _ => {}
        }
    }
    let close = close?;
    let mut bounds = vec![open];
    bounds.extend(commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mut candidate = p[..open].to_vec();
        candidate.extend_from_slice(&p[w[0] + 1..w[1]]);
        candidate.extend_from_slice(&p[close + 1..]);
        for e in expand(&candidate)? {
            if !out.contains(&e) {
                out.push(e);
            }
            if out.len() > MAX_ALTERNATIVES {
                return None;
            }
        }
    }
    Some(out)
}

fn tokens(p: &[char]) -> Vec<Tok> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => {
                if out.last() != Some(&Tok::Any) {
                    out.push(Tok::Any);
                }
                i += 1;
            }
            '?' => {
                out.push(Tok::One);
                i += 1;
            }
            '[' => {
                let Some((negate, body, next)) = class_span(p, i) else {
                    out.push(Tok::Lit('['));
                    i += 1;
                    continue;
                };
                let mut items = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    if k + 2 < body.len() && body[k + 1] == '-' {
                        items.push((body[k], body[k + 2]));
                        k += 3;
                    } else {
                        items.push((body[k], body[k]));
                        k += 1;
                    }
                }
                out.push(Tok::Class {
                    negate,
                    items: items.into(),
                });
                i = next;
            }
            c => {
                out.push(Tok::Lit(c));
                i += 1;
            }
        }
    }
    out
}

fn match_toks(t: &[Tok], s: &str) -> bool {
    let Some((first, rest)) = t.split_first() else {
        return s.is_empty();
    };
    fn one(s: &str) -> Option<(char, &str)> {
        let mut it = s.chars();
        it.next().map(|c| (c, it.as_str()))
    }
    match first {
        Tok::Lit(c) => s.strip_prefix(*c).is_some_and(|r| match_toks(rest, r)),
        Tok::One => one(s).is_some_and(|(_, r)| match_toks(rest, r)),
        Tok::Class { negate, items } => one(s).is_some_and(|(c, r)| {
            let inside = items.iter().any(|&(lo, hi)| lo <= c && c <= hi);
            inside != *negate && match_toks(rest, r)
        }),
        Tok::Any => {
            if rest.is_empty() {
                return true;
            }
            s.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(s.len()))
                .any(|i| match_toks(rest, &s[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    /// (pattern, name, graphite-web's answer)
    const TABLE: &[(&str, &str, bool)] = &[
        ("servers.*", "servers.web01", true),
        ("servers.*", "servers.web01.cpu", false),
        ("servers.*.cpu", "servers..cpu", true),
        ("a*b*c", "axxbyyc", true),
        ("a?c", "abc", true),
        ("a?c", "a.c", false),
        ("web[12]", "web1", true),
        ("web[12]", "web3", false),
        ("web[!1]", "web2", true),
        ("web[!1]", "web1", false),
        ("web[!1]x", "web.x", false),
        ("web[a-c0-9]", "webb", true),
        ("web[-a]", "web-", true),
        ("{a,b}.{c,d}", "b.c", true),
        ("{a,b}{c,d}", "bd", true),
        ("{a,{b,c}}x", "cx", true),
        ("{a,b}", "ab", false),
        ("x.{a*,b}", "x.alpha", true),
        ("**.cpu", "a.b.c.cpu", true),
        ("a\\.b", "a.b", true),
        ("a+b", "a+b", true),
        ("a(b)", "a(b)", true),
        ("[x", "[x", true),
        ("caf\u{e9}.*", "caf\u{e9}.x", true),
    ];

    #[test]
    fn graphite_web_semantics() {
        for (pattern, name, want) in TABLE {
            let g = Glob::new(pattern).unwrap();
            assert_eq!(g.is_match(name), *want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn unclosed_brace_is_an_error_and_stray_closers_are_literal() {
        assert!(Glob::new("{a,b").is_err());
        assert!(Glob::new("a}").unwrap().is_match("a}"));
        assert!(Glob::new("a,b").unwrap().is_match("a,b"));
    }

    mod node {
        use super::super::{Glob, NodeGlob};
        use proptest::prelude::*;

        #[test]
        fn node_matcher_agrees_with_the_table() {
            for (pattern, name, want) in super::TABLE
                .iter()
                .filter(|(p, n, _)| !p.contains('.') && !n.contains('.'))
            {
                let g = NodeGlob::new(pattern).unwrap();
                assert_eq!(g.is_match(name), *want, "{pattern} vs {name}");
            }
            assert!(NodeGlob::new("{a,b").is_none());
            assert!(NodeGlob::new("x{a,{b,c}}y").unwrap().is_match("xcy"));
        }

        proptest! {
            /// On single nodes the hand-written matcher and the regex-based
            /// Glob always agree.
            #[test]
            fn node_matcher_agrees_with_glob(pattern in "([ab*?]|\\[!?[ab]\\]|\\{[ab*]{0,2},[ab]{0,2}\\}){0,6}", name in "[abc]{0,6}") {
                let node = NodeGlob::new(&pattern).unwrap();
                let glob = Glob::new(&pattern).unwrap();
                prop_assert_eq!(node.is_match(&name), glob.is_match(&name), "{} vs {}", pattern, name);
            }
        }
    }
}
