//! The bearer token, when the server has one, on every request: `Authorization: Bearer T`, or
//! the `troupe_token` cookie the page gets by opening `/?token=T` once (a browser cannot send
//! a header when it opens a page or an event stream).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

use crate::AppState;
use crate::error::ApiError;

pub const COOKIE: &str = "troupe_token";

/// Equal in time that does not depend on where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v.strip_prefix("Bearer ")
    {
        out.push(t.trim().to_string());
    }
    for cookies in headers.get_all(header::COOKIE) {
        if let Ok(s) = cookies.to_str() {
            for c in s.split(';') {
                if let Some(t) = c.trim().strip_prefix(&format!("{COOKIE}=")) {
                    out.push(t.to_string());
                }
            }
        }
    }
    out
}

/// Lets a request through when the server has no token or the request carries it.
pub async fn check(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(token) = state.config.token.as_deref().filter(|t| !t.is_empty()) else {
        return next.run(req).await;
    };
    if presented(req.headers())
        .iter()
        .any(|t| same(t.as_bytes(), token.as_bytes()))
    {
        return next.run(req).await;
    }
    // The page's first visit: `/?token=T` becomes a cookie, and the token leaves the address.
    if req.uri().path() == "/"
        && let Some(q) = req.uri().query()
        && let Some(t) = q.split('&').find_map(|kv| kv.strip_prefix("token="))
        && same(t.as_bytes(), token.as_bytes())
    {
        let mut r = Redirect::to("/").into_response();
        if let Ok(v) = format!("{COOKIE}={t}; HttpOnly; SameSite=Strict; Path=/").parse() {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        return r;
    }
    ApiError::new(StatusCode::UNAUTHORIZED, "this server needs a token")
        .hint("send `Authorization: Bearer <token>` (the value of the variable `troupe serve --token-env` names), or open the page once as `/?token=<token>`")
        .into_response()
}
