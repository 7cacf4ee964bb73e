//! Python carbon-aggregator's `aggregation-rules.conf`, converted to
//! `[[aggregate]]` tables (`carbonwatch convert --from carbon-aggregator`).
//!
//! ```text
//! <env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests
//! ```
//!
//! The input pattern becomes carbon's own regex (`rules.py`,
//! `build_regex`): `<field>` one node, `<<field>>` one or more, a `*` node
//! any one node, `*` inside a node any run of its characters, anchored at
//! both ends; the output's `<field>`s become `${field}`. A rule's
//! intervals are kept `max_aggregation_intervals` frequencies, as
//! carbon-aggregator keeps its buffers (`MAX_AGGREGATION_INTERVALS`), and
//! stamped at their start; the aggregates go through the routes only, and
//! the inputs on to the later rules (`FORWARD_ALL`).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::crelay::quote;
use crate::route::aggregate::Function;

/// carbon-aggregator's default `MAX_AGGREGATION_INTERVALS`.
pub const DEFAULT_MAX_AGGREGATION_INTERVALS: u64 = 5;

/// A line carbon-aggregator would refuse too.
#[derive(Debug, thiserror::Error)]
pub enum AggRulesError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        source: std::io::Error,
    },
    /// A rule that does not parse.
    #[error("{file}:{line}: {message}\n{text}")]
    Rule {
        /// The file.
        file: String,
        /// Its line, from 1.
        line: usize,
        /// The line as written.
        text: String,
        /// What is wrong.
        message: String,
    },
}

/// The file at `path` as `[[aggregate]]` tables.
pub fn convert(path: &Path, max_intervals: u64) -> Result<String, AggRulesError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| AggRulesError::Read {
        file: file.clone(),
        source,
    })?;
    convert_text(&text, &file, max_intervals)
}

/// [`convert`] for text named `file` in messages.
pub fn convert_text(text: &str, file: &str, max_intervals: u64) -> Result<String, AggRulesError> {
    let mut out = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |message: String| AggRulesError::Rule {
            file: file.to_string(),
            line: i + 1,
            text: raw.to_string(),
            message,
        };
        let rule = Rule::parse(line).map_err(fail)?;
        if rule.output.contains("<<") {
            // carbon-aggregator fails on every metric such a rule matches.
            return Err(fail(
                "the output names a field as <field>, also one the input takes as <<field>>".into(),
            ));
        }
        let regex = rule.regex();
        let compiled = match crate::route::glob::bounded_regex(&regex) {
            Ok(re) => re,
            Err(e) => return Err(fail(format!("input pattern {:?}: {e}", rule.input))),
        };
        // Every <field> of the output must be one the input captures.
        if let Err(e) = crate::route::Replacement::parse(&rule.template(), &compiled) {
            return Err(fail(format!("output {:?}: {e}", rule.output)));
        }
        let function = Function::parse(rule.method)
            .filter(|_| METHODS.contains(&rule.method))
            .ok_or_else(|| fail(format!("Invalid aggregation method '{}'", rule.method)))?;
        let expire = rule.frequency * max_intervals.max(2);
        let _ = writeln!(out, "\n# {file}:{}: {line}", i + 1);
        let _ = writeln!(out, "[[aggregate]]");
        let _ = writeln!(out, "regex = {}", quote(&regex));
        let _ = writeln!(out, "every_secs = {}", rule.frequency);
        let _ = writeln!(out, "expire_secs = {expire}");
        let _ = writeln!(out, "timestamp = 'start'");
        let _ = writeln!(
            out,
            "compute = [{{ function = {}, write_to = {} }}]",
            quote(&function.name()),
            quote(&rule.template())
        );
        let _ = writeln!(out, "reaggregate = false");
    }
    Ok(out)
}

/// carbon-aggregator's `AGGREGATION_METHODS`.
const METHODS: &[&str] = &[
    "sum", "avg", "min", "max", "p50", "p75", "p80", "p90", "p95", "p99", "p999", "count",
];

struct Rule<'a> {
    output: &'a str,
    frequency: u64,
    method: &'a str,
    input: &'a str,
}

