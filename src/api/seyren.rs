//! Seyren's REST API (`seyren.md` §5): every endpoint, status code and
//! JSON shape, so existing clients keep working, with its bugs fixed where
//! the reference lists them (the path id selects what PUT changes; bad
//! input is a 4xx with a message, never a 500). Extensions: paging on
//! `/checks`, and `/checks/{id}/series` and `/checks/{id}/points` for the
//! UI.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::alert::CheckError;
use crate::api::{ApiContext, ApiError};
use crate::check::model::{new_id, Alert, AlertType, Check, Subscription};
use crate::check::{NewNotification, NotificationKind, StoreError};

/// Query parameters in order, repeated keys kept (`?state=A&state=B`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(raw: Option<String>) -> Params {
        // The UI writes `?&width=..`; empty pairs are skipped.
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A non-negative integer, `default` when absent.
    fn count(&self, key: &str, default: usize) -> Result<usize, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    ApiError::bad(format!("{key} must be a non-negative integer, not {v:?}"))
                }),
        }
    }
}

fn envelope<T: serde::Serialize>(
    values: &[T],
    items: usize,
    start: usize,
    total: usize,
) -> Json<Value> {
    Json(json!({"values": values, "items": items, "start": start, "total": total}))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))
}

fn location(ctx: &ApiContext, headers: &HeaderMap, path: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = if ctx.tls { "https" } else { "http" };
    format!("{scheme}://{host}{}{path}", ctx.base_path)
}

impl From<CheckError> for ApiError {
    fn from(e: CheckError) -> Self {
        match e {
            CheckError::Invalid(m) => ApiError::bad(m),
            CheckError::Store(StoreError::DuplicateName(n)) => ApiError {
                status: StatusCode::CONFLICT,
                message: format!("a check named {n:?} exists already"),
            },
            CheckError::Stopped => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the alert engine is shutting down".into(),
            },
            CheckError::Store(e) => ApiError::internal(e.to_string()),
        }
    }
}

