//! A tsuru client of a test's server (`/compat/tsuru`), as the `compat_tsuru_*` tests speak to
//! it: [`Tsuru`] sends a call as tsuru's clients send one (`Authorization: bearer <token>`, a
//! [`Body`] of 0.3.9's JSON, 1.x's form or raw text) and reads the answer as a [`Reply`]: its
//! JSON, 1.x's streamed messages, or a refusal in tsuru's plain-text shape. Owns no check of
//! what a route does: that is each test's.

use crate::Api;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A tsuru client of the test's server: `Authorization: bearer <token>` on every call (none if
/// `token` is empty).
#[derive(Clone)]
pub struct Tsuru {
    /// The server's `…/compat/tsuru`.
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
}

/// A request body as a tsuru client sends one.
pub enum Body<'a> {
    None,
    /// 0.3.9's clients: JSON text without a `Content-Type`.
    Json(Value),
    /// 1.x's: `application/x-www-form-urlencoded`.
    Form(&'a [(&'a str, &'a str)]),
    /// Raw text with no `Content-Type` (a YAML manifest, 0.3.9's documentation, bad JSON).
    Text(&'a str),
}

/// An answer: its status, headers and text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, which the answer must say it is (`application/json` exactly).
    #[track_caller]
    pub fn json(&self) -> Value {
        assert_eq!(self.content_type(), Some("application/json"), "{self:?}");
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// 1.x's streamed messages (`application/x-json-stream`, one `{"Message"}` a line), which
    /// the answer must say it is.
    #[track_caller]
    pub fn messages(&self) -> Vec<String> {
        assert_eq!(
            self.content_type(),
            Some("application/x-json-stream"),
            "{self:?}"
        );
        self.text
            .lines()
            .map(|line| {
                let value: Value = serde_json::from_str(line).expect("a JSON line");
                value["Message"].as_str().expect("a Message").to_string()
            })
            .collect()
    }

    /// A refusal in tsuru's shape: plain text ending in a newline, with `status` and tsuru's
    /// `Supported-Tsuru` header; its text.
    #[track_caller]
    pub fn refused(self, status: StatusCode) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.content_type()
                .is_some_and(|c| c.starts_with("text/plain")),
            "{self:?}"
        );
        assert!(self.text.ends_with('\n'), "{:?}", self.text);
        assert_eq!(self.headers["supported-tsuru"], "0.8.10");
        self.text
    }
}

impl Tsuru {
    /// `api`'s server and token, spoken to as tsuru.
    pub fn of(api: &Api) -> Tsuru {
        Tsuru {
            base: format!("{}/compat/tsuru", api.base),
            token: api.token.clone(),
            http: api.http.clone(),
        }
    }

    /// The same client with another token (`""`: none).
    pub fn with_token(&self, token: &str) -> Tsuru {
        Tsuru {
            token: token.to_string(),
            ..self.clone()
        }
    }

    /// A call with `authorization` as the whole `Authorization` header (none if `None`).
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        authorization: Option<String>,
        body: Body<'_>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.body(value.to_string()),
            Body::Form(pairs) => request.form(pairs),
            Body::Text(text) => request.body(text.to_string()),
        };
        let response = request.send().await.expect("a tsuru call");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap_or_default(),
        }
    }

    pub async fn send(&self, method: Method, path: &str, body: Body<'_>) -> Reply {
        let authorization = (!self.token.is_empty()).then(|| format!("bearer {}", self.token));
        self.send_with(method, path, authorization, body).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, Body::None).await
    }
}
