//! Replacement templates for rewrites and hash keys, with carbon-c-relay's
//! escapes.
//!
//! A rewrite replaces the part of the name the regex matched and keeps the
//! rest, as both `regex::Regex::replace` and carbon-c-relay's
//! `router_rewrite_metric` do. The template may refer to groups as `\1`,
//! `\g{1}`, `$1` or `${1}` (and `$name`, `${name}`), and carbon-c-relay's
//! modifiers change a group as it is inserted: `\_1` lower case, `\^1`
//! upper case, `\.1` dots to underscores, combined as `\_.1` and `\^.1`.

use regex::Regex;

/// How a group is changed when it is inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// As matched.
    Keep,
    /// `\_`: lower case.
    Lower,
    /// `\^`: upper case.
    Upper,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group { n: usize, case: Case, dots: bool },
}

/// A parsed replacement template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pieces: Vec<Piece>,
    /// The template as written, for messages and `convert`.
    pub source: String,
}

/// Why a template cannot be used with its regex.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    /// `${name}` for a group the regex does not have.
    #[error("the regex has no group named {0:?}")]
    UnknownName(String),
    /// `\g{` without a number and `}`.
    #[error("\\g{{ must be followed by a group number and }}")]
    BadGroupSyntax,
}

impl Replacement {
    /// Parses `template` against `re`, whose named groups `$name` may use.
    ///
    /// Backslash escapes follow carbon-c-relay's state machine: after `\`
    /// come optional `_` or `^`, an optional `.`, then digits; any other
    /// character after `\` is written as itself, so `\x` is `x`.
    pub fn parse(template: &str, re: &Regex) -> Result<Replacement, ReplaceError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let b = template.as_bytes();
        let mut i = 0;
        let push_group = |text: &mut String, pieces: &mut Vec<Piece>, g: Piece| {
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(text)));
            }
            pieces.push(g);
        };
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    i += 1;
                    // `\\1` is group 1 in carbon-c-relay: a second backslash
                    // keeps the escape open.
                    while i < b.len() && b[i] == b'\\' {
                        i += 1;
                    }
                    if template[i..].starts_with("g{") {
                        let close = template[i..]
                            .find('}')
                            .ok_or(ReplaceError::BadGroupSyntax)?;
                        let n = template[i + 2..i + close]
                            .parse::<usize>()
                            .map_err(|_| ReplaceError::BadGroupSyntax)?;
                        push_group(
                            &mut text,
                            &mut pieces,
                            Piece::Group {
                                n,
                                case: Case::Keep,
                                dots: false,
                            },
                        );
                        i += close + 1;
                        continue;
                    }
                    let mut case = Case::Keep;
                    let mut dots = false;
                    match b.get(i) {
                        Some(b'_') => {
                            case = Case::Lower;
                            i += 1;
                        }
                        Some(b'^') => {
                            case = Case::Upper;
                            i += 1;
                        }
                        _ => {}
                    }
                    if b.get(i) == Some(&b'.') {
                        dots = true;
                        i += 1;
                    }
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i > start {
                        let n = template[start..i].parse().unwrap_or(usize::MAX);
                        push_group(&mut text, &mut pieces, Piece::Group { n, case, dots });
                    }
                    // A modifier without digits inserts nothing, as in
                    // carbon-c-relay; the next character is ordinary text.
                }
                b'$' if b.get(i + 1) == Some(&b'$') => {
                    text.push('$');
                    i += 2;
                }
                b'$' => {
                    let (name, len) = if b.get(i + 1) == Some(&b'{') {
                        match template[i + 2..].find('}') {
                            Some(close) => (&template[i + 2..i + 2 + close], close + 3),
                            None => ("", 0),
                        }
                    } else {
                        let end = template[i + 1..]
                            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                            .map_or(template.len(), |e| i + 1 + e);
                        (&template[i + 1..end], end - i)
                    };
                    if name.is_empty() {
                        text.push('$');
                        i += 1;
                        continue;
                    }
                    let n = match name.parse::<usize>() {
                        Ok(n) => n,
                        Err(_) => re
                            .capture_names()
                            .position(|c| c == Some(name))
                            .ok_or_else(|| ReplaceError::UnknownName(name.to_string()))?,
                    };
                    push_group(
                        &mut text,
                        &mut pieces,
                        Piece::Group {
                            n,
                            case: Case::Keep,
                            dots: false,
                        },
                    );
                    i += len;
                }
                _ => {
                    let next = template[i..]
                        .find(['\\', '$'])
                        .map_or(template.len(), |e| i + e);
                    text.push_str(&template[i..next]);
                    i = next;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Replacement {
            pieces,
            source: template.to_string(),
        })
    }

    /// Replaces the first match of `re` in `name`, keeping what is before
    /// and after it; `None` when `re` does not match. Groups that did not
    /// take part in the match, or that the regex does not have, insert
    /// nothing.
    pub fn apply(&self, re: &Regex, name: &str) -> Option<String> {
        let caps = re.captures(name)?;
        let mut out = String::with_capacity(name.len() + 16);
        self.expand(&caps, name, &mut out);
        Some(out)
    }

    /// [`Replacement::apply`] with the regex's `caps` of `name` already
    /// found, written to `out` (cleared first): several templates over one
    /// match find it once.
    pub fn expand(&self, caps: &regex::Captures<'_>, name: &str, out: &mut String) {
        self.expand_with(&|n| caps.get(n).map(|m| (m.start(), m.end())), name, out);
    }

    /// [`Replacement::expand`] from capture locations, which a caller can
    /// reuse from match to match without allocating.
    pub fn expand_locations(&self, locs: &regex::CaptureLocations, name: &str, out: &mut String) {
        self.expand_with(&|n| locs.get(n), name, out);
    }

    fn expand_with(
        &self,
        group: &dyn Fn(usize) -> Option<(usize, usize)>,
        name: &str,
        out: &mut String,
    ) {
        out.clear();
        let (start, end) = group(0).expect("group 0 always matches");
        out.push_str(&name[..start]);
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Group { n, case, dots } => {
                    let Some((s, e)) = group(*n) else { continue };
                    let g = &name[s..e];
                    if *case == Case::Keep && !*dots {
                        out.push_str(g);
                        continue;
                    }
                    for c in g.chars() {
                        let c = if *dots && c == '.' { '_' } else { c };
                        match case {
                            Case::Keep => out.push(c),
                            Case::Lower => out.push(c.to_ascii_lowercase()),
                            Case::Upper => out.push(c.to_ascii_uppercase()),
                        }
                    }
                }
            }
        }
        out.push_str(&name[end..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(re: &str, template: &str, name: &str) -> Option<String> {
        let re = Regex::new(re).unwrap();
        Replacement::parse(template, &re).unwrap().apply(&re, name)
    }

    #[test]
    fn groups_in_every_spelling() {
        let re = r"^(a)\.(b)";
        assert_eq!(rw(re, r"\2.\1", "a.b.c").as_deref(), Some("b.a.c"));
        assert_eq!(rw(re, r"\g{2}-\g{1}", "a.b").as_deref(), Some("b-a"));
        assert_eq!(rw(re, "${2}x$1", "a.b").as_deref(), Some("bxa"));
        assert_eq!(
            rw(r"^(?P<h>\w+)", "$h.${h}", "web").as_deref(),
            Some("web.web")
        );
        assert_eq!(rw(re, "$$", "a.b").as_deref(), Some("$"));
        assert_eq!(rw(re, "x", "zz").as_deref(), None);
    }

    /// carbon-c-relay's `test/issue10`, and its modifier combinations.
    #[test]
    fn crelay_modifiers() {
        assert_eq!(rw("^(a.*)", r"\_1_", "aBLaH").as_deref(), Some("ablah_"));
        assert_eq!(
            rw("^(b.*)", r"\^1^", "bla.foo").as_deref(),
            Some("BLA.FOO^")
        );
        assert_eq!(
            rw(r"^(b.*)\.x$", r"\^.1_\_1", "b.foo.bar.x").as_deref(),
            Some("B_FOO_BAR_b.foo.bar")
        );
        assert_eq!(rw("^(a.b)", r"\.1", "a.b.c").as_deref(), Some("a_b.c"));
        assert_eq!(rw("^(A.B)", r"\_.1", "A.B").as_deref(), Some("a_b"));
        assert_eq!(rw("^(a)", r"\\1", "a").as_deref(), Some("a"));
        assert_eq!(rw("^(a)", r"\x\1", "a").as_deref(), Some("xa"));
        // No such group: nothing inserted, the rest of the name kept.
        assert_eq!(rw("^B", r"\1", "B_FOO").as_deref(), Some("_FOO"));
    }

    #[test]
    fn bad_templates_are_refused() {
        let re = Regex::new("(a)").unwrap();
        assert!(Replacement::parse("${nope}", &re).is_err());
        assert!(Replacement::parse(r"\g{x}", &re).is_err());
    }
}
