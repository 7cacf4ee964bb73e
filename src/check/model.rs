//! The check model, with Seyren's field names and JSON shapes (see
//! `seyren.md` §1) plus the extensions Seyren users asked for.
//!
//! Seyren quirks kept for drop-in compatibility: `warn`/`error` are written
//! as JSON strings on a check and as numbers on an alert, timestamps are
//! epoch milliseconds, subscription times are `"HHmm"`, nulls are written,
//! and unknown fields are ignored.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A check or series state, ranked as in Seyren: UNKNOWN < OK < WARN <
/// ERROR < EXCEPTION.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlertType {
    /// No data.
    #[default]
    Unknown,
    /// Within thresholds.
    Ok,
    /// Beyond `warn`.
    Warn,
    /// Beyond `error`.
    Error,
    /// The check itself failed (for example Graphite was unreachable).
    Exception,
}

impl AlertType {
    /// Seyren's `isWorseThan`.
    pub fn is_worse_than(self, other: AlertType) -> bool {
        self > other
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertType::Unknown => "UNKNOWN",
            AlertType::Ok => "OK",
            AlertType::Warn => "WARN",
            AlertType::Error => "ERROR",
            AlertType::Exception => "EXCEPTION",
        }
    }
}

impl fmt::Display for AlertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A threshold as written (kept to echo it back exactly) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The decimal text, e.g. `"100"` or `"0.15"`.
    pub text: String,
    /// Its value.
    pub value: f64,
}

impl Threshold {
    /// Parses a decimal number.
    pub fn parse(text: &str) -> Option<Threshold> {
        let t = text.trim();
        let value = t.parse::<f64>().ok().filter(|v| v.is_finite())?;
        Some(Threshold {
            text: t.to_string(),
            value,
        })
    }

    /// A threshold from a number.
    pub fn from_f64(value: f64) -> Threshold {
        let mut text = format!("{value}");
        if text.ends_with(".0") {
            text.truncate(text.len() - 2);
        }
        Threshold { text, value }
    }
}

impl Serialize for Threshold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Seyren's BigDecimalSerializer writes toPlainString(): a string.
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Jackson's BigDecimal reader takes a number or a numeric string.
        // A visitor rather than an untagged enum, which buffers the value
        // and builds an error for every string it first tries as a number.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Threshold;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Threshold, E> {
                if v.is_finite() {
                    Ok(Threshold::from_f64(v))
                } else {
                    Err(E::custom("threshold must be finite"))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Threshold, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Threshold, E> {
                self.visit_f64(v as f64)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Threshold, E> {
                Threshold::parse(s).ok_or_else(|| E::custom(format!("{s:?} is not a number")))
            }
        }
        d.deserialize_any(V)
    }
}

/// Writes a threshold as a JSON number (Alert's `warn`/`error`).
pub fn threshold_as_number<S: Serializer>(t: &Option<Threshold>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_f64(t.value),
        None => s.serialize_none(),
    }
}

