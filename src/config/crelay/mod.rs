//! carbon-c-relay's config file, read as carbonwatch's TOML.
//!
//! A c-relay file is tokenised ([`lex`]), parsed into statements
//! ([`parse`]) with `include`s expanded, checked and turned into a TOML
//! document ([`emit`]). `carbonwatch convert` prints that document and
//! `run`, `route` and `check-config` load it: what runs is what `convert`
//! shows. Problems are reported as c-relay reports them, with file, line,
//! column (counted from 0, as c-relay counts) and carets under the text.

mod emit;
mod lex;
mod parse;

use std::path::{Path, PathBuf};

pub use emit::quote;

/// Where a token is: file number, 1-based line, 0-based column, length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Index into [`Sources`].
    pub file: usize,
    /// 1-based line.
    pub line: usize,
    /// Column from 0, in bytes.
    pub col: usize,
    /// Bytes the carets cover.
    pub len: usize,
}

/// A problem at a position, before it is rendered against its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl Problem {
    fn new(pos: Pos, message: impl Into<String>) -> Problem {
        Problem {
            pos,
            message: message.into(),
        }
    }
}

/// One problem in a carbon-c-relay file, rendered as c-relay does:
/// `file:line:col: message`, the line, and carets under the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}\n{text}\n{carets}")]
pub struct CrelayIssue {
    /// The file, as given or as included.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// Column from 0.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// The line as written.
    pub text: String,
    /// Spaces (tabs kept) and carets under the offending text.
    pub carets: String,
}

/// Why a carbon-c-relay file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CrelayError {
    /// A file could not be read.
    #[error("cannot read {file}: {source}")]
    Read {
        /// The path.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Problems, each at its place.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<CrelayIssue>),
}

/// Every file read, in the order first read, for rendering problems.
#[derive(Debug, Default)]
pub struct Sources {
    /// `(path as named, text)`.
    pub files: Vec<(String, String)>,
}

impl Sources {
    fn render(&self, p: &Problem) -> CrelayIssue {
        let (file, text) = &self.files[p.pos.file];
        let line = text
            .lines()
            .nth(p.pos.line.saturating_sub(1))
            .unwrap_or_default();
        let lead: String = line
            .bytes()
            .take(p.pos.col)
            .map(|b| if b == b'\t' { '\t' } else { ' ' })
            .collect();
        CrelayIssue {
            file: file.clone(),
            line: p.pos.line,
            col: p.pos.col,
            message: p.message.clone(),
            text: line.to_string(),
            carets: format!("{lead}{}", "^".repeat(p.pos.len.max(1))),
        }
    }

    /// The file and line a position is in, for messages about the TOML.
    pub fn place(&self, pos: Pos) -> (String, usize) {
        (self.files[pos.file].0.clone(), pos.line)
    }
}

/// A c-relay file as TOML.
#[derive(Debug)]
pub struct Converted {
    /// The TOML document.
    pub toml: String,
    /// Where each TOML table came from: `(1-based TOML line, file, line)`.
    pub origins: Vec<(usize, String, usize)>,
    /// Constructs carbonwatch reads but does not act on, one line each.
    pub notes: Vec<String>,
}

impl Converted {
    /// The c-relay file and line that the TOML's `line` came from: the
    /// table that holds it, or the first file for the header.
    pub fn origin_of(&self, line: usize) -> Option<(&str, usize)> {
        self.origins
            .iter()
            .take_while(|(l, _, _)| *l <= line)
            .last()
            .map(|(_, f, l)| (f.as_str(), *l))
    }
}

/// carbon-c-relay's `-p` default: the port of the listeners a file
/// without `listen` gets.
pub const DEFAULT_PORT: u16 = 2003;

/// `convert`'s output: a header naming the source, then the TOML.
pub fn document(path: &Path, c: &Converted) -> String {
    let mut out = format!(
        "# carbonwatch config converted from the carbon-c-relay file {}.\n\
         # Each table names the file and line it came from; NOTE lines mark\n\
         # what carbonwatch reads but does not apply.\n\n",
        path.display()
    );
    out.push_str(&c.toml);
    out
}

/// Includes nested deeper than this are refused, which also ends a file
/// that includes itself.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Reads `path` and its includes, and converts them. `port` is what
/// carbon-c-relay's `-p` gives: the default listener's port.
pub fn convert(path: &Path, port: u16) -> Result<Converted, CrelayError> {
    let mut sources = Sources::default();
    let mut stmts = Vec::new();
    read(path, &mut sources, &mut stmts, 0, None)?;
    finish(sources, stmts, port)
}

