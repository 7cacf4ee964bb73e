//! `[[check]]` tables to checks, each with the id its name gives it.

use toml::Spanned;

use crate::check::Check;
use crate::config::Validator;

impl Validator<'_> {
    pub(super) fn checks(&mut self, raw: &[Spanned<toml::Table>]) -> Vec<Check> {
        let mut out: Vec<Check> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, t) in raw.iter().enumerate() {
            let key = format!("check[{i}]");
            let mut table = t.get_ref().clone();
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
            let mut check: Check = match toml::Value::Table(table).try_into() {
                Ok(c) => c,
                Err(e) => {
                    self.issue(t, key, e.message().to_string());
                    continue;
                }
            };
            // A stable id from the name, so state survives restarts and
            // reloads; a table may also set its own.
            if check.id.is_empty() {
                check.id = crate::alert::config_check_id(&check.name);
            }
            if let Err(e) = crate::alert::validate(&check) {
                self.issue(t, key, e.to_string());
                continue;
            }
            if !names.insert(check.name.clone()) {
                self.issue(t, key, format!("check {:?} is defined twice", check.name));
                continue;
            }
            out.push(check);
        }
        out
    }
}