/// A duration written as seconds (a number) or with a unit: `"90s"`,
/// `"5m"`, `"2h"`, `"1d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `"90"`, `"90s"`, `"5m"`, `"2h"`, `"1d"`, `"500ms"`.
    pub fn parse(s: &str) -> Option<Span> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (n, unit) = s.split_at(split);
        let n: u64 = n.parse().ok()?;
        let ms = match unit.trim() {
            "" | "s" | "sec" | "secs" | "seconds" => n.checked_mul(1000)?,
            "ms" => n,
            "m" | "min" | "mins" | "minutes" => n.checked_mul(60_000)?,
            "h" | "hours" => n.checked_mul(3_600_000)?,
            "d" | "days" => n.checked_mul(86_400_000)?,
            _ => return None,
        };
        Some(Span(Duration::from_millis(ms)))
    }

    /// Whether it is zero (the feature is off).
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0.as_millis();
        if ms % 1000 == 0 {
            s.serialize_str(&format!("{}s", ms / 1000))
        } else {
            s.serialize_str(&format!("{ms}ms"))
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("seconds, or a duration like \"90s\", \"5m\" or \"1h\"")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Span, E> {
                Ok(Span(Duration::from_secs(n)))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Span, E> {
                u64::try_from(n)
                    .map(|n| Span(Duration::from_secs(n)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Span, E> {
                Span::parse(t).ok_or_else(|| {
                    E::custom(format!(
                        "{t:?} is not a duration like \"90s\", \"5m\" or \"1h\""
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// How a series' recent values become the one value compared with the
/// thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WindowFn {
    /// The newest value (Seyren's behaviour).
    #[default]
    Last,
    /// The mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The sum, e.g. failed logins in the last 5 minutes.
    Sum,
}

/// `window`: evaluate `fn` over the values of the last `duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The aggregate.
    #[serde(rename = "fn")]
    pub func: WindowFn,
    /// How far back.
    pub duration: Span,
}

/// A Seyren check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Server-assigned id (24 hex digits, like a Mongo ObjectId).
    #[serde(default)]
    pub id: String,
    /// Display name; null in JSON when empty (Seyren stores any subset of
    /// a check's fields).
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        serialize_with = "empty_as_null"
    )]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// For live checks a Graphite glob; for polled checks any render-API
    /// target expression. A check without one is stored, not evaluated.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        serialize_with = "empty_as_null"
    )]
    pub target: String,
    /// Render API `from` for polled checks (null: `-11minutes`).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub from: Option<String>,
    /// Render API `until` for polled checks (null: `-1minutes`).
    #[serde(default, deserialize_with = "empty_as_none")]
    pub until: Option<String>,
    /// Warn threshold; `warn <= error` means higher is worse.
    #[serde(default)]
    pub warn: Option<Threshold>,
    /// Error threshold.
    #[serde(default)]
    pub error: Option<Threshold>,
    /// Disabled checks are not evaluated.
    #[serde(default)]
    pub enabled: bool,
    /// Evaluated inline on the stream (true) or polled from Graphite.
    #[serde(default)]
    pub live: bool,
    /// No data counts as OK instead of UNKNOWN.
    #[serde(default)]
    pub allow_no_data: bool,
    /// The worst state over the check's series.
    #[serde(default)]
    pub state: AlertType,
    /// Epoch milliseconds of the last evaluation.
    #[serde(default)]
    pub last_check: Option<i64>,
    /// Who is told about changes.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Extension: a new state must hold this long before it is committed,
    /// for breaches and recoveries alike.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<Span>,
    /// Extension: aggregate values over a time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
    /// Extension: a series silent this long turns UNKNOWN (and notifies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_after: Option<Span>,
    /// Extension: remind subscribers this often while a series is not OK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat_every: Option<Span>,
    /// Extension: how often a polled check is run (default `[graphite]
    /// refresh_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Span>,
    /// Extension: maintenance; no notification before this epoch-ms time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted_until: Option<i64>,
    /// Extension, reported by the engine and never read from a client:
    /// why this check may have missed an alert. Boxed: it is rare, and
    /// every check pays for its place.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<Box<Degraded>>,
    /// Extension, set by the engine and never read from a client: why the
    /// check is not evaluated (no target, a target that is not a glob,
    /// thresholds missing), as Seyren would store it without complaint.
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Box<str>>,
}

/// What alerting on one check has had to leave out since start-up, so a
/// missed alert is never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Degraded {
    /// Points of new series not tracked because the check already had
    /// `max_series_per_check` series.
    pub series_refused: u64,
    /// Points the data path dropped because the engine was behind (any
    /// live check may have matched them).
    pub points_dropped: u64,
    /// When points were last dropped (epoch ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_drop_ms: Option<i64>,
}

impl Degraded {
    /// Nothing left out.
    pub fn is_clear(&self) -> bool {
        self.series_refused == 0 && self.points_dropped == 0
    }
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn empty_as_null<S: Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(v)
    }
}

impl Check {
    /// Whether the two define the same check: equal but for what the
    /// engine sets (state, last evaluation, degradation). Every field is
    /// named, so a new one cannot be forgotten here.
    pub fn same_definition(&self, other: &Check) -> bool {
        let Check {
            id,
            name,
            description,
            target,
            from,
            until,
            warn,
            error,
            enabled,
            live,
            allow_no_data,
            state: _,
            last_check: _,
            subscriptions,
            for_,
            window,
            no_data_after,
            repeat_every,
            interval,
            muted_until,
            degraded: _,
            problem: _,
        } = self;
        *id == other.id
            && *name == other.name
            && *description == other.description
            && *target == other.target
            && *from == other.from
            && *until == other.until
            && *warn == other.warn
            && *error == other.error
            && *enabled == other.enabled
            && *live == other.live
            && *allow_no_data == other.allow_no_data
            && *subscriptions == other.subscriptions
            && *for_ == other.for_
            && *window == other.window
            && *no_data_after == other.no_data_after
            && *repeat_every == other.repeat_every
            && *interval == other.interval
            && *muted_until == other.muted_until
    }

    /// Whether the engine evaluates it: enabled, and without a problem.
    pub fn evaluated(&self) -> bool {
        self.enabled && self.problem.is_none()
    }

    /// Whether high values are bad (`warn <= error`, Seyren's rule).
    pub fn high_is_worse(&self) -> bool {
        match (&self.warn, &self.error) {
            (Some(w), Some(e)) => w.value <= e.value,
            _ => true,
        }
    }
}

/// The delivery channels: Seyren's fifteen, Alertmanager, and the chat
/// tools Seyren never had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SubscriptionType {
    /// SMTP mail to `target`.
    Email,
    /// PagerDuty; `target` is the service (integration) key.
    Pagerduty,
    /// HipChat's v2 room notification API; `target` lists room ids.
    Hipchat,
    /// Hubot's `/seyren/alert` script; `target` lists rooms.
    Hubot,
    /// Flowdock's chat API; `target` is a flow token.
    Flowdock,
    /// Seyren's JSON payload POSTed to `target`.
    Http,
    /// irccat's TCP line protocol; `target` lists channels.
    Irccat,
    /// Pushover's messages API; `target` is a user key.
    Pushover,
    /// One log line at info level.
    Logger,
    /// An SNMPv2c trap.
    Snmp,
    /// Slack: an incoming webhook, or `chat.postMessage` with a token.
    Slack,
    /// Twilio's SMS API; `target` is a phone number.
    Twilio,
    /// VictorOps' REST endpoint; `target` is a routing key.
    Victorops,
    /// OpsGenie's alert API; `target` is an API key.
    Opsgenie,
    /// BigPanda's alerts API; `target` is an app key.
    Bigpanda,
    /// Prometheus Alertmanager's v2 alerts API.
    Alertmanager,
    /// Telegram's Bot API `sendMessage`; `target` is a chat id.
    Telegram,
    /// A Microsoft Teams incoming webhook (MessageCard).
    Msteams,
    /// A Discord webhook.
    Discord,
    /// A Mattermost incoming webhook.
    Mattermost,
}