/// [`convert`] for text that is not in a file (named `name` in
/// messages); its includes are read from files as usual.
pub fn convert_text(text: &str, name: &str, port: u16) -> Result<Converted, CrelayError> {
    let mut sources = Sources::default();
    let mut stmts = Vec::new();
    read_source(
        name.to_string(),
        text.to_string(),
        &mut sources,
        &mut stmts,
        0,
    )?;
    finish(sources, stmts, port)
}

fn finish(
    sources: Sources,
    stmts: Vec<(parse::Stmt, usize)>,
    port: u16,
) -> Result<Converted, CrelayError> {
    let files: Vec<String> = sources.files.iter().map(|f| f.0.clone()).collect();
    let tagged: Vec<(parse::Stmt, String)> = stmts
        .into_iter()
        .map(|(s, f)| (s, files[f].clone()))
        .collect();
    match emit::emit(&tagged, port) {
        Ok((emitted, notes)) => Ok(Converted {
            toml: emitted.toml,
            origins: emitted
                .origins
                .into_iter()
                .map(|(l, pos)| {
                    let (f, line) = sources.place(pos);
                    (l, f, line)
                })
                .collect(),
            notes,
        }),
        Err(problems) => Err(CrelayError::Invalid(
            problems.iter().map(|p| sources.render(p)).collect(),
        )),
    }
}

fn read(
    path: &Path,
    sources: &mut Sources,
    out: &mut Vec<(parse::Stmt, usize)>,
    depth: usize,
    from: Option<Problem>,
) -> Result<(), CrelayError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| match &from {
        Some(p) => CrelayError::Invalid(vec![sources.render(&Problem::new(
            p.pos,
            format!("unable to read '{name}': {source}"),
        ))]),
        None => CrelayError::Read {
            file: name.clone(),
            source,
        },
    })?;
    read_source(name, text, sources, out, depth)
}

fn read_source(
    name: String,
    text: String,
    sources: &mut Sources,
    out: &mut Vec<(parse::Stmt, usize)>,
    depth: usize,
) -> Result<(), CrelayError> {
    let file = sources.files.len();
    // Where the file ends, as c-relay places "unexpected end of file".
    let end = Pos {
        file,
        line: text.matches('\n').count() + 1,
        col: text.len() - text.rfind('\n').map_or(0, |i| i + 1),
        len: 1,
    };
    sources.files.push((name, text));
    let text = &sources.files[file].1;
    let stmts = lex::tokens(text, file)
        .and_then(|toks| parse::statements(&toks, end))
        .map_err(|p| CrelayError::Invalid(vec![sources.render(&p)]))?;
    for stmt in stmts {
        let parse::Stmt::Include { path: inc } = &stmt else {
            out.push((stmt, file));
            continue;
        };
        if depth + 1 >= MAX_INCLUDE_DEPTH {
            let p = Problem::new(
                inc.pos,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
            );
            return Err(CrelayError::Invalid(vec![sources.render(&p)]));
        }
        let paths = expand(&inc.s)
            .map_err(|m| CrelayError::Invalid(vec![sources.render(&Problem::new(inc.pos, m))]))?;
        for p in paths {
            read(
                &p,
                sources,
                out,
                depth + 1,
                Some(Problem::new(inc.pos, String::new())),
            )?;
        }
    }
    Ok(())
}

/// An include path, globbed as carbon-c-relay does (`*`, `?` and `[...]`,
/// relative to the working directory) when it has glob characters; in
/// this version only the last component may have them.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let globbing = pattern.contains(['*', '?']) || (pattern.contains('[') && pattern.contains(']'));
    if !globbing {
        return Ok(vec![PathBuf::from(pattern)]);
    }
    let path = Path::new(pattern);
    let (dir, leaf) = match (path.parent(), path.file_name().and_then(|f| f.to_str())) {
        (Some(d), Some(l)) => (d, l),
        _ => return Err(format!("pattern '{pattern}' did not match any files")),
    };
    if dir.to_string_lossy().contains(['*', '?', '[']) {
        return Err(format!(
            "pattern '{pattern}': carbonwatch globs only the last part of an include path"
        ));
    }
    let listing = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(listing)
        .map_err(|e| format!("unable to match any files from pattern '{pattern}': {e}"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            // glob(3) skips dot files unless the pattern starts with a dot.
            if name.starts_with('.') && !leaf.starts_with('.') {
                return None;
            }
            fnmatch(leaf.as_bytes(), name.as_bytes()).then(|| dir.join(name))
        })
        .collect();
    if found.is_empty() {
        return Err(format!("pattern '{pattern}' did not match any files"));
    }
    found.sort();
    Ok(found)
}

