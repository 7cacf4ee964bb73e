//! What a check must be before the engine takes it.

use crate::alert::CheckError;
use crate::check::Check;

/// Checks a check before it is stored.
pub fn validate(check: &Check) -> Result<(), CheckError> {
    let bad = |m: String| Err(CheckError::Invalid(m));
    if check.name.trim().is_empty() {
        return bad("name is required".into());
    }
    if check.target.trim().is_empty() {
        return bad("target is required".into());
    }
    if check.enabled && (check.warn.is_none() || check.error.is_none()) {
        return bad("an enabled check needs both warn and error".into());
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
            return bad(format!(
                "a live check's target must be a Graphite glob or seriesByTag(...), not an expression: {:?}",
                check.target
            ));
        }
        // Exactly what the engine's index will take.
        crate::route::index::PatternIndex::check(&check.target)
            .map_err(|e| CheckError::Invalid(e.to_string()))?;
    }
    Ok(())
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
