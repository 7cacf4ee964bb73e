//! The web UI, compiled into the binary (`assets/ui/index.html`: plain
//! HTML, CSS and JavaScript, no build step), and Seyren's image endpoints,
//! which proxy Graphite's PNG renderer.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::api::seyren::{find_check, Params};
use crate::api::{ApiContext, ApiError};
use crate::poll::render::encode as enc;

const INDEX: &str = include_str!("../../assets/ui/index.html");

/// `/` serves the UI, told where the API lives.
pub fn routes() -> Router<ApiContext> {
    Router::new().route("/", get(index))
}

async fn index(State(ctx): State<ApiContext>) -> Html<String> {
    let base = serde_json::to_string(&ctx.base_path).unwrap_or_else(|_| "\"/api\"".into());
    Html(INDEX.replace("\"__API_BASE__\"", &base))
}

fn threshold_lines(warn: &str, error: &str) -> String {
    format!(
        "&target=alias(dashed(color(constantLine({warn}),\"yellow\")),\"warn level\")&target=alias(dashed(color(constantLine({error}),\"red\")),\"error level\")"
    )
}

async fn png(ctx: &ApiContext, query: String) -> Result<Response, ApiError> {
    let body = ctx.render.raw(&query).await.map_err(|e| ApiError {
        status: StatusCode::BAD_GATEWAY,
        message: e.to_string(),
    })?;
    Ok(([(header::CONTENT_TYPE, "image/png")], body).into_response())
}

/// Graphite's size and decoration parameters, Seyren's defaults.
fn picture(p: &Params) -> String {
    let flag = |k: &str| p.get(k) == Some("true");
    format!(
        "from={}&width={}&height={}&uniq={}&hideLegend={}&hideAxes={}",
        enc(p.get("from").unwrap_or("-24hours")),
        enc(p.get("width").unwrap_or("1200")),
        enc(p.get("height").unwrap_or("350")),
        crate::unix_now_ms(),
        flag("hideLegend"),
        flag("hideAxes"),
    )
}

/// `GET {api}/checks/{id}/image`: the check's target with its warn and
/// error lines, as a PNG from Graphite.
pub async fn check_image(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q);
    let check = find_check(&ctx, &id).await?;
    let mut query = format!("target={}&{}", enc(&check.target), picture(&p));
    if p.get("hideThresholds") != Some("true") {
        if let (Some(w), Some(e)) = (&check.warn, &check.error) {
            query.push_str(&threshold_lines(&w.text, &e.text));
        }
    }
    png(&ctx, query).await
}

/// `GET {api}/chart/{target}`: any target, with optional `warn` and
/// `error` lines, for the check editor's preview.
pub async fn chart_image(
    State(ctx): State<ApiContext>,
    Path(target): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q);
    let mut query = format!("target={}&{}", enc(&target), picture(&p));
    if let (Some(w), Some(e)) = (p.get("warn"), p.get("error")) {
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| ApiError::bad(format!("{s:?} is not a number")))
        };
        query.push_str(&threshold_lines(&num(w)?.to_string(), &num(e)?.to_string()));
    }
    png(&ctx, query).await
}
