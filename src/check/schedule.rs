//! When a subscription wants to hear about a change: its enabled flag, its
//! ignore flags (applied to each alert's own new state, unlike Seyren, which
//! applied them to the check's state), its days, and its `fromTime`-`toTime`
//! window in the configured time zone. Windows are inclusive at both ends
//! (Seyren's strict bounds lost 00:00 and 23:59) and may wrap past midnight.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::check::model::{Alert, AlertType, Subscription, TimeOfDay};

/// Whether `sub` reports a change to `to` (one without a type, as Seyren
/// stores `{}`, reports nothing).
pub fn wants(sub: &Subscription, to: AlertType) -> bool {
    sub.enabled
        && sub.kind.is_some()
        && !match to {
            AlertType::Ok => sub.ignore_ok,
            AlertType::Warn => sub.ignore_warn,
            AlertType::Error => sub.ignore_error,
            AlertType::Unknown => sub.ignore_unknown,
            AlertType::Exception => sub.ignore_exception,
        }
}

/// The alerts of a change that `sub` reports.
pub fn filter(sub: &Subscription, alerts: &[Alert]) -> Vec<Alert> {
    alerts
        .iter()
        .filter(|a| wants(sub, a.to_type))
        .cloned()
        .collect()
}

fn day_ticked(sub: &Subscription, weekday: jiff::civil::Weekday) -> bool {
    use jiff::civil::Weekday::*;
    match weekday {
        Monday => sub.mo,
        Tuesday => sub.tu,
        Wednesday => sub.we,
        Thursday => sub.th,
        Friday => sub.fr,
        Saturday => sub.sa,
        Sunday => sub.su,
    }
}

/// Whether `now_ms` falls in the subscription's days and hours.
pub fn in_window(sub: &Subscription, now_ms: i64, tz: &TimeZone) -> bool {
    let Ok(ts) = Timestamp::from_millisecond(now_ms) else {
        return false;
    };
    let local = ts.to_zoned(tz.clone());
    let minute = local.hour() as u32 * 60 + local.minute() as u32;
    let from = sub.from_time.map_or(0, TimeOfDay::minutes);
    let to = sub.to_time.map_or(23 * 60 + 59, TimeOfDay::minutes);
    let in_hours = if from <= to {
        minute >= from && minute <= to
    } else {
        minute >= from || minute <= to
    };
    // A window that wraps midnight belongs to the day it opened on.
    let day = if from > to && minute <= to {
        local
            .date()
            .yesterday()
            .map(|d| d.weekday())
            .unwrap_or(local.weekday())
    } else {
        local.weekday()
    };
    in_hours && day_ticked(sub, day)
}

/// The first minute at or after `from_ms` inside the window, within the
/// next eight days; `None` if the subscription has no open minute at all.
pub fn next_open(sub: &Subscription, from_ms: i64, tz: &TimeZone) -> Option<i64> {
    if in_window(sub, from_ms, tz) {
        return Some(from_ms);
    }
    let start = from_ms - from_ms.rem_euclid(60_000) + 60_000;
    (0..8 * 24 * 60)
        .map(|m| start + m * 60_000)
        .find(|&t| in_window(sub, t, tz))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(json: serde_json::Value) -> Subscription {
        let mut base = serde_json::json!({"type": "HTTP", "target": "x", "enabled": true,
            "su": true, "mo": true, "tu": true, "we": true, "th": true, "fr": true, "sa": true});
        base.as_object_mut()
            .unwrap()
            .extend(json.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    fn at(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn default_window_includes_the_ends_of_the_day() {
        let s = sub(serde_json::json!({}));
        assert!(in_window(&s, at("2026-11-30T00:00:00Z"), &TimeZone::UTC));
        assert!(in_window(&s, at("2026-11-30T23:59:30Z"), &TimeZone::UTC));
    }

    #[test]
    fn days_and_hours_in_a_time_zone() {
        // Weekdays 09:00-17:00 in Berlin; 2026-11-30 is a Monday.
        let s = sub(
            serde_json::json!({"su": false, "sa": false, "fromTime": "0900", "toTime": "1700"}),
        );
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        assert!(
            !in_window(&s, at("2026-11-30T07:59:00Z"), &berlin),
            "08:59 local"
        );
        assert!(
            in_window(&s, at("2026-11-30T08:00:00Z"), &berlin),
            "09:00 local"
        );
        assert!(
            in_window(&s, at("2026-11-30T16:00:00Z"), &berlin),
            "17:00 local"
        );
        assert!(
            !in_window(&s, at("2026-11-29T10:00:00Z"), &berlin),
            "Sunday"
        );
        // Sunday noon: the next opening is Monday 09:00 Berlin.
        assert_eq!(
            next_open(&s, at("2026-11-29T12:00:00Z"), &berlin),
            Some(at("2026-11-30T08:00:00Z"))
        );
    }

    #[test]
    fn windows_wrap_midnight_and_belong_to_their_opening_day() {
        // Friday nights only, 22:00-06:00.
        let s = sub(
            serde_json::json!({"su": false, "mo": false, "tu": false, "we": false, "th": false, "sa": false,
            "fromTime": "2200", "toTime": "0600"}),
        );
        let utc = TimeZone::UTC;
        assert!(
            in_window(&s, at("2026-12-04T23:00:00Z"), &utc),
            "Friday 23:00"
        );
        assert!(
            in_window(&s, at("2026-12-05T05:00:00Z"), &utc),
            "Saturday 05:00 is still Friday night"
        );
        assert!(
            !in_window(&s, at("2026-12-05T23:00:00Z"), &utc),
            "Saturday 23:00"
        );
        assert!(
            !in_window(&s, at("2026-12-04T05:00:00Z"), &utc),
            "Friday 05:00 is Thursday night"
        );
    }

    #[test]
    fn ignore_flags_apply_to_each_alert() {
        let s = sub(serde_json::json!({"ignoreOk": true}));
        assert!(!wants(&s, AlertType::Ok));
        assert!(wants(&s, AlertType::Error));
        assert!(
            wants(&s, AlertType::Unknown),
            "no-data changes are always reported"
        );
        let off = sub(serde_json::json!({"enabled": false}));
        assert!(!wants(&off, AlertType::Error));
        let never = sub(
            serde_json::json!({"su": false, "mo": false, "tu": false, "we": false, "th": false, "fr": false, "sa": false}),
        );
        assert_eq!(next_open(&never, 0, &TimeZone::UTC), None);
    }
}
