//! What a check must be before the engine takes it.

use crate::alert::CheckError;
use crate::check::Check;

/// Checks a check defined in the config file: a name, and nothing that
/// keeps it from being evaluated ([`problem`]).
pub fn validate(check: &Check) -> Result<(), CheckError> {
    if check.name.trim().is_empty() {
        return Err(CheckError::Invalid("name is required".into()));
    }
    if check.target.trim().is_empty() {
        return Err(CheckError::Invalid("target is required".into()));
    }
    let thresholds = || check.enabled.then(|| missing_thresholds(check)).flatten();
    target_problem(check)
        .or_else(thresholds)
        .map_or(Ok(()), |p| Err(CheckError::Invalid(p)))
}

/// What keeps a check from being evaluated, if anything. Seyren stores any
/// subset of a check's fields, so the API stores such a check too and
/// reports this beside it (EXCEPTION, when the check is enabled and has a
/// target) rather than refusing it.
pub fn problem(check: &Check) -> Option<String> {
    target_problem(check).or_else(|| missing_thresholds(check))
}

fn missing_thresholds(check: &Check) -> Option<String> {
    (check.warn.is_none() || check.error.is_none())
        .then(|| "an enabled check needs both warn and error".into())
}

fn target_problem(check: &Check) -> Option<String> {
    if check.target.trim().is_empty() {
        return Some("no target: the check is stored but not evaluated".into());
    }
    if check.live {
        // Function calls are what make a target an expression; commas and
        // braces are ordinary glob syntax.
        let tagged = crate::route::tags::is_tag_query(&check.target);
        if !tagged
            && check
                .target
                .contains(|c: char| c == '(' || c == ')' || c.is_whitespace())
        {
            return Some(format!(
                "a live check's target must be a Graphite glob or seriesByTag(...), not an expression: {:?}",
                check.target
            ));
        }
        // Exactly what the engine's index will take.
        if let Err(e) = crate::route::index::PatternIndex::check(&check.target) {
            return Some(e.to_string());
        }
    }
    None
}

/// A stable id for a check defined in the config file, from its name.
pub fn config_check_id(name: &str) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(name.as_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(24);
    for b in &d[..12] {
        id.push(HEX[usize::from(b >> 4)] as char);
        id.push(HEX[usize::from(b & 15)] as char);
    }
    id
}