impl SubscriptionType {
    /// Every type, in Seyren's order then the extensions.
    pub const ALL: [SubscriptionType; 20] = [
        SubscriptionType::Email,
        SubscriptionType::Pagerduty,
        SubscriptionType::Hipchat,
        SubscriptionType::Hubot,
        SubscriptionType::Flowdock,
        SubscriptionType::Http,
        SubscriptionType::Irccat,
        SubscriptionType::Pushover,
        SubscriptionType::Logger,
        SubscriptionType::Snmp,
        SubscriptionType::Slack,
        SubscriptionType::Twilio,
        SubscriptionType::Victorops,
        SubscriptionType::Opsgenie,
        SubscriptionType::Bigpanda,
        SubscriptionType::Alertmanager,
        SubscriptionType::Telegram,
        SubscriptionType::Msteams,
        SubscriptionType::Discord,
        SubscriptionType::Mattermost,
    ];

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionType::Email => "EMAIL",
            SubscriptionType::Pagerduty => "PAGERDUTY",
            SubscriptionType::Hipchat => "HIPCHAT",
            SubscriptionType::Hubot => "HUBOT",
            SubscriptionType::Flowdock => "FLOWDOCK",
            SubscriptionType::Http => "HTTP",
            SubscriptionType::Irccat => "IRCCAT",
            SubscriptionType::Pushover => "PUSHOVER",
            SubscriptionType::Logger => "LOGGER",
            SubscriptionType::Snmp => "SNMP",
            SubscriptionType::Slack => "SLACK",
            SubscriptionType::Twilio => "TWILIO",
            SubscriptionType::Victorops => "VICTOROPS",
            SubscriptionType::Opsgenie => "OPSGENIE",
            SubscriptionType::Bigpanda => "BIGPANDA",
            SubscriptionType::Alertmanager => "ALERTMANAGER",
            SubscriptionType::Telegram => "TELEGRAM",
            SubscriptionType::Msteams => "MSTEAMS",
            SubscriptionType::Discord => "DISCORD",
            SubscriptionType::Mattermost => "MATTERMOST",
        }
    }
}

