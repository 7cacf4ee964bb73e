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
            '[' => i = class(p, i, re)?,
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

/// An fnmatch character class starting at `p[i] == '['`. Like fnmatch, a
/// `[` with no closing `]` is a literal.
fn class(p: &[char], i: usize, re: &mut String) -> Result<usize, &'static str> {
    let mut j = i + 1;
    let negate = p.get(j) == Some(&'!');
    if negate {
        j += 1;
    }
    // A ']' right after '[' or '[!' is part of the set.
    let body_start = j;
    if p.get(j) == Some(&']') {
        j += 1;
    }
    while j < p.len() && p[j] != ']' {
        j += 1;
    }
    if j >= p.len() {
        re.push_str(r"\[");
        return Ok(i + 1);
    }
    re.push('[');
    if negate {
        re.push('^');
    }
    for &c in &p[body_start..j] {
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
    Ok(j + 1)
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
}