/// `GET /checks`: Seyren's filters, in its precedence: `state` (with
/// `enabled`), else `fields`/`regexes` (with `enabled`), else `enabled`.
/// Paging with `start`/`items` is an extension; without `items` every
/// check is returned, as Seyren does.
pub async fn list_checks(
    State(ctx): State<ApiContext>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q);
    let states = p
        .all("state")
        .into_iter()
        .map(|s| {
            serde_json::from_value::<AlertType>(Value::String(s.to_string()))
                .map_err(|_| ApiError::bad(format!("unknown state {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let enabled = p.get("enabled").map(|v| v == "true");
    let (fields, regexes) = (p.all("fields"), p.all("regexes"));
    let filters = fields
        .iter()
        .zip(&regexes)
        .map(|(f, r)| {
            crate::route::glob::bounded_regex(r)
                .map(|re| (f.to_string(), re))
                .map_err(|e| ApiError::bad(format!("regexes: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut checks = ctx.alerts()?.engine.checks().await?;
    checks.sort_by(|a, b| a.name.cmp(&b.name));
    checks.retain(|c| {
        enabled.is_none_or(|e| c.enabled == e)
            && if !states.is_empty() {
                states.contains(&c.state)
            } else if !filters.is_empty() {
                let doc = serde_json::to_value(c).unwrap_or_default();
                filters.iter().all(|(f, re)| match doc.get(f) {
                    Some(Value::String(s)) => re.is_match(s),
                    Some(Value::Null) | None => false,
                    Some(v) => re.is_match(&v.to_string()),
                })
            } else {
                true
            }
    });
    let total = checks.len();
    let (start, items) = (p.count("start", 0)?, p.count("items", 0)?);
    let page: Vec<&Check> = checks
        .iter()
        .skip(start)
        .take(if items == 0 { usize::MAX } else { items })
        .collect();
    Ok(envelope(&page, items, start, total))
}

/// Whether a client's id can be kept: what Seyren's ids and ours look like
/// (1 to 64 letters, digits, `-` and `_`).
fn acceptable_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `POST /checks`: 201 with `Location`; a missing state becomes OK.
/// Extension: an id in the body that is well formed and not in use is
/// kept (so `carbonwatch import seyren` keeps Seyren's ids); otherwise the
/// check gets a new one, as in Seyren.
pub async fn create_check(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let doc: Value = parse_json(&body)?;
    let mut check: Check = serde_json::from_value(doc.clone())
        .map_err(|e| ApiError::bad(format!("invalid check: {e}")))?;
    if doc.get("state").is_none_or(Value::is_null) {
        check.state = AlertType::Ok;
    }
    let keep = acceptable_id(&check.id) && ctx.alerts()?.engine.check(&check.id).await?.is_none();
    if !keep {
        check.id = new_id();
    }
    let check = ctx.alerts()?.engine.upsert(check).await?;
    let loc = location(&ctx, &headers, &format!("/checks/{}", check.id));
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)]).into_response())
}

/// The check with `id`, or 404.
pub(crate) async fn find_check(ctx: &ApiContext, id: &str) -> Result<Check, ApiError> {
    ctx.alerts()?
        .engine
        .check(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no check with id {id:?}")))
}

/// Where subscription `sid` sits in `check`, or 404.
fn subscription_index(check: &Check, sid: &str) -> Result<usize, ApiError> {
    check
        .subscriptions
        .iter()
        .position(|s| s.id == sid)
        .ok_or_else(|| {
            ApiError::not_found(format!("check {:?} has no subscription {sid:?}", check.id))
        })
}

/// `GET /checks/{id}`.
pub async fn get_check(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Check>, ApiError> {
    Ok(Json(find_check(&ctx, &id).await?))
}

/// The fields Seyren's `PUT /checks/{id}` sets (its `$set`), each to what
/// the body says or, when the body leaves it out, to null or false.
const SEYREN_SET: [(&str, Value); 10] = [
    ("name", Value::Null),
    ("description", Value::Null),
    ("target", Value::Null),
    ("from", Value::Null),
    ("until", Value::Null),
    ("warn", Value::Null),
    ("error", Value::Null),
    ("enabled", Value::Bool(false)),
    ("live", Value::Bool(false)),
    ("allowNoData", Value::Bool(false)),
];

/// Extension fields, which Seyren's clients do not know: a PUT changes
/// them only when it names them.
const EXTENSIONS: [&str; 6] = [
    "for",
    "window",
    "noDataAfter",
    "repeatEvery",
    "interval",
    "mutedUntil",
];

/// `PUT /checks/{id}`: Seyren's `$set` of the scalar fields; the
/// subscriptions are never touched, extensions only when named, and
/// `state` and `lastCheck` stay as they are when the body has none (where
/// Seyren fails with a 500). The path id selects the check.
pub async fn update_check(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Check>, ApiError> {
    let old = find_check(&ctx, &id).await?;
    let Value::Object(doc) = parse_json::<Value>(&body)? else {
        return Err(ApiError::bad("a check must be a JSON object"));
    };
    let mut merged = match serde_json::to_value(&old) {
        Ok(Value::Object(m)) => m,
        _ => return Err(ApiError::internal("the stored check does not serialize")),
    };
    for (key, absent) in SEYREN_SET {
        let v = doc.get(key).cloned().unwrap_or(absent);
        merged.insert(key.into(), v);
    }
    for key in ["state", "lastCheck"] {
        if let Some(v) = doc.get(key).filter(|v| !v.is_null()) {
            merged.insert(key.into(), v.clone());
        }
    }
    for key in EXTENSIONS {
        if let Some(v) = doc.get(key) {
            merged.insert(key.into(), v.clone());
        }
    }
    let mut check: Check = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::bad(format!("invalid check: {e}")))?;
    check.id = id;
    check.subscriptions = old.subscriptions;
    Ok(Json(ctx.alerts()?.engine.upsert(check).await?))
}

/// `DELETE /checks/{id}`: 204 whether or not it existed, as in Seyren.
pub async fn delete_check(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.alerts()?.engine.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /checks/{id}/alerts` and `GET /alerts`: newest first, paged by
/// `start` and `items` (20 by default, 0 for all).
pub async fn check_alerts(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    alerts_page(&ctx, Some(id), q).await
}

/// `GET /alerts`.
pub async fn all_alerts(
    State(ctx): State<ApiContext>,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    alerts_page(&ctx, None, q).await
}

async fn alerts_page(
    ctx: &ApiContext,
    id: Option<String>,
    q: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let p = Params::parse(q);
    let (start, items) = (p.count("start", 0)?, p.count("items", 20)?);
    let store = ctx.alerts()?.store.clone();
    let (page, total): (Vec<Alert>, usize) =
        tokio::task::spawn_blocking(move || store.alerts(id.as_deref(), start, items))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(envelope(&page, items, start, total))
}

/// `DELETE /checks/{id}/alerts?before=ISO-8601`: all alerts without
/// `before`.
pub async fn delete_alerts(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<StatusCode, ApiError> {
    let p = Params::parse(q);
    let before = match p.get("before") {
        None | Some("") => None,
        Some(t) => Some(parse_instant(t)?),
    };
    let store = ctx.alerts()?.store.clone();
    tokio::task::spawn_blocking(move || store.delete_alerts(&id, before))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// An ISO-8601 date-time (Joda's `DateTime.parse`: an offset is optional
/// and means UTC when absent) as epoch ms.
fn parse_instant(t: &str) -> Result<i64, ApiError> {
    let bad = || ApiError::bad(format!("before must be an ISO-8601 date-time, not {t:?}"));
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let dt: jiff::civil::DateTime = t.parse().map_err(|_| bad())?;
    dt.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| bad())
}

/// `POST /checks/{id}/subscriptions`: 201 with `Location`.
pub async fn create_subscription(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut sub: Subscription = parse_json(&body)?;
    sub.id = new_id();
    let mut check = find_check(&ctx, &id).await?;
    let sid = sub.id.clone();
    check.subscriptions.push(sub);
    ctx.alerts()?.engine.upsert(check).await?;
    let loc = location(&ctx, &headers, &format!("/checks/{id}/subscriptions/{sid}"));
    Ok((StatusCode::CREATED, [(header::LOCATION, loc)]).into_response())
}

/// `PUT /checks/{id}/subscriptions/{sid}`: 204.
pub async fn update_subscription(
    State(ctx): State<ApiContext>,
    Path((id, sid)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let mut sub: Subscription = parse_json(&body)?;
    sub.id = sid.clone();
    let mut check = find_check(&ctx, &id).await?;
    let i = subscription_index(&check, &sid)?;
    check.subscriptions[i] = sub;
    ctx.alerts()?.engine.upsert(check).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /checks/{id}/subscriptions/{sid}`: 204 always.
pub async fn delete_subscription(
    State(ctx): State<ApiContext>,
    Path((id, sid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if let Ok(mut check) = find_check(&ctx, &id).await {
        let before = check.subscriptions.len();
        check.subscriptions.retain(|s| s.id != sid);
        if check.subscriptions.len() != before {
            ctx.alerts()?.engine.upsert(check).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /checks/{id}/subscriptions/{sid}/test`: one synthetic OK to ERROR
/// alert through the subscription's channel, whatever its filters say.
pub async fn test_subscription(
    State(ctx): State<ApiContext>,
    Path((id, sid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let mut check = find_check(&ctx, &id).await?;
    let sub = check.subscriptions[subscription_index(&check, &sid)?].clone();
    check.state = AlertType::Error;
    let alert = Alert {
        id: new_id(),
        check_id: check.id.clone(),
        value: Some(0.0),
        target: check.target.clone(),
        warn: check.warn.clone(),
        error: check.error.clone(),
        from_type: AlertType::Ok,
        to_type: AlertType::Error,
        timestamp: crate::unix_now_ms(),
        detected_timestamp: None,
    };
    let n = NewNotification {
        kind: NotificationKind::Change,
        check,
        subscription: sub,
        alerts: vec![alert],
        not_before_ms: 0,
    };
    let alerts = ctx.alerts()?;
    // A target the API user chose goes through the test notifiers, under
    // the network policy; URLs from [notify] are the operator's own.
    let notifiers = match alerts.notifiers.target_url(&n.subscription) {
        Some(url) => {
            ctx.test_policy.check_url(url).map_err(|e| ApiError {
                status: StatusCode::FORBIDDEN,
                message: e.to_string(),
            })?;
            &alerts.test_notifiers
        }
        None => &alerts.notifiers,
    };
    if n.subscription.kind.is_none() {
        // No notifier handles a subscription without a type: Seyren
        // sends nothing and answers 204.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Seyren's answer, word for word: 500, text/plain.
    let failed = |message: String| -> Result<Response, ApiError> {
        Ok((
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            axum::Extension(crate::api::guard::SeyrenText),
            format!("Notifying failed '{message}'"),
        )
            .into_response())
    };
    match tokio::time::timeout(alerts.test_timeout, notifiers.send(&n)).await {
        Ok(Ok(())) => Ok(StatusCode::NO_CONTENT.into_response()),
        Ok(Err(e)) => failed(e.for_client()),
        Err(_) => failed(format!(
            "no answer within {} s",
            alerts.test_timeout.as_secs()
        )),
    }
}

/// `GET /config`: exactly Seyren's three keys.
pub async fn config(State(ctx): State<ApiContext>) -> Json<Value> {
    Json(json!({
        "baseUrl": ctx.seyren_url,
        "graphsEnabled": ctx.graphs_enabled,
        "graphiteCarbonPickleEnabled": ctx.pickle_enabled,
    }))
}

/// `GET /metrics/{target}/total`: how many series the target renders to
/// over Seyren's default window; 0 when Graphite cannot be read.
pub async fn metrics_total(
    State(ctx): State<ApiContext>,
    Path(target): Path<String>,
) -> Json<Value> {
    let n = ctx
        .render
        .last_values(&target, None, None)
        .await
        .map_or(0, |v| v.len());
    Json(json!({ target: n }))
}

/// Extension: a check's series with their states and last values.
pub async fn check_series(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let series = ctx.alerts()?.engine.series(&id).await?;
    let now = crate::unix_now_ms();
    let values: Vec<Value> = series
        .into_iter()
        .map(|(name, s)| {
            let newest = s.newest();
            json!({"target": name, "state": s.state, "value": s.value(), "lastSeen": newest,
                "lagMs": newest.map(|t| now - t)})
        })
        .collect();
    Ok(Json(json!({ "values": values })))
}

/// Extension: recent values for the check page's chart, as render-API
/// JSON (`[{"target", "datapoints": [[value, epoch s]..]}]`): from memory
/// for a live check, from Graphite over `from` (default `-1hours`) for a
/// polled one.
pub async fn check_points(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let check = find_check(&ctx, &id).await?;
    if check.live {
        let recent = ctx.alerts()?.engine.recent(&id).await?;
        let doc: Vec<Value> = recent
            .into_iter()
            .map(|(name, pts)| {
                let dp: Vec<Value> = pts.iter().map(|(t, v)| json!([v, t / 1000])).collect();
                json!({"target": name, "datapoints": dp})
            })
            .collect();
        return Ok(Json(doc).into_response());
    }
    let p = Params::parse(q);
    let from = p.get("from").unwrap_or("-1hours");
    let body = ctx
        .render
        .points(&check.target, from)
        .await
        .map_err(|e| ApiError {
            status: StatusCode::BAD_GATEWAY,
            message: e.to_string(),
        })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
