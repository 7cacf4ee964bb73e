//! Finds the `[[check]]` tables in config text, so that 100,000 of them
//! are parsed one at a time rather than into one document tree: the tree
//! took about 270 MB at its peak and most of the heap start-up left
//! behind. The split is only trusted on text it is sure of; anything else
//! is parsed whole, as before.

use std::ops::Range;

/// What a line that starts with `[` is.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// `[[check]]`: a check table starts.
    Check,
    /// `[[check.subscription]]` and the like: part of the check above.
    InCheck,
    /// Another table header: whatever was open ends.
    Other,
    /// Not a header (an array's continuation line).
    NotHeader,
    /// A header this split does not read (quoted keys, `[check]`).
    Unsure,
}

fn classify(line: &str) -> Line {
    let t = line.trim();
    let (t, double) = if let Some(rest) = t.strip_prefix("[[") {
        (rest, true)
    } else if let Some(rest) = t.strip_prefix('[') {
        (rest, false)
    } else {
        return Line::NotHeader;
    };
    let close = if double { "]]" } else { "]" };
    let Some(end) = t.find(close) else {
        return Line::NotHeader;
    };
    let (key, rest) = (&t[..end], t[end + close.len()..].trim_start());
    if !(rest.is_empty() || rest.starts_with('#')) {
        return Line::NotHeader;
    }
    if key.contains(['"', '\'', '[', ']']) {
        return Line::Unsure;
    }
    let mut parts = key.split('.').map(str::trim);
    let first = parts.next().unwrap_or_default();
    let more = parts.next().is_some();
    match (first == "check", more, double) {
        (true, false, true) => Line::Check,
        (true, true, _) => Line::InCheck,
        (true, false, false) => Line::Unsure,
        (false, _, _) => Line::Other,
    }
}

/// The byte ranges of the `[[check]]` tables in `text`, each with its
/// `[[check.subscription]]`s, in file order; `None` when the text has a
/// shape the split is not sure of (multi-line strings, quoted or unusual
/// headers), and the caller parses the whole document. A split that cuts
/// through a value makes a piece that does not parse, and the caller then
/// falls back too.
pub(super) fn check_tables(text: &str) -> Option<Vec<Range<usize>>> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    let mut out = Vec::new();
    let mut open: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        if !line.trim_start().starts_with('[') {
            continue;
        }
        match classify(line) {
            Line::Check => {
                if let Some(s) = open.replace(start) {
                    out.push(s..start);
                }
            }
            Line::InCheck if open.is_some() => {}
            Line::InCheck | Line::Unsure => return None,
            Line::Other => {
                if let Some(s) = open.take() {
                    out.push(s..start);
                }
            }
            Line::NotHeader => {}
        }
    }
    if let Some(s) = open {
        out.push(s..text.len());
    }
    Some(out)
}

/// `text` with the `pieces` blanked out, newlines kept: the rest of the
/// document parses on its own with every offset and line unchanged.
pub(super) fn without(text: &str, pieces: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for p in pieces {
        out.push_str(&text[at..p.start]);
        out.extend(
            text[p.clone()]
                .bytes()
                .map(|b| if b == b'\n' { '\n' } else { ' ' }),
        );
        at = p.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_as_toml_writes_them() {
        assert_eq!(classify("[[check]]\n"), Line::Check);
        assert_eq!(classify("  [[ check ]]  # a comment\n"), Line::Check);
        assert_eq!(classify("[[check.subscription]]"), Line::InCheck);
        assert_eq!(classify("[check.subscription.x]"), Line::InCheck);
        assert_eq!(classify("[alerting]"), Line::Other);
        assert_eq!(classify("[[cluster]]"), Line::Other);
        assert_eq!(classify("[[\"check\"]]"), Line::Unsure);
        assert_eq!(classify("[check]"), Line::Unsure);
        assert_eq!(classify("[1, 2],"), Line::NotHeader);
        assert_eq!(classify("[\"a\", \"b\"]  ,"), Line::NotHeader);
    }

    #[test]
    fn checks_are_cut_at_the_next_table() {
        let text = "[alerting]\nstore = \"x\"\n[[check]]\nname = \"a\"\n[[check.subscription]]\ntype = \"EMAIL\"\n[[check]]\nname = \"b\"\n[notify]\nx = 1\n";
        let pieces = check_tables(text).unwrap();
        let got: Vec<&str> = pieces.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(
            got,
            [
                "[[check]]\nname = \"a\"\n[[check.subscription]]\ntype = \"EMAIL\"\n",
                "[[check]]\nname = \"b\"\n"
            ]
        );
        let rest = without(text, &pieces);
        assert_eq!(rest.len(), text.len());
        assert_eq!(rest.lines().count(), text.lines().count());
        assert!(rest.contains("[notify]") && !rest.contains("name"));
    }

    #[test]
    fn unsure_text_is_left_whole() {
        assert!(check_tables("[[check]]\ndescription = \"\"\"\n[[check]]\n\"\"\"\n").is_none());
        assert!(check_tables("[[check.subscription]]\n").is_none());
        assert!(check_tables("[[\"check\"]]\nname = \"a\"\n").is_none());
    }
}
