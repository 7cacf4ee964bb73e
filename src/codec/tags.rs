//! Graphite 1.1 tags, `name;tag=value;...`, validated and normalised exactly
//! as carbon's `TaggedSeries.parse_carbon` and `TaggedSeries.format` do.
//!
//! ```text
//! some.metric;b=2;a=1  ->  some.metric;a=1;b=2   (sorted by the whole ";k=v")
//! m;a=1;a=2            ->  m;a=2                 (a repeated tag keeps its last value)
//! m;name=x;z=1         ->  m;z=1                 (the name tag is the metric itself)
//! ~m;a=1               ->  m;a=1                 (leading '~' removed)
//! ```

use crate::codec::Reject;

/// Validates a tagged name and returns carbon's normalised form.
///
/// Call only for names that contain `;`.
pub fn normalize(path: &str) -> Result<String, Reject> {
    let mut segments = path.split(';');
    let metric = segments.next().unwrap_or_default();
    if metric.is_empty() {
        return Err(Reject::BadTags);
    }
    // (position, tag, value). Sorting and deduplicating keeps this
    // O(n log n) in the number of tags: a line may carry thousands.
    let mut tags: Vec<(usize, &str, &str)> = Vec::new();
    for (i, segment) in segments.enumerate() {
        let (tag, value) = segment.split_once('=').ok_or(Reject::BadTags)?;
        validate(tag, value)?;
        tags.push((i, tag, value));
    }
    let name = metric.trim_start_matches('~');
    if name.is_empty() {
        return Err(Reject::BadTags);
    }
    // Later values win, as in carbon's dict: the latest of each tag comes
    // first in its run and is the one kept. "name" is the metric itself.
    tags.sort_unstable_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)));
    tags.dedup_by(|later, kept| later.1 == kept.1);
    tags.retain(|(_, t, _)| *t != "name");
    // Carbon sorts the formatted ";tag=value" strings, which is not the
    // order of the tags alone (";a-b=1" sorts before ";a=2").
    tags.sort_unstable_by(|a, b| formatted(a.1, a.2).cmp(formatted(b.1, b.2)));
    let mut out = String::with_capacity(path.len());
    out.push_str(name);
    for (_, t, v) in &tags {
        out.push(';');
        out.push_str(t);
        out.push('=');
        out.push_str(v);
    }
    Ok(out)
}

/// The bytes of `tag=value`, compared without formatting them.
fn formatted<'a>(tag: &'a str, value: &'a str) -> impl Iterator<Item = u8> + 'a {
    tag.bytes()
        .chain(std::iter::once(b'='))
        .chain(value.bytes())
}

/// Carbon's `validateTagAndValue`.
fn validate(tag: &str, value: &str) -> Result<(), Reject> {
    let bad_tag = tag.is_empty() || tag.contains([';', '!', '^', '=']);
    let bad_value = value.is_empty() || value.contains(';') || value.starts_with('~');
    if bad_tag || bad_value {
        Err(Reject::BadTags)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use crate::codec::Reject;

    /// Rows verified against Debian graphite-carbon 1.1.7 (see the reference).
    #[test]
    fn matches_carbon() {
        for (input, want) in [
            ("some.metric;b=2;a=1", "some.metric;a=1;b=2"),
            ("m;a=1;a=2", "m;a=2"),
            ("m;name=x;z=1", "m;z=1"),
            ("~m;a=1", "m;a=1"),
            ("m;a=b=c", "m;a=b=c"),
            ("m;a-b=1;a=2", "m;a-b=1;a=2"),
        ] {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
        }
    }

    /// A line of 2,500 tags (a repeated one among them) normalises like a
    /// short one: the last value wins and the output is sorted and
    /// unique. Its cost is measured in `cargo bench --bench codec`
    /// ("normalize 2,500 tags").
    #[test]
    fn many_tags_are_linearithmic() {
        let mut line = String::from("m");
        for i in (0..2500).rev() {
            line.push_str(&format!(";t{i}=v{i}"));
        }
        line.push_str(";t7=last");
        let got = normalize(&line).unwrap();
        assert!(got.contains(";t7=last") && !got.contains(";t7=v7"));
        assert_eq!(got.matches(';').count(), 2500);
        let mut parts: Vec<&str> = got.split(';').skip(1).collect();
        let sorted = {
            let mut p = parts.clone();
            p.sort_unstable();
            p
        };
        assert_eq!(parts, sorted);
        parts.dedup();
        assert_eq!(parts.len(), 2500);
    }

    #[test]
    fn rejects_what_carbon_rejects() {
        for input in [
            ";a=1", "m;a", "m;=1", "m;a=", "m;a!=1", "m;a^b=1", "m;a=~x", "~;a=1", "m;a=1;",
        ] {
            assert_eq!(normalize(input), Err(Reject::BadTags), "{input}");
        }
    }
}