impl<'a> Rule<'a> {
    /// `parse_definition`: `output (frequency) = method input`.
    fn parse(line: &'a str) -> Result<Rule<'a>, String> {
        let (left, right) = line
            .split_once('=')
            .ok_or("expected 'output (frequency) = method input'")?;
        let left: Vec<&str> = left.split_whitespace().collect();
        let right: Vec<&str> = right.split_whitespace().collect();
        let ([output, frequency], [method, input]) = (&left[..], &right[..]) else {
            return Err("expected 'output (frequency) = method input'".into());
        };
        let f = frequency.trim_start_matches('(').trim_end_matches(')');
        let frequency = f
            .parse::<u64>()
            .ok()
            .filter(|f| (1..=86_400).contains(f))
            .ok_or_else(|| format!("frequency {frequency}: a number of seconds from 1 to 86400"))?;
        Ok(Rule {
            output,
            frequency,
            method,
            input,
        })
    }

    /// `build_regex`, with `^` for Python's `re.match`.
    fn regex(&self) -> String {
        let parts: Vec<String> = self
            .input
            .split('.')
            .map(|part| {
                if let (Some(i), Some(j)) = (part.find("<<"), part.find(">>")) {
                    format!(
                        "{}(?P<{}>.+?){}",
                        &part[..i],
                        &part[i + 2..j],
                        &part[j + 2..]
                    )
                } else if let (Some(i), Some(j)) = (part.find('<'), part.find('>')) {
                    if j > i {
                        format!(
                            "{}(?P<{}>[^.]+?){}",
                            &part[..i],
                            &part[i + 1..j],
                            &part[j + 1..]
                        )
                    } else {
                        part.replace('*', "[^.]*")
                    }
                } else if part == "*" {
                    "[^.]+".to_string()
                } else {
                    part.replace('*', "[^.]*")
                }
            })
            .collect();
        format!("^{}$", parts.join("\\."))
    }

    /// `build_template`: `<field>` to `${field}`.
    fn template(&self) -> String {
        self.output
            .replace('$', "$$")
            .replace('<', "${")
            .replace('>', "}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_carbons_regexes_and_templates() {
        let r = Rule::parse(
            "<env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests",
        )
        .unwrap();
        assert_eq!(
            r.regex(),
            r"^(?P<env>[^.]+?)\.applications\.(?P<app>[^.]+?)\.[^.]+\.requests$"
        );
        assert_eq!(r.template(), "${env}.applications.${app}.all.requests");
        let r = Rule::parse("x.<<rest>>.total (10) = count srv-*.<<rest>>").unwrap();
        assert_eq!(r.regex(), r"^srv-[^.]*\.(?P<rest>.+?)$");
        assert_eq!(r.frequency, 10);
    }

    #[test]
    fn converted_rules_load_and_bad_ones_name_their_line() {
        let text = "# comment\n\n<a>.sum (60) = sum <a>.*.x\n<a>.p (60) = p95 <a>.*.y\n";
        let toml = convert_text(text, "rules.conf", 5).unwrap();
        assert!(toml.contains("expire_secs = 300"), "{toml}");
        let full = format!("[alerting]\nstore = ''\n{toml}");
        let c = crate::config::Config::parse(&full, Path::new("t.toml")).unwrap();
        assert_eq!(c.router.aggregates.len(), 2);
        assert!(!c.router.aggregates[0].reaggregate);
        for (bad, want) in [
            (
                "a (60) = median b\n",
                "3: Invalid aggregation method 'median'",
            ),
            ("a (x) = sum b\n", "3: frequency (x)"),
            ("a 60 sum b\n", "3: expected"),
            ("a (60) = sum b c\n", "3: expected"),
            (
                "x.<<m>> (60) = sum y.<<m>>\n",
                "3: the output names a field as <field>",
            ),
        ] {
            let e = convert_text(&format!("#\n\n{bad}"), "r.conf", 5)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("r.conf:{want}")), "{bad}: {e}");
        }
    }

    /// Lines made of the grammar's pieces in any order: each is refused
    /// cleanly or converts to tables that load.
    #[test]
    fn token_soup_converts_to_what_loads_or_is_refused() {
        const TOKENS: &[&str] = &[
            "<a>",
            "<<b>>",
            "*",
            ".",
            "x",
            "(60)",
            "(0)",
            "(x)",
            "=",
            "sum",
            "p999",
            "avg",
            "median",
            " ",
            "<",
            ">",
            "$",
            "\\",
            "'",
            "\"",
            "(",
            "[",
            "?P",
            "a.<a>.<a>",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let piece = |next: &mut dyn FnMut() -> u64| -> String {
            let n = 1 + next() % 4;
            (0..n)
                .map(|_| TOKENS[(next() % TOKENS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join("")
        };
        let mut converted = 0;
        for i in 0..3000 {
            // Mostly rule-shaped lines, with pieces anywhere.
            let line = if i % 4 == 0 {
                piece(&mut next)
            } else {
                let (out, input) = (piece(&mut next), piece(&mut next));
                let f = ["(60)", "(1)", "(0)", "60"][(next() % 4) as usize];
                let m = ["sum", "p999", "count", "median"][(next() % 4) as usize];
                format!("{out} {f} = {m} {input}")
            };
            if let Ok(tables) = convert_text(&line, "soup.conf", 5) {
                converted += usize::from(!tables.is_empty());
                let full = format!("[alerting]\nstore = ''\n{tables}");
                if let Err(e) = crate::config::Config::parse(&full, Path::new("t.toml")) {
                    panic!("{line:?} converted to tables that fail: {e}\n{tables}");
                }
            }
        }
        assert!(converted > 100, "only {converted} lines converted");
    }
}
