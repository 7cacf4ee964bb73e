//! Man pages and shell completions, generated from what they describe so
//! they cannot drift: `carbonwatch(1)` and one page per subcommand from
//! the command-line definition (clap_mangen), and `carbonwatch.toml(5)`
//! from README's "Config reference" and "Alerting" sections, turned from
//! Markdown into roff here.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The README, built in: the configuration page is made from it.
const README: &str = include_str!("../README.md");

/// README sections the configuration page is made of.
const CONFIG_SECTIONS: [&str; 2] = ["## Config reference", "## Alerting"];

/// Writes `carbonwatch.1`, `carbonwatch-<sub>.1` for every subcommand
/// (nested ones joined by `-`) and `carbonwatch.toml.5` into `dir`.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    let mut page = |name: String, bytes: Vec<u8>| -> anyhow::Result<()> {
        let path = dir.join(&name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written.push(name);
        Ok(())
    };
    let mut cmd = cmd.name("carbonwatch");
    cmd.build();
    let mut stack = vec![(String::from("carbonwatch"), cmd)];
    while let Some((name, cmd)) = stack.pop() {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone().name(name.clone()))
            .section("1")
            .manual("carbonwatch manual")
            .render(&mut out)?;
        page(format!("{name}.1"), out)?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            stack.push((format!("{name}-{}", sub.get_name()), sub.clone()));
        }
    }
    page("carbonwatch.toml.5".into(), config_page().into_bytes())?;
    written.sort();
    Ok(written)
}

/// Prints the completion script for `shell` to stdout.
pub fn completions(cmd: &mut clap::Command, shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, cmd, "carbonwatch", &mut out);
    out.flush()?;
    Ok(())
}

/// The README sections named by [`CONFIG_SECTIONS`], each up to the next
/// `## ` heading.
fn config_markdown() -> String {
    let mut out = String::new();
    for start in CONFIG_SECTIONS {
        let Some(at) = README.find(&format!("\n{start}\n")) else {
            continue;
        };
        let body = &README[at + 1..];
        let end = body[start.len()..]
            .find("\n## ")
            .map_or(body.len(), |e| e + start.len() + 1);
        out.push_str(&body[..end]);
        out.push('\n');
    }
    out
}

/// roff for inline Markdown: `code` and **bold** in bold, links as their
/// text, roff's own escapes.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut chars = s.chars().peekable();
    let mut code = false;
    let mut bold = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                out.push_str(if code { "\\fR" } else { "\\fB" });
                code = !code;
            }
            '*' if !code && chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(if bold { "\\fR" } else { "\\fB" });
                bold = !bold;
            }
            '[' if !code => {
                // [text](target): keep the text.
                let rest: String = chars.clone().collect();
                if let Some(close) = rest.find("](") {
                    if let Some(end) = rest[close..].find(')') {
                        out.push_str(&inline(&rest[..close]));
                        for _ in 0..close + end + 1 {
                            chars.next();
                        }
                        continue;
                    }
                }
                out.push('[');
            }
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            _ => out.push(c),
        }
    }
    if code || bold {
        out.push_str("\\fR");
    }
    out
}

/// A text line that roff must not read as a request.
fn text_line(s: &str) -> String {
    let t = inline(s.trim());
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// The cells of a Markdown table row.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    // A `|` inside code is written `\|` in the README.
    inner
        .replace("\\|", "\u{0}")
        .split('|')
        .map(|c| c.trim().replace('\u{0}', "|"))
        .collect()
}

/// `carbonwatch.toml(5)`.
pub fn config_page() -> String {
    let md = config_markdown();
    let mut out = String::from(
        ".TH CARBONWATCH.TOML 5 \"\" \"carbonwatch\" \"carbonwatch manual\"\n\
         .SH NAME\ncarbonwatch.toml \\- carbonwatch configuration file\n\
         .SH DESCRIPTION\n\
         carbonwatch reads one TOML file, given to \\fBcarbonwatch run \\-\\-config\\fR. \
         The sections below are README's configuration reference and its alerting guide.\n",
    );
    let mut lines = md.lines().peekable();
    let mut header: Option<Vec<String>> = None;
    while let Some(line) = lines.next() {
        let t = line.trim_end();
        if let Some(h) = t.strip_prefix("## ") {
            out.push_str(&format!(".SH \"{}\"\n", inline(h).to_uppercase()));
        } else if let Some(h) = t.strip_prefix("### ").or_else(|| t.strip_prefix("#### ")) {
            out.push_str(&format!(".SS \"{}\"\n", inline(h)));
        } else if t.starts_with("```") {
            out.push_str(".PP\n.RS 4\n.nf\n");
            for code in lines.by_ref() {
                if code.trim_start().starts_with("```") {
                    break;
                }
                let esc = code.replace('\\', "\\e").replace('-', "\\-");
                if esc.starts_with('.') || esc.starts_with('\'') {
                    out.push_str("\\&");
                }
                out.push_str(&esc);
                out.push('\n');
            }
            out.push_str(".fi\n.RE\n");
        } else if t.starts_with('|') {
            let row = cells(t);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            match &header {
                None => header = Some(row),
                Some(h) => {
                    // One tagged paragraph per row: the first cell is the
                    // tag, the others follow under their column names.
                    out.push_str(&format!(".TP\n{}\n", text_line(&row[0])));
                    let rest: Vec<String> = h
                        .iter()
                        .zip(&row)
                        .skip(1)
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect();
                    out.push_str(&text_line(&rest.join("; ")));
                    out.push('\n');
                }
            }
            if lines
                .peek()
                .is_none_or(|l| !l.trim_start().starts_with('|'))
            {
                header = None;
            }
        } else if let Some(item) = t.trim_start().strip_prefix("- ") {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", text_line(item)));
        } else if t.trim().is_empty() {
            out.push_str(".PP\n");
        } else {
            out.push_str(&text_line(t));
            out.push('\n');
        }
    }
    out.push_str(".SH \"SEE ALSO\"\ncarbonwatch(1)\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_roff() {
        assert_eq!(inline("`a-b` and **c**"), "\\fBa\\-b\\fR and \\fBc\\fR");
        assert_eq!(inline("see [Reload](#reload) now"), "see Reload now");
        assert_eq!(text_line(".hidden"), "\\&.hidden");
        assert_eq!(cells("| `a` | `x \\| y` | z |"), ["`a`", "`x | y`", "z"]);
    }

    #[test]
    fn the_config_page_documents_every_section_of_the_reference() {
        let page = config_page();
        for key in ["[listen]", "[admin]", "[relay]", "[[cluster]]", "[[route]]"] {
            assert!(page.contains(&format!(".SS \"\\fB{key}\\fR")), "{key}");
        }
        for key in ["max_line_bytes", "IRCCAT_PORT", "spool_dir"] {
            assert!(
                page.contains(&format!("\\fB{}\\fR", key.replace('-', "\\-"))),
                "{key}"
            );
        }
    }
}