/// Shell wildcard match of one path component.
fn fnmatch(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| fnmatch(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && fnmatch(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some(b'!' | b'^'));
            if negate {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (first || p[i] != b']') {
                first = false;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
                    hit |= (p[i]..=p[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= p[i] == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal `[`.
                return c == b'[' && fnmatch(&p[1..], &s[1..]);
            }
            hit != negate && fnmatch(&p[i + 1..], &s[1..])
        }
        Some(&c) => s.first() == Some(&c) && fnmatch(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Token soup from the grammar's words: never a panic, and whatever
    /// converts is TOML that loads (the fuzz target `crelay_config` does
    /// the same on arbitrary bytes).
    #[test]
    fn any_statement_soup_is_refused_cleanly_or_loads() {
        let words = [
            "cluster",
            "c",
            "d",
            "forward",
            "any_of",
            "failover",
            "carbon_ch",
            "fnv1a_ch",
            "jump_fnv1a_ch",
            "file",
            "ip",
            "replication",
            "2",
            "0",
            "300",
            "dynamic",
            "useall",
            "10.0.0.1:2003",
            "10.0.0.2",
            "[::1]:5",
            "=",
            "a",
            "proto",
            "udp",
            "tcp",
            "unix",
            "type",
            "linemode",
            "transport",
            "plain",
            "gzip",
            "ssl",
            "match",
            "*",
            "^a\\.(b)",
            "(",
            "validate",
            "else",
            "log",
            "drop",
            "route",
            "using",
            "\\_1",
            "send",
            "to",
            "blackhole",
            "stop",
            "rewrite",
            "into",
            "x.\\^.1",
            "aggregate",
            "every",
            "seconds",
            "expire",
            "after",
            "timestamp",
            "at",
            "start",
            "of",
            "bucket",
            "compute",
            "sum",
            "percentile95",
            "write",
            "statistics",
            "submit",
            "reset",
            "counters",
            "interval",
            "prefix",
            "with",
            "listen",
            "2003",
            ":2004",
            "/tmp/s",
            "\"q s\"",
            ";",
            ";",
            "# c\n",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut loaded = 0;
        for _ in 0..4000 {
            let mut text = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push_str(words[(x % words.len() as u64) as usize]);
                text.push(if x % 7 == 0 { '\n' } else { ' ' });
            }
            if let Ok(c) = convert_text(&text, "soup.conf", 2003) {
                crate::config::Config::parse(&c.toml, Path::new("soup.conf")).unwrap_or_else(|e| {
                    panic!("{text:?} converted to TOML that fails: {e}\n{}", c.toml)
                });
                loaded += 1;
            }
        }
        assert!(loaded > 10, "only {loaded} soups converted");
    }

    #[test]
    fn wildcards_match_like_glob() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"r?[0-9].c[!x]nf", b"ra5.conf"));
        assert!(!fnmatch(b"[!a]*", b"abc"));
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn includes_expand_in_order_and_errors_name_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        write(
            d,
            "conf.d/10-clusters.conf",
            "cluster a forward 127.0.0.1:2003;\n",
        );
        write(d, "conf.d/20-rules.conf", "match * send to a;\n");
        write(d, "conf.d/skip.txt", "garbage !\n");
        let main = write(
            d,
            "relay.conf",
            &format!("include {}/conf.d/*.conf;\n", d.display()),
        );
        let c = convert(&main, 2003).unwrap();
        assert!(c.toml.contains("name = 'a'"), "{}", c.toml);
        assert!(c.toml.contains("match = '*'"));
        let rule_line = c.toml.lines().position(|l| l == "match = '*'").unwrap() + 1;
        let (file, line) = c.origin_of(rule_line).unwrap();
        assert!(
            file.ends_with("20-rules.conf") && line == 1,
            "{file}:{line}"
        );

        write(d, "conf.d/30-bad.conf", "\n  match * send to nope;\n");
        let e = convert(&main, 2003).unwrap_err().to_string();
        assert!(e.contains("30-bad.conf:2:18: unknown cluster"), "{e}");
        assert!(
            e.contains("\n  match * send to nope;\n                  ^^^^"),
            "{e}"
        );

        let looped = d.join("loop.conf");
        write(d, "loop.conf", &format!("include {};\n", looped.display()));
        let e = convert(&looped, 2003).unwrap_err().to_string();
        assert!(e.contains("nest deeper"), "{e}");
    }
}
