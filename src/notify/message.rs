//! The words of a notification, shared by the chat channels Seyren never
//! had (Telegram, Teams, Discord, Mattermost): which check, which series,
//! from which state to which, the value, the thresholds and a link.

use crate::check::model::{Alert, AlertType, Threshold};
use crate::check::NewNotification;

/// `"ERROR: ssh brute force"`.
pub fn title(n: &NewNotification) -> String {
    format!("{}: {}", n.check.state, display_name(n))
}

/// The check's name, or its id when it has none.
pub fn display_name(n: &NewNotification) -> &str {
    if n.check.name.is_empty() {
        &n.check.id
    } else {
        &n.check.name
    }
}

/// A value as Seyren prints it, or `no data`.
pub fn value(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".into(), |v| v.to_string())
}

fn threshold(t: &Option<Threshold>) -> &str {
    t.as_ref().map_or("none", |t| t.text.as_str())
}

/// `"WARN → ERROR, value 12 (warn 5, error 10)"`: one series' change.
pub fn change(a: &Alert) -> String {
    format!(
        "{} → {}, value {} (warn {}, error {})",
        a.from_type,
        a.to_type,
        value(a.value),
        threshold(&a.warn),
        threshold(&a.error)
    )
}

/// `"auth.web1.failed: WARN → ERROR, value 12 (warn 5, error 10)"`.
pub fn alert_line(a: &Alert) -> String {
    format!("{}: {}", a.target, change(a))
}

/// A subscription target that must be a webhook's URL, or why not.
pub fn webhook_url<'a>(
    n: &'a NewNotification,
    what: &'static str,
) -> Result<&'a str, crate::notify::NotifyError> {
    let url = n.subscription.target.trim();
    if crate::notify::request::is_url(url) {
        Ok(url)
    } else {
        Err(crate::notify::NotifyError::NotConfigured(what))
    }
}

/// Every alert's line, one per line; at most `max` of them, then how many
/// more (chat messages have size limits).
pub fn alert_lines(n: &NewNotification, max: usize) -> String {
    let mut lines: Vec<String> = n.alerts.iter().take(max).map(alert_line).collect();
    if n.alerts.len() > max {
        lines.push(format!("… and {} more", n.alerts.len() - max));
    }
    lines.join("\n")
}

/// A colour per state, as `0xRRGGBB`: red, amber, green, grey.
pub fn colour(state: AlertType) -> u32 {
    match state {
        AlertType::Error | AlertType::Exception => 0xd9_3025,
        AlertType::Warn => 0xf2_a900,
        AlertType::Ok => 0x2e_a043,
        AlertType::Unknown => 0x88_8888,
    }
}

/// Epoch milliseconds as ISO-8601 in UTC with milliseconds, the way Joda's
/// `DateTime.toString()` writes an instant in UTC.
pub fn iso_millis(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(
        |_| ms.to_string(),
        |t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

/// A check's alerts as Seyren's Jackson writes them with snake_case names
/// and ISO dates (VictorOps' and PagerDuty's details).
pub fn alert_snake_case(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id,
        "check_id": a.check_id,
        "value": a.value,
        "target": a.target,
        "warn": a.warn.as_ref().map(|t| t.value),
        "error": a.error.as_ref().map(|t| t.value),
        "from_type": a.from_type,
        "to_type": a.to_type,
        "timestamp": iso_millis(a.timestamp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_joda_writes_utc() {
        assert_eq!(iso_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_millis(0), "1970-01-01T00:00:00.000Z");
    }
}
