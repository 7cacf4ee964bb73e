//! Graphite globs with graphite-web's semantics, compiled to an anchored
//! regular expression:
//!
//! * `*` is any run of characters and `?` one character, never crossing `.`;
//! * `[a-z0-9]` is a class and `[!x]` its negation (Python `fnmatch`);
//! * `{a,b}` is an alternation: several per node and nested groups work;
//! * `**` matches any number of nodes (graphite-web's globstar);
//! * a backslash is removed, as graphite-web's finder does.

use regex::{Regex, RegexBuilder};

/// Longest glob accepted, in bytes. Globs come from the API and from
/// config files; this bounds the work of compiling one and of matching it
/// against a name (names are at most `max_line_bytes`).
pub const MAX_GLOB_BYTES: usize = 16384;

/// Deepest nesting of `{...}` groups. Translation recurses once per level,
/// so this is what keeps a hostile pattern from overflowing the stack.
pub const MAX_GLOB_DEPTH: usize = 16;

/// Most `{...}` groups in one glob. Brace expansion recurses once per
/// group.
pub const MAX_GLOB_GROUPS: usize = 256;

/// Compiled-program size a regular expression may take (routes, globs,
/// the API's `regexes` filters): bounds the memory one pattern can claim.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

/// Deepest nesting of a regular expression's groups and repetitions.
pub const MAX_REGEX_DEPTH: u32 = 64;

/// A regular expression with [`MAX_REGEX_BYTES`] and [`MAX_REGEX_DEPTH`]
/// applied; the one way this crate compiles a pattern it was given.
pub fn bounded_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .dfa_size_limit(MAX_REGEX_BYTES)
        .nest_limit(MAX_REGEX_DEPTH)
        .build()
}

/// Checks a glob's size and nesting before anything recurses over it.
pub fn check_limits(pattern: &str) -> Result<(), GlobError> {
    let err = |reason: String| GlobError {
        pattern: pattern.to_string(),
        reason,
    };
    if pattern.len() > MAX_GLOB_BYTES {
        return Err(err(format!(
            "longer than {MAX_GLOB_BYTES} bytes ({} bytes)",
            pattern.len()
        )));
    }
    let (mut depth, mut deepest, mut groups) = (0usize, 0usize, 0usize);
    // Backslashes are dropped before translation, so they escape nothing
    // here either.
    for b in pattern.bytes() {
        match b {
            b'{' => {
                depth += 1;
                groups += 1;
                deepest = deepest.max(depth);
            }
            b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_GLOB_DEPTH {
        return Err(err(format!(
            "braces nested {deepest} deep; at most {MAX_GLOB_DEPTH} are allowed"
        )));
    }
    if groups > MAX_GLOB_GROUPS {
        return Err(err(format!(
            "{groups} brace groups; at most {MAX_GLOB_GROUPS} are allowed"
        )));
    }
    Ok(())
}

/// A compiled Graphite glob.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    regex: Regex,
}

/// A glob that could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {:?}: {reason}", shorten(pattern))]
pub struct GlobError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The start of a pattern, for messages: a hostile one may be megabytes.
fn shorten(p: &str) -> String {
    const SHOWN: usize = 120;
    match p.char_indices().nth(SHOWN) {
        Some((i, _)) => format!("{}...", &p[..i]),
        None => p.to_string(),
    }
}

impl Glob {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Result<Self, GlobError> {
        let err = |reason: String| GlobError {
            pattern: pattern.to_string(),
            reason,
        };
        check_limits(pattern)?;
        let chars: Vec<char> = pattern.chars().filter(|&c| c != '\\').collect();
        let mut re = String::with_capacity(pattern.len() * 2 + 8);
        // (?s): a name never holds a newline, but fnmatch's translation
        // (graphite-web's) lets `.` match one, and so must `**` here.
        re.push_str("(?s)^");
        translate(&chars, 0, &mut re, 0).map_err(|r| err(r.to_string()))?;
        re.push('$');
        let regex = bounded_regex(&re).map_err(|e| err(e.to_string()))?;
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
        check_limits(pattern).ok()?;
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

/// Whether the tokens match all of `s`. The classic wildcard walk: on a
/// mismatch, resume after the last `*` with it taking one more character.
/// O(tokens × characters) at worst, where backtracking over every `*`
/// would be exponential in the number of stars.
fn match_toks(t: &[Tok], s: &str) -> bool {
    let (mut ti, mut si) = (0, 0);
    // The token after the last `*` and where in `s` that `*` stops.
    let mut star: Option<(usize, usize)> = None;
    loop {
        let next = s[si..].chars().next();
        match t.get(ti) {
            Some(Tok::Any) => {
                star = Some((ti + 1, si));
                ti += 1;
                continue;
            }
            Some(tok) => {
                if let Some(c) = next.filter(|&c| tok.matches(c)) {
                    ti += 1;
                    si += c.len_utf8();
                    continue;
                }
            }
            None if next.is_none() => return true,
            None => {}
        }
        let Some((after, from)) = star else {
            return false;
        };
        let Some(c) = s[from..].chars().next() else {
            return false;
        };
        star = Some((after, from + c.len_utf8()));
        ti = after;
        si = from + c.len_utf8();
    }
}

impl Tok {
    /// Whether this one-character token matches `c` (never called on `Any`).
    fn matches(&self, c: char) -> bool {
        match self {
            Tok::Lit(l) => *l == c,
            Tok::One => true,
            Tok::Class { negate, items } => {
                items.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negate
            }
            Tok::Any => true,
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

    /// Hostile patterns are refused before anything recurses over them,
    /// and matching never backtracks exponentially.
    #[test]
    fn hostile_patterns_are_bounded() {
        let deep = format!("{}a{}", "{".repeat(20_000), "}".repeat(20_000));
        let e = Glob::new(&deep).unwrap_err();
        assert!(e.reason.contains("longer than"), "{e}");
        let nested = format!("{}a{}", "{".repeat(17), "}".repeat(17));
        let e = Glob::new(&nested).unwrap_err();
        assert!(e.reason.contains("nested 17 deep"), "{e}");
        assert!(super::NodeGlob::new(&nested).is_none());
        let ok = format!("{}a{}", "{".repeat(16), "}".repeat(16));
        assert!(Glob::new(&ok).unwrap().is_match("a"));
        let many = "{a}".repeat(300);
        assert!(Glob::new(&many)
            .unwrap_err()
            .reason
            .contains("300 brace groups"));
        assert!(Glob::new(&"a".repeat(super::MAX_GLOB_BYTES + 1)).is_err());
        // Stars that backtracked exponentially: 30 of them against 16 KB.
        let stars = format!("{}b", "*a".repeat(30));
        let node = super::NodeGlob::new(&stars).unwrap();
        assert!(!node.is_match(&"a".repeat(16_000)));
        assert!(node.is_match(&format!("{}b", "a".repeat(100))));
        // Found by the glob fuzz target: `**` and a name with a newline.
        assert!(Glob::new("**").unwrap().is_match("**\n"));
        assert!(super::NodeGlob::new("**").unwrap().is_match("**\n"));
        // graphite-web drops backslashes, so they do not hide braces.
        assert!(Glob::new(&"\\{".repeat(20))
            .unwrap_err()
            .reason
            .contains("nested"));
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
