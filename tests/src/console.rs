//! What the console's tests share: the `Set-Cookie` headers of an answer, read as a browser
//! would keep them, and the admin's password set so a test can sign in as a person does.

use crate::{Answer, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// One `Set-Cookie` of an answer: its name, value and attributes as sent.
#[derive(Debug)]
pub struct SetCookie {
    pub name: String,
    pub value: String,
    pub attributes: Vec<String>,
}

impl SetCookie {
    /// Whether it carries the attribute `attribute` (`HttpOnly`, `Secure`, …), in any case.
    pub fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    /// The value of its attribute `name` (`Max-Age`, `Path`, …), if it has one.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            a.split_once('=')
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value)
        })
    }
}

/// Every `Set-Cookie` of `answer`, in order.
pub fn set_cookies(answer: &Answer) -> Vec<SetCookie> {
    answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|value| {
            let mut parts = value.to_str().expect("a text cookie").split(';');
            let (name, value) = parts
                .next()
                .and_then(|pair| pair.split_once('='))
                .expect("name=value");
            SetCookie {
                name: name.trim().to_string(),
                value: value.trim().to_string(),
                attributes: parts.map(|a| a.trim().to_string()).collect(),
            }
        })
        .collect()
}

/// Gives the admin `api` speaks for the password `password`: its name.
pub async fn admin_with_password(api: &Api, password: &str) -> String {
    let me = api.get("/v1/auth/whoami").await.expect(StatusCode::OK);
    let admin = me.body["user"].as_str().expect("a name").to_string();
    api.call(
        Method::PATCH,
        &format!("/v1/users/{admin}"),
        Some(json!({"password": password})),
    )
    .await
    .expect(StatusCode::OK);
    admin
}
