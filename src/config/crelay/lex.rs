//! carbon-c-relay's config tokens (`conffile.l`): words of its identifier
//! characters, with `\ ` for an embedded space; double-quoted strings with
//! `\` escaping the next character; `;`, `=` and `#` comments.
//!
//! c-relay's lexer switches keyword sets by state; here every word is a
//! word and the parser decides where it is a keyword, which accepts the
//! same files.

use super::{Pos, Problem};

/// One token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: Kind,
    /// Where it starts; `pos.len` covers it.
    pub pos: Pos,
}

/// The kinds of token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An unquoted word, as written (a `\ ` keeps its backslash, as in
    /// c-relay, where the regex engine reads it as a space).
    Word(String),
    /// A double-quoted string, escapes resolved.
    Quoted(String),
    /// `;`
    Semi,
    /// `=`
    Eq,
}

impl Token {
    /// The text of a word or string.
    pub fn text(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(s) | Kind::Quoted(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is the unquoted word `kw`.
    pub fn is(&self, kw: &str) -> bool {
        matches!(&self.kind, Kind::Word(w) if w == kw)
    }
}

/// carbon-c-relay's `IDCHR`.
fn ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"[](){}|\\^?*$&%<>:/,._+-".contains(&c)
}

/// Longest quoted string c-relay accepts (its `string_buf`).
const MAX_STRING_BYTES: usize = 1023;

/// Splits `text` (file number `file`) into tokens.
pub fn tokens(text: &str, file: usize) -> Result<Vec<Token>, Problem> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut line, mut line_start) = (0usize, 1usize, 0usize);
    let pos = |start: usize, end: usize, line: usize, line_start: usize| Pos {
        file,
        line,
        col: start - line_start,
        len: (end - start).max(1),
    };
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                i += 1;
                line += 1;
                line_start = i;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b';' | b'=' => {
                out.push(Token {
                    kind: if c == b';' { Kind::Semi } else { Kind::Eq },
                    pos: pos(i, i + 1, line, line_start),
                });
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut s = String::new();
                loop {
                    match b.get(i) {
                        None | Some(b'\n') => {
                            return Err(Problem::new(
                                pos(start, i, line, line_start),
                                "unterminated string",
                            ))
                        }
                        Some(b'"') => break,
                        Some(b'\\') if i + 1 < b.len() && b[i + 1] != b'\n' => {
                            let ch = text[i + 1..].chars().next().expect("not at the end");
                            s.push(ch);
                            i += 1 + ch.len_utf8();
                        }
                        Some(_) => {
                            let ch = text[i..].chars().next().expect("not at the end");
                            s.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                    if s.len() > MAX_STRING_BYTES {
                        return Err(Problem::new(
                            pos(start, i, line, line_start),
                            "string too large",
                        ));
                    }
                }
                i += 1;
                if s.is_empty() {
                    return Err(Problem::new(
                        pos(start, i, line, line_start),
                        "empty string",
                    ));
                }
                out.push(Token {
                    kind: Kind::Quoted(s),
                    pos: pos(start, i, line, line_start),
                });
            }
            c if ident(c) => {
                let start = i;
                loop {
                    while i < b.len() && ident(b[i]) {
                        i += 1;
                    }
                    // `\ ` continues a word when more of it follows.
                    if b[i - 1] == b'\\'
                        && b.get(i) == Some(&b' ')
                        && b.get(i + 1).is_some_and(|&c| ident(c))
                    {
                        i += 1;
                        continue;
                    }
                    break;
                }
                out.push(Token {
                    kind: Kind::Word(text[start..i].to_string()),
                    pos: pos(start, i, line, line_start),
                });
            }
            _ => {
                let ch = text[i..].chars().next().expect("not at the end");
                return Err(Problem::new(
                    pos(i, i + ch.len_utf8(), line, line_start),
                    format!("syntax error, unexpected '{ch}'"),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind> {
        tokens(text, 0)
            .unwrap()
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn words_strings_and_punctuation() {
        assert_eq!(
            kinds("match ^a\\.(b|c)$ send to x; # comment\n\"quoted \\\"s\\\"\"=1"),
            vec![
                Kind::Word("match".into()),
                Kind::Word("^a\\.(b|c)$".into()),
                Kind::Word("send".into()),
                Kind::Word("to".into()),
                Kind::Word("x".into()),
                Kind::Semi,
                Kind::Quoted("quoted \"s\"".into()),
                Kind::Eq,
                Kind::Word("1".into()),
            ]
        );
        assert_eq!(
            kinds("a\\ b c"),
            vec![Kind::Word("a\\ b".into()), Kind::Word("c".into())]
        );
    }

    #[test]
    fn positions_count_columns_from_zero() {
        let t = tokens("cluster a\n\tforward x;", 0).unwrap();
        assert_eq!((t[2].pos.line, t[2].pos.col, t[2].pos.len), (2, 1, 7));
    }

    #[test]
    fn bad_tokens_are_placed() {
        let e = tokens("match \"abc\n", 0).unwrap_err();
        assert_eq!(
            (e.pos.line, e.pos.col, e.message.as_str()),
            (1, 6, "unterminated string")
        );
        assert_eq!(tokens("x \"\";", 0).unwrap_err().message, "empty string");
        assert_eq!(tokens("a ! b", 0).unwrap_err().pos.col, 2);
    }
}