/// A local time of day, written `"HHmm"` as in Seyren.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    /// 0-23.
    pub hour: u8,
    /// 0-59.
    pub minute: u8,
}

impl TimeOfDay {
    /// Parses `"HHmm"`.
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (hour, minute) = (s[..2].parse().ok()?, s[2..].parse().ok()?);
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }

    /// Minutes since midnight.
    pub fn minutes(self) -> u32 {
        u32::from(self.hour) * 60 + u32::from(self.minute)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}{:02}", self.hour, self.minute))
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeOfDay::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a time of day written HHmm"))
        })
    }
}

/// Seyren's reading of `fromTime`/`toTime`: anything not four characters
/// long is null; four that are not a time are an error.
fn time_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeOfDay>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(s) if s.chars().count() == 4 => TimeOfDay::parse(&s).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a time of day written HHmm"))
        }),
        _ => Ok(None),
    }
}

/// A Seyren subscription.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// Server-assigned id.
    #[serde(default)]
    pub id: String,
    /// Address, URL or key, by type; null in JSON when empty.
    #[serde(
        default,
        deserialize_with = "null_as_empty",
        serialize_with = "empty_as_null"
    )]
    pub target: String,
    /// Channel; null for a subscription created as `{}`, which is stored
    /// and never notified.
    #[serde(rename = "type", default)]
    pub kind: Option<SubscriptionType>,
    /// Sunday.
    #[serde(default)]
    pub su: bool,
    /// Monday.
    #[serde(default)]
    pub mo: bool,
    /// Tuesday.
    #[serde(default)]
    pub tu: bool,
    /// Wednesday.
    #[serde(default)]
    pub we: bool,
    /// Thursday.
    #[serde(default)]
    pub th: bool,
    /// Friday.
    #[serde(default)]
    pub fr: bool,
    /// Saturday.
    #[serde(default)]
    pub sa: bool,
    /// Skip changes to WARN.
    #[serde(default)]
    pub ignore_warn: bool,
    /// Skip changes to ERROR.
    #[serde(default)]
    pub ignore_error: bool,
    /// Skip changes to OK.
    #[serde(default)]
    pub ignore_ok: bool,
    /// Extension: no notification for changes to UNKNOWN (no data).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_unknown: bool,
    /// Extension: no notification for changes to EXCEPTION (Graphite
    /// could not be read for a polled check).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ignore_exception: bool,
    /// Window start, local time (inclusive); null is midnight.
    #[serde(default, deserialize_with = "time_or_null")]
    pub from_time: Option<TimeOfDay>,
    /// Window end, local time (inclusive); before `from_time` it wraps
    /// past midnight; null is 23:59.
    #[serde(default, deserialize_with = "time_or_null")]
    pub to_time: Option<TimeOfDay>,
    /// Disabled subscriptions are never notified.
    #[serde(default)]
    pub enabled: bool,
}

impl Subscription {
    /// The type's name, `null` when it has none.
    pub fn kind_str(&self) -> &'static str {
        self.kind.map_or("null", SubscriptionType::as_str)
    }
}

