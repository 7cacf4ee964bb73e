//! `carbonwatch import seyren`: reads every check, with its subscriptions,
//! from a running Seyren's REST API and creates it in a running
//! carbonwatch through the same API, keeping ids. A check already there
//! with the same definition is left alone, so a second run changes
//! nothing; what cannot be carried over is reported, never dropped
//! silently.

use std::time::Duration;

use anyhow::{bail, Context};
use carbonwatch::check::SubscriptionType;
use serde_json::Value;

/// Where to read, where to write, and whether to write at all.
pub struct ImportOptions {
    /// Seyren's API base, e.g. `http://seyren:8080/seyren/api`.
    pub from: String,
    /// carbonwatch's API base, e.g. `http://127.0.0.1:8080/api`.
    pub to: String,
    /// Bearer token for carbonwatch's API (`CARBONWATCH_API_TOKEN`).
    pub token: Option<String>,
    /// Report what would be done and change nothing.
    pub dry_run: bool,
}

/// What an import did, or would do with `--dry-run`.
#[derive(Debug, Default)]
pub struct Report {
    /// Ids and names of checks created.
    pub created: Vec<(String, String)>,
    /// Checks already here with the same definition.
    pub unchanged: usize,
    /// What was not carried over, one line each.
    pub problems: Vec<String>,
    /// What was carried over but behaves differently here.
    pub notes: Vec<String>,
}

/// Seyren's check fields whose equality makes a check "the same".
const DEFINITION: [&str; 10] = [
    "name",
    "description",
    "target",
    "from",
    "until",
    "warn",
    "error",
    "enabled",
    "live",
    "allowNoData",
];

/// Thresholds compare as numbers: Seyren writes `"1.0"` where carbonwatch
/// writes `"1"`.
fn same_field(key: &str, a: &Value, b: &Value) -> bool {
    let number = |v: &Value| match v {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    if key == "warn" || key == "error" {
        return number(a) == number(b);
    }
    let empty = |v: &Value| v.is_null() || v.as_str() == Some("");
    a == b || (empty(a) && empty(b))
}

fn same_definition(a: &Value, b: &Value) -> bool {
    let null = Value::Null;
    let ids = |v: &Value| -> Vec<String> {
        let mut ids: Vec<String> = v["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["id"].as_str().map(String::from))
            .collect();
        ids.sort();
        ids
    };
    DEFINITION
        .iter()
        .all(|k| same_field(k, a.get(*k).unwrap_or(&null), b.get(*k).unwrap_or(&null)))
        && ids(a) == ids(b)
}

/// Imports every check of `opts.from` into `opts.to`.
pub async fn import_seyren(opts: &ImportOptions) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let from = opts.from.trim_end_matches('/');
    let to = opts.to.trim_end_matches('/');
    let with_token = |r: reqwest::RequestBuilder| match &opts.token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let listing: Value = http
        .get(format!("{from}/checks"))
        .send()
        .await
        .with_context(|| format!("reading {from}/checks"))?
        .error_for_status()
        .with_context(|| format!("reading {from}/checks"))?
        .json()
        .await
        .context("Seyren's answer is not JSON")?;
    let Some(checks) = listing["values"].as_array() else {
        bail!("{from}/checks did not answer Seyren's {{\"values\": [...]}}");
    };
    // What is here already, read once: a dry run then reports what a run
    // would.
    let here: Value = with_token(http.get(format!("{to}/checks")))
        .send()
        .await
        .with_context(|| format!("reading {to}/checks"))?
        .error_for_status()
        .with_context(|| format!("reading {to}/checks"))?
        .json()
        .await
        .context("carbonwatch's answer is not JSON")?;
    let here = here["values"].as_array().cloned().unwrap_or_default();
    let by_id: std::collections::HashMap<&str, &Value> = here
        .iter()
        .filter_map(|c| Some((c["id"].as_str()?, c)))
        .collect();
    let by_name: std::collections::HashMap<&str, &str> = here
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["id"].as_str()?)))
        .collect();
    let mut report = Report::default();
    for source in checks {
        let mut check = source.clone();
        let id = check["id"].as_str().unwrap_or_default().to_string();
        let name = check["name"].as_str().unwrap_or_default().to_string();
        let label = format!("check {id} ({name:?})");
        // Subscriptions of a type carbonwatch does not have (a fork's)
        // are left behind, and said so.
        if let Some(subs) = check["subscriptions"].as_array_mut() {
            subs.retain(|s| {
                let kind = s["type"].as_str();
                let known = match kind {
                    Some(k) => SubscriptionType::ALL.iter().any(|t| t.as_str() == k),
                    None => true,
                };
                if !known {
                    report.problems.push(format!(
                        "{label}: subscription {} of type {} is not carried over",
                        s["id"],
                        kind.unwrap_or_default()
                    ));
                }
                known
            });
        }
        if check["live"] == Value::Bool(true) {
            report.notes.push(format!(
                "{label}: live; Seyren matched live points by the check's name, carbonwatch matches its target {}",
                check["target"]
            ));
        }
        if let Some(here) = by_id.get(id.as_str()) {
            if same_definition(here, &check) {
                report.unchanged += 1;
            } else {
                report.problems.push(format!(
                    "{label}: exists here with another definition; left as it is"
                ));
            }
            continue;
        }
        if let Some(other) = by_name.get(name.as_str()).filter(|_| !name.is_empty()) {
            report.problems.push(format!(
                "{label}: a check named {name:?} exists here already, with id {other}"
            ));
            continue;
        }
        if opts.dry_run {
            report.created.push((id, name));
            continue;
        }
        let resp = with_token(http.post(format!("{to}/checks")))
            .json(&check)
            .send()
            .await
            .with_context(|| format!("creating {label}"))?;
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_string();
        if status.as_u16() == 201 && location.ends_with(&format!("/checks/{id}")) {
            report.created.push((id, name));
        } else if status.as_u16() == 201 {
            report
                .problems
                .push(format!("{label}: created with another id, at {location}"));
        } else {
            let body = resp.text().await.unwrap_or_default();
            report
                .problems
                .push(format!("{label}: refused with {status}: {body}"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn thresholds_compare_as_numbers_and_empty_as_null() {
        let a = json!({"name": "x", "warn": "1.0", "error": "2", "description": "", "subscriptions": [{"id": "b"}, {"id": "a"}]});
        let b = json!({"name": "x", "warn": "1", "error": 2.0, "description": null, "subscriptions": [{"id": "a"}, {"id": "b"}]});
        assert!(same_definition(&a, &b));
        let c = json!({"name": "x", "warn": "1.5", "error": 2.0});
        assert!(!same_definition(&a, &c));
    }
}
