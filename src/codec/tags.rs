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
    let mut tags: Vec<(&str, &str)> = Vec::new();
    for segment in segments {
        let (tag, value) = segment.split_once('=').ok_or(Reject::BadTags)?;
        validate(tag, value)?;
        // Later values win, as in carbon's dict; "name" is replaced below.
        match tags.iter_mut().find(|(t, _)| *t == tag) {
            Some(slot) => slot.1 = value,
            None => tags.push((tag, value)),
        }
    }
    let name = metric.trim_start_matches('~');
    if name.is_empty() {
        return Err(Reject::BadTags);
    }
    let mut parts: Vec<String> = tags
        .iter()
        .filter(|(t, _)| *t != "name")
        .map(|(t, v)| format!(";{t}={v}"))
        .collect();
    parts.sort_unstable();
    let mut out = String::with_capacity(path.len());
    out.push_str(name);
    parts.iter().for_each(|p| out.push_str(p));
    Ok(out)
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

    #[test]
    fn rejects_what_carbon_rejects() {
        for input in [
            ";a=1", "m;a", "m;=1", "m;a=", "m;a!=1", "m;a^b=1", "m;a=~x", "~;a=1", "m;a=1;",
        ] {
            assert_eq!(normalize(input), Err(Reject::BadTags), "{input}");
        }
    }
}
