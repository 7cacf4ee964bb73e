//! Finding the line of a key in config text when the parser gave no span:
//! unknown keys (reported by path) and range checks on plain numbers.

use std::collections::HashMap;

/// `cluster.2.type` as `cluster[2].type`, the way other issues name keys.
pub fn display_path(path: &str) -> String {
    let mut out = String::new();
    for seg in path.split('.').filter(|s| *s != "?") {
        if seg.parse::<usize>().is_ok() {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(seg);
        }
    }
    out
}

/// The 1-based line where the key at `path` (serde_ignored's dotted form,
/// `relay.queue_max_lines` or `cluster.2.type`) is written; the line of
/// its table when the key is not written out; 0 when neither is found.
pub fn line_of_path(text: &str, path: &str) -> usize {
    let segs: Vec<&str> = path.split('.').filter(|s| *s != "?").collect();
    let Some((key, table)) = segs.split_last() else {
        return 0;
    };
    let named: Vec<&str> = table
        .iter()
        .copied()
        .filter(|s| s.parse::<usize>().is_err())
        .collect();
    let header = named.join(".");
    let index: Option<usize> = table.last().and_then(|s| s.parse().ok());
    let whole = if header.is_empty() {
        key.to_string()
    } else {
        format!("{header}.{key}")
    };
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut inside = header.is_empty();
    let mut fallback = 0;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim();
            let seen = counts.entry(name.to_string()).or_default();
            let this = *seen;
            *seen += 1;
            if name == whole {
                return n + 1;
            }
            inside = name == header && index.is_none_or(|i| i == this);
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            let name = name.trim();
            if name == whole {
                return n + 1;
            }
            inside = name == header;
        } else if inside && key_of(t) == Some(key) {
            return n + 1;
        } else {
            continue;
        }
        if inside && fallback == 0 {
            fallback = n + 1;
        }
    }
    fallback
}

/// The key a `key = value` line sets.
fn key_of(line: &str) -> Option<&str> {
    let (k, _) = line.split_once('=')?;
    let k = k.trim().trim_matches('"');
    (!k.is_empty() && !k.starts_with('#')).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a = 1\n[relay]\nqueue_max_lines = 5\n\n[[cluster]]\nname = \"x\"\n[[cluster]]\nname = \"y\"\ntype = \"z\"\n[notify]\n";

    #[test]
    fn keys_are_found_in_their_table() {
        assert_eq!(line_of_path(TEXT, "a"), 1);
        assert_eq!(line_of_path(TEXT, "relay.queue_max_lines"), 3);
        assert_eq!(line_of_path(TEXT, "cluster.1.type"), 9);
        assert_eq!(line_of_path(TEXT, "cluster.0.name"), 6);
        // Not written: the table's header.
        assert_eq!(line_of_path(TEXT, "notify.timezone"), 10);
        assert_eq!(line_of_path(TEXT, "cluster.0.type"), 5);
        assert_eq!(line_of_path(TEXT, "smtp.host"), 0);
        assert_eq!(display_path("cluster.1.type"), "cluster[1].type");
    }
}
