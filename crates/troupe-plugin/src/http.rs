//! `http-get` for plugins: GET only, hosts on the plugin's allow-list only (redirects included),
//! the body capped at `limits.http_kb`, the whole fetch within the call's deadline.

use std::time::{Duration, Instant};

use reqwest::{Client, Url, redirect};

/// Whether `host` is on the allow-list: an exact name, or `*.example.org` for its subdomains.
pub(crate) fn allowed(allow: &[String], host: &str) -> bool {
    allow.iter().any(|a| {
        let a = a.to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => a == host,
        }
    })
}

/// A client for one plugin: no proxies from the environment, redirects followed only to
/// allowed hosts (at most 5).
pub fn client(allow: &[String]) -> Result<Client, String> {
    let allow = allow.to_vec();
    Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("troupe-plugin/", env!("CARGO_PKG_VERSION")))
        .redirect(redirect::Policy::custom(move |attempt| {
            let host = attempt
                .url()
                .host_str()
                .unwrap_or_default()
                .to_ascii_lowercase();
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if allowed(&allow, &host) {
                attempt.follow()
            } else {
                attempt.error(format!(
                    "redirected to `{host}`, which is not in the plugin's `grants.http`"
                ))
            }
        }))
        .build()
        .map_err(|e| format!("cannot set up HTTP: {e}"))
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("the response is over the limit of {0} KiB (`limits.http_kb`)")]
    TooLarge(usize),
    #[error("{0}")]
    Other(String),
}

pub(crate) async fn get(
    client: &Client,
    url: Url,
    max_bytes: usize,
    deadline: Instant,
) -> Result<String, Failure> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let shown = url.to_string();
    let fetch = async {
        let mut response = client.get(url).send().await.map_err(|e| {
            let why = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            Failure::Other(format!("GET {shown} failed: {e}{why}"))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::Other(format!("GET {shown}: HTTP {status}")));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > max_bytes)
        {
            return Err(Failure::TooLarge(max_bytes >> 10));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| Failure::Other(format!("GET {shown}: reading the body failed: {e}")))?
        {
            if body.len() + chunk.len() > max_bytes {
                return Err(Failure::TooLarge(max_bytes >> 10));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(remaining, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(Failure::Other(format!(
                "GET {shown} did not finish before the call's deadline (`limits.deadline_ms`)"
            )))
        })
}
