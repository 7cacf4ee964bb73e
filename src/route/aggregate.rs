//! What an aggregation rule says, as routing sees it: which names it takes
//! (the rule's matcher), its buckets, what it computes and where its
//! output goes. The buckets themselves live in the relay
//! (`relay::aggregate`), which owns state; this module only describes.
//!
//! The semantics are carbon-c-relay's (`aggregator.c`): buckets aligned to
//! the interval, a point placed by its own timestamp, the output named by
//! a template with the rule's regex groups, stamped at the start, middle
//! or end of its bucket (the end by default), and sent either to the
//! rule's clusters or back into routing at the first rule.

use regex::Regex;

use crate::route::Replacement;

/// Where in its bucket an aggregate is stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketTime {
    /// The bucket's first second (carbon-aggregator's choice).
    Start,
    /// Half an interval in.
    Middle,
    /// The second after the bucket (carbon-c-relay's default).
    #[default]
    End,
}

/// What one `compute` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Sum of the values.
    Sum,
    /// Number of values.
    Count,
    /// Largest value.
    Max,
    /// Smallest value.
    Min,
    /// Mean.
    Average,
    /// Nearest-rank percentile, 1 to 99 (`median` is 50).
    Percentile(u8),
    /// carbon-aggregator's `p50` .. `p999`: the quantile at this many
    /// thousandths, interpolated between the two nearest values.
    Quantile(u16),
    /// Population variance.
    Variance,
    /// Population standard deviation.
    Stddev,
}

impl Function {
    /// Reads a function as carbon-c-relay's lexer does, aliases
    /// (`summary`, `cnt`, `maximum`, `minimum`, `avg`) included.
    pub fn parse(s: &str) -> Option<Function> {
        Some(match s {
            "sum" | "summary" => Function::Sum,
            "count" | "cnt" => Function::Count,
            "max" | "maximum" => Function::Max,
            "min" | "minimum" => Function::Min,
            "average" | "avg" => Function::Average,
            "median" => Function::Percentile(50),
            "variance" => Function::Variance,
            "stddev" => Function::Stddev,
            "p50" => Function::Quantile(500),
            "p75" => Function::Quantile(750),
            "p80" => Function::Quantile(800),
            "p90" => Function::Quantile(900),
            "p95" => Function::Quantile(950),
            "p99" => Function::Quantile(990),
            "p999" => Function::Quantile(999),
            _ => {
                let n: u8 = s.strip_prefix("percentile")?.parse().ok()?;
                if !(1..=99).contains(&n) {
                    return None;
                }
                Function::Percentile(n)
            }
        })
    }

    /// Whether a bucket must keep every value, not only running sums.
    pub fn needs_values(self) -> bool {
        matches!(
            self,
            Function::Percentile(_) | Function::Quantile(_) | Function::Variance | Function::Stddev
        )
    }

    /// The name `parse` reads back.
    pub fn name(self) -> String {
        match self {
            Function::Sum => "sum".into(),
            Function::Count => "count".into(),
            Function::Max => "max".into(),
            Function::Min => "min".into(),
            Function::Average => "average".into(),
            Function::Percentile(50) => "median".into(),
            Function::Percentile(n) => format!("percentile{n}"),
            Function::Quantile(999) => "p999".into(),
            Function::Quantile(n) => format!("p{}", n / 10),
            Function::Variance => "variance".into(),
            Function::Stddev => "stddev".into(),
        }
    }
}

/// One `compute FUNCTION write to TEMPLATE`.
#[derive(Debug, Clone)]
pub struct Compute {
    /// What it computes.
    pub function: Function,
    /// The output name: the template applied to the input name with the
    /// rule's regex, as a `rewrite` is; written as it is when the rule has
    /// no regex groups (carbon-c-relay then has no match to substitute).
    pub write_to: Replacement,
}

