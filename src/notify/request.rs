//! The HTTP request a notifier sends, built as a value before anything is
//! sent: each notifier's payload builder returns these, so its exact
//! method, URL, headers and body are tested without a network, and
//! sending is written once.

use serde_json::Value;

use crate::notify::{expect_success, NotifyError};

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `application/json`.
    Json(Value),
    /// `application/x-www-form-urlencoded`, fields in order.
    Form(Vec<(&'static str, String)>),
    /// No body (a GET).
    Empty,
}

/// One HTTP request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `POST` unless `body` is [`Body::Empty`], then `GET`.
    pub url: String,
    /// Extra headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// Basic auth (user, password).
    pub basic_auth: Option<(String, String)>,
    /// What is sent.
    pub body: Body,
}

impl Request {
    /// A JSON POST.
    pub fn json(url: impl Into<String>, body: Value) -> Request {
        Request::new(url, Body::Json(body))
    }

    /// A form POST.
    pub fn form(url: impl Into<String>, fields: Vec<(&'static str, String)>) -> Request {
        Request::new(url, Body::Form(fields))
    }

    /// A GET.
    pub fn get(url: impl Into<String>) -> Request {
        Request::new(url, Body::Empty)
    }

    fn new(url: impl Into<String>, body: Body) -> Request {
        Request {
            url: url.into(),
            headers: Vec::new(),
            basic_auth: None,
            body,
        }
    }

    /// With one more header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    /// With Basic auth.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Request {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    fn builder(&self, client: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut b = match &self.body {
            Body::Json(v) => client.post(&self.url).json(v),
            Body::Form(f) => client.post(&self.url).form(f),
            Body::Empty => client.get(&self.url),
        };
        for (k, v) in &self.headers {
            b = b.header(*k, v);
        }
        if let Some((u, p)) = &self.basic_auth {
            b = b.basic_auth(u, Some(p));
        }
        b
    }

    /// Sends it; a non-2xx answer is a failure.
    pub async fn send(&self, client: &reqwest::Client) -> Result<(), NotifyError> {
        expect_success(self.builder(client).send().await?).await
    }

    /// Sends it and reads a JSON answer; a non-2xx answer is a failure.
    pub async fn fetch_json(&self, client: &reqwest::Client) -> Result<Value, NotifyError> {
        let resp = self.builder(client).send().await?;
        if !resp.status().is_success() {
            return expect_success(resp).await.map(|()| Value::Null);
        }
        Ok(resp.json().await?)
    }
}

/// Sends each request in turn, stopping at the first failure (a retry
/// sends them all again, as Seyren's loop over rooms would).
pub async fn send_all(client: &reqwest::Client, requests: &[Request]) -> Result<(), NotifyError> {
    for r in requests {
        r.send(client).await?;
    }
    Ok(())
}

/// Whether `s` is an http(s) URL, for targets that may be one.
pub fn is_url(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("http://") || s.starts_with("https://")
}

/// `s` percent-encoded as one path segment (Java's `URLEncoder` with `+`
/// turned into `%20`, as Seyren's HipChat call does).
pub fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
