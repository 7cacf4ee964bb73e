//! A client of Graphite's render API, making the request exactly as Seyren
//! does (`seyren.md` §2.2): `GET {url}/render/?from=..&until=..&uniq=..
//! &format=json&target=..`, preemptive HTTP Basic when a user and password
//! are set, and the last non-null value of each returned series.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Sample;
use crate::poll::GraphiteConfig;

/// Why a render request failed. A failure is not "no data": the poller
/// turns it into the EXCEPTION state.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// No `[graphite] url` is configured.
    #[error("no Graphite URL is configured ([graphite] url or GRAPHITE_URL)")]
    NotConfigured,
    /// The request failed or timed out.
    #[error("request to Graphite failed: {0}")]
    Request(String),
    /// Graphite answered with an error status.
    #[error("Graphite answered {status}: {body}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The start of the body, which carries Graphite's message.
        body: String,
    },
    /// The body was not Graphite's JSON.
    #[error("Graphite's answer is not render JSON: {0}")]
    Decode(String),
}

/// One series of a render answer: `{"target": .., "datapoints": [[v, ts]..]}`.
#[derive(Debug, Deserialize)]
struct Series {
    target: String,
    datapoints: Vec<(Option<f64>, Option<f64>)>,
}

/// The last non-null value of each series with its timestamp, in
/// Graphite's order. A series whose points are all null maps to `None`,
/// which Seyren skips.
pub fn last_values(body: &[u8]) -> Result<Vec<(String, Option<Sample>)>, RenderError> {
    let series: Vec<Series> =
        serde_json::from_slice(body).map_err(|e| RenderError::Decode(e.to_string()))?;
    Ok(series
        .into_iter()
        .map(|s| {
            let last = s.datapoints.iter().rev().find_map(|&(v, ts)| {
                Some(Sample {
                    value: v?,
                    at_ms: (ts? * 1000.0) as i64,
                })
            });
            (s.target, last)
        })
        .collect())
}

/// Percent-encodes one query parameter value.
pub fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Talks to one Graphite.
#[derive(Debug, Clone)]
pub struct RenderClient {
    http: reqwest::Client,
    base: String,
    auth: Option<(String, String)>,
}

impl RenderClient {
    /// A client for `cfg`, with its request timeout.
    pub fn new(cfg: &GraphiteConfig) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs.max(1)))
            .pool_max_idle_per_host(cfg.max_concurrent_requests.max(1))
            .build()
            .expect("a TLS backend is compiled in");
        let auth = (!cfg.username.is_empty() && !cfg.password.is_empty())
            .then(|| (cfg.username.clone(), cfg.password.clone()));
        RenderClient {
            http,
            base: cfg.url.trim_end_matches('/').to_string(),
            auth,
        }
    }

    /// Whether a URL is configured.
    pub fn is_configured(&self) -> bool {
        !self.base.is_empty()
    }

    /// The request URL, parameters in Seyren's order.
    pub fn url(&self, target: &str, from: Option<&str>, until: Option<&str>) -> String {
        format!(
            "{}/render/?from={}&until={}&uniq={}&format=json&target={}",
            self.base,
            encode(from.unwrap_or("-11minutes")),
            encode(until.unwrap_or("-1minutes")),
            crate::unix_now_ms(),
            encode(target)
        )
    }

    /// Renders `target` and returns each series' last non-null value.
    pub async fn last_values(
        &self,
        target: &str,
        from: Option<&str>,
        until: Option<&str>,
    ) -> Result<Vec<(String, Option<Sample>)>, RenderError> {
        let body = self.get(&self.url(target, from, until)).await?;
        last_values(&body)
    }

    /// Renders `target` over `from` and returns every point, for charts.
    pub async fn points(&self, target: &str, from: &str) -> Result<Vec<u8>, RenderError> {
        self.get(&self.url(target, Some(from), Some("now"))).await
    }

    /// A render request with `query` as given (the image endpoints pass
    /// Graphite's own PNG parameters through).
    pub async fn raw(&self, query: &str) -> Result<Vec<u8>, RenderError> {
        self.get(&format!("{}/render/?{query}", self.base)).await
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, RenderError> {
        if !self.is_configured() {
            return Err(RenderError::NotConfigured);
        }
        let mut req = self.http.get(url);
        if let Some((user, password)) = &self.auth {
            // reqwest writes the header on the first request: preemptive,
            // as Seyren does.
            req = req.basic_auth(user, Some(password));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| RenderError::Request(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| RenderError::Request(e.without_url().to_string()))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(RenderError::Status {
                status: status.as_u16(),
                body: text,
            });
        }
        Ok(body.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_last_non_null_value_of_each_series() {
        // GraphiteTargetCheckerTest's cases: last non-null; all null is
        // absent; several series.
        let body = br#"[
            {"target": "a", "datapoints": [[1.0, 1], [2.5, 2], [null, 3]]},
            {"target": "b", "datapoints": [[null, 1], [null, 2]]},
            {"target": "c", "datapoints": []},
            {"target": "d", "datapoints": [[7, 1]]}
        ]"#;
        assert_eq!(
            last_values(body).unwrap(),
            vec![
                (
                    "a".into(),
                    Some(Sample {
                        value: 2.5,
                        at_ms: 2000
                    })
                ),
                ("b".into(), None),
                ("c".into(), None),
                (
                    "d".into(),
                    Some(Sample {
                        value: 7.0,
                        at_ms: 1000
                    })
                )
            ]
        );
        assert!(matches!(
            last_values(b"<html>oops</html>"),
            Err(RenderError::Decode(_))
        ));
    }

    #[test]
    fn builds_seyrens_request() {
        let c = RenderClient::new(&GraphiteConfig {
            url: "http://g.example/graphite/".into(),
            ..GraphiteConfig::default()
        });
        let u = c.url("sumSeries(a.*.b)", None, None);
        assert!(u.starts_with(
            "http://g.example/graphite/render/?from=-11minutes&until=-1minutes&uniq="
        ));
        assert!(
            u.ends_with("&format=json&target=sumSeries%28a.*.b%29"),
            "{u}"
        );
        let u = c.url("x", Some("-1h"), Some("now"));
        assert!(u.contains("from=-1h&until=now&"), "{u}");
    }
}
