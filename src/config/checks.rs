//! `[[check]]` tables to checks, each with the id its name gives it.

use toml::Spanned;

use crate::check::Check;
use crate::config::Validator;

/// A `[[check]]` table as read: where it starts in the file, and the check
/// or why it is not one.
#[derive(Debug, Clone)]
pub(super) struct ReadCheck {
    pub at: usize,
    pub check: Result<Check, String>,
}

impl ReadCheck {
    pub(super) fn from_table(t: Spanned<toml::Table>, offset: usize) -> ReadCheck {
        let at = t.span().start + offset;
        ReadCheck {
            at,
            check: read(t.into_inner()),
        }
    }
}

/// One table to a check. In the file, `enabled` and `live` default to
/// true, and so do a subscription's days and `enabled`, as Seyren's UI
/// defaults them.
fn read(mut table: toml::Table) -> Result<Check, String> {
    if let Some(sub) = table.remove("subscription") {
        table.insert("subscriptions".into(), sub);
    }
    for k in ["enabled", "live"] {
        table.entry(k).or_insert(toml::Value::Boolean(true));
    }
    if let Some(toml::Value::Array(subs)) = table.get_mut("subscriptions") {
        for s in subs.iter_mut().filter_map(toml::Value::as_table_mut) {
            for k in ["enabled", "su", "mo", "tu", "we", "th", "fr", "sa"] {
                s.entry(k).or_insert(toml::Value::Boolean(true));
            }
        }
    }
    let mut check: Check = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    // A stable id from the name, so state survives restarts and
    // reloads; a table may also set its own.
    if check.id.is_empty() {
        check.id = crate::alert::config_check_id(&check.name);
    }
    // Subscriptions too, so the API can address them (to test or change
    // one) and a restart does not see them as changed.
    for (j, s) in check.subscriptions.iter_mut().enumerate() {
        if s.id.is_empty() {
            s.id = crate::alert::config_check_id(&format!("{}\u{0}{j}", check.id));
        }
    }
    if let Some(j) = check.subscriptions.iter().position(|s| s.kind.is_none()) {
        // The API keeps Seyren's typeless `{}`; a file means something.
        return Err(format!("subscription[{j}] needs a type"));
    }
    crate::alert::validate(&check).map_err(|e| e.to_string())?;
    Ok(check)
}

impl Validator<'_> {
    pub(super) fn checks(&mut self, read: Vec<ReadCheck>) -> Vec<Check> {
        let mut out: Vec<Check> = Vec::with_capacity(read.len());
        let mut names = std::collections::HashSet::with_capacity(read.len());
        for (i, r) in read.into_iter().enumerate() {
            let key = format!("check[{i}]");
            match r.check {
                Err(message) => self.issue_at_offset(r.at, key, message),
                Ok(check) if !names.insert(check.name.clone()) => {
                    let message = format!("check {:?} is defined twice", check.name);
                    self.issue_at_offset(r.at, key, message);
                }
                Ok(check) => out.push(check),
            }
        }
        out
    }
}