/// An aggregation rule's buckets, computes and output.
#[derive(Debug, Clone)]
pub struct Aggregation {
    /// Bucket width, seconds.
    pub every_secs: u32,
    /// How long a bucket takes points after it starts, seconds; more than
    /// `every_secs`.
    pub expire_secs: u32,
    /// Where an output point is stamped.
    pub timestamp: BucketTime,
    /// The outputs, in order.
    pub computes: Vec<Compute>,
    /// Clusters the output goes to; empty: back into routing at the first
    /// rule, as carbon-c-relay feeds its aggregator's output to its
    /// dispatcher.
    pub send_to: Vec<usize>,
    /// Whether aggregates that re-enter routing meet the aggregation rules
    /// again (carbon-c-relay's way); carbon-aggregator's rules send them
    /// to the routes only.
    pub reaggregate: bool,
    /// Everything above as text, with the rule's matcher: a reload keeps
    /// the buckets of a rule whose identity it finds again.
    pub identity: String,
}

impl Aggregation {
    /// The output name of `compute` for `name`, matched by `regex` (the
    /// rule's, when it has groups).
    pub fn output_name(compute: &Compute, regex: Option<&Regex>, name: &str) -> Option<String> {
        let caps = match regex {
            Some(re) if re.captures_len() > 1 => Some(re.captures(name)?),
            _ => None,
        };
        let mut out = String::new();
        Self::write_output(compute, caps.as_ref(), name, &mut out);
        Some(out)
    }

    /// [`Aggregation::write_output`] from reusable capture locations.
    pub fn write_output_at(
        compute: &Compute,
        locs: Option<&regex::CaptureLocations>,
        name: &str,
        out: &mut String,
    ) {
        match locs {
            Some(locs) => compute.write_to.expand_locations(locs, name, out),
            None => {
                out.clear();
                out.push_str(&compute.write_to.source);
            }
        }
    }

    /// The output name of `compute` for `name` into `out`, with the rule's
    /// regex groups `caps` (`None` when it has none).
    pub fn write_output(
        compute: &Compute,
        caps: Option<&regex::Captures<'_>>,
        name: &str,
        out: &mut String,
    ) {
        match caps {
            Some(caps) => compute.write_to.expand(caps, name, out),
            None => {
                // carbon-c-relay writes the template as it is, escapes and all.
                out.clear();
                out.push_str(&compute.write_to.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_read_as_crelay_spells_them() {
        assert_eq!(Function::parse("summary"), Some(Function::Sum));
        assert_eq!(Function::parse("cnt"), Some(Function::Count));
        assert_eq!(Function::parse("median"), Some(Function::Percentile(50)));
        assert_eq!(
            Function::parse("percentile95"),
            Some(Function::Percentile(95))
        );
        assert_eq!(Function::parse("percentile100"), None);
        assert_eq!(Function::parse("percentile0"), None);
        assert_eq!(Function::parse("mean"), None);
        for f in [
            "sum",
            "count",
            "max",
            "min",
            "average",
            "median",
            "percentile9",
            "variance",
            "stddev",
        ] {
            assert_eq!(Function::parse(f).unwrap().name(), f);
        }
    }

    #[test]
    fn output_names_substitute_groups_only_when_there_are_some() {
        let with = Regex::new(r"^sys\.([^.]+)\.cpu").unwrap();
        let c = Compute {
            function: Function::Sum,
            write_to: Replacement::parse(r"agg.\1.cpu", &with).unwrap(),
        };
        assert_eq!(
            Aggregation::output_name(&c, Some(&with), "sys.web1.cpu").as_deref(),
            Some("agg.web1.cpu")
        );
        let without = Regex::new(r"^foo\.bar").unwrap();
        let c = Compute {
            function: Function::Sum,
            write_to: Replacement::parse("aggregate.foo.bar", &without).unwrap(),
        };
        assert_eq!(
            Aggregation::output_name(&c, Some(&without), "foo.bar.baz").as_deref(),
            Some("aggregate.foo.bar")
        );
    }
}