/// One series' state change, as Seyren's Alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Server-assigned id.
    pub id: String,
    /// The check.
    pub check_id: String,
    /// The value that caused the change (null for a no-data change).
    pub value: Option<f64>,
    /// The series name.
    pub target: String,
    /// The check's warn threshold at the time, as a number.
    #[serde(serialize_with = "threshold_as_number")]
    pub warn: Option<Threshold>,
    /// The check's error threshold at the time, as a number.
    #[serde(serialize_with = "threshold_as_number")]
    pub error: Option<Threshold>,
    /// State before.
    pub from_type: AlertType,
    /// State after.
    pub to_type: AlertType,
    /// The data time of the change: the timestamp of the point that
    /// completed it, epoch milliseconds.
    pub timestamp: i64,
    /// When carbonwatch detected the change (wall clock, epoch
    /// milliseconds); absent in alerts imported from Seyren.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_timestamp: Option<i64>,
}

/// A fresh 24-hex-digit id, shaped like Seyren's Mongo ObjectIds.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let secs = crate::unix_now() as u32;
    let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "{secs:08x}{:08x}{:08x}",
        pid.wrapping_mul(2654435761),
        seq as u32
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seyren_check_json_round_trips() {
        // The example from Seyren's API.md (plus allowNoData).
        let json = r#"{"id":"540571f4f562fe8c51873ad1","name":"Test","description":"test","target":"server1.filecount.whisper.files",
 "from":null,"until":null,"warn":"100","error":"1000","enabled":true,"live":false,"allowNoData":false,
 "state":"WARN","lastCheck":1414425107940,
 "subscriptions":[{"id":"54481212873059b3ba063d4e","target":"xxxx","type":"SLACK","su":true,"mo":true,"tu":true,
   "we":true,"th":true,"fr":true,"sa":true,"ignoreWarn":false,"ignoreError":false,"ignoreOk":false,
   "fromTime":"0000","toTime":"2359","enabled":true}], "totalMetric": 3, "previewImage": "x"}"#;
        let c: Check = serde_json::from_str(json).unwrap();
        assert_eq!(c.warn.as_ref().unwrap().value, 100.0);
        assert_eq!(c.state, AlertType::Warn);
        let out = serde_json::to_value(&c).unwrap();
        assert_eq!(out["warn"], "100");
        assert_eq!(out["lastCheck"], 1414425107940i64);
        assert_eq!(out["subscriptions"][0]["fromTime"], "0000");
        assert_eq!(out["from"], serde_json::Value::Null);
        assert!(
            out.get("for").is_none(),
            "extensions are omitted when unset"
        );
    }

    #[test]
    fn thresholds_accept_numbers_and_strings() {
        let c: Check = serde_json::from_str(r#"{"warn": 0.15, "error": "0.20"}"#).unwrap();
        assert_eq!((c.warn.unwrap().value, c.error.unwrap().value), (0.15, 0.2));
        assert!(serde_json::from_str::<Check>(r#"{"warn": "abc"}"#).is_err());
    }

    #[test]
    fn alert_thresholds_are_numbers() {
        let a = Alert {
            id: "a".into(),
            check_id: "c".into(),
            value: Some(12.0),
            target: "t".into(),
            warn: Threshold::parse("5"),
            error: Threshold::parse("10"),
            from_type: AlertType::Ok,
            to_type: AlertType::Error,
            timestamp: 1,
            detected_timestamp: None,
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(
            (v["warn"].as_f64(), v["error"].as_f64(), v["value"].as_f64()),
            (Some(5.0), Some(10.0), Some(12.0))
        );
        assert_eq!(v["fromType"], "OK");
    }

    #[test]
    fn extensions_parse() {
        let c: Check = serde_json::from_str(r#"{"for": "5m", "window": {"fn": "sum", "duration": 300}, "noDataAfter": "90s", "repeatEvery": "1h"}"#).unwrap();
        assert_eq!(c.for_, Some(Span(Duration::from_secs(300))));
        assert_eq!(c.window.unwrap().func, WindowFn::Sum);
        assert_eq!(c.no_data_after.unwrap().0, Duration::from_secs(90));
        assert!(Span::parse("5x").is_none());
        assert_eq!(TimeOfDay::parse("2359").unwrap().minutes(), 1439);
        assert!(TimeOfDay::parse("2460").is_none());
    }
}
