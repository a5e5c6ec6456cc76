//! Request and response rules applied to every route (see [`crate::router`]):
//! * a request with a body method (POST, PUT, PATCH) must say `Content-Type: application/json`
//!   (415 otherwise): a browser can send a cross-site "simple" POST (`text/plain`, form types)
//!   without a CORS preflight, never a JSON one, so this closes that CSRF path. The line-protocol
//!   write routes take `text/plain` (never form types); a cross-site write is still refused,
//!   by the `Origin` check (`serve`), by the CSRF header a cookie session needs, and because
//!   their other credentials are headers a browser never sends by itself;
//! * every error answer (4xx, 5xx) is JSON `{"error": MESSAGE}` — axum's own rejections (bad
//!   query string, body too large, 405 with an empty body) are rewritten, keeping their message;
//! * every response carries `X-Content-Type-Options: nosniff`; HTML responses also carry a strict
//!   `Content-Security-Policy` (no inline script or style) and `Referrer-Policy: no-referrer`.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api::error;

/// The policy of every HTML response: scripts and styles only from this origin (the page's are
/// `/assets/app.js` and `/assets/app.css`), no framing, no plugins, fetches only to this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Largest body of the JSON control routes (fault injection, re-learn), in bytes (413 beyond).
pub const CONTROL_BODY_LIMIT: usize = 16 * 1024;

/// Largest error body of an inner layer that is kept as the message of the JSON error.
const MAX_ERROR_TEXT: usize = 4096;

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// 415 for a body method without `Content-Type: application/json`, except on the line-protocol
/// write routes, which check their own body types (no form types) and where CSRF is closed by
/// the `Origin` check, the session's CSRF header and headers a browser never adds by itself.
pub(crate) async fn require_json(req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH)
        && !crate::history::WRITE_PATHS.contains(&req.uri().path())
        && !is_json(req.headers().get(header::CONTENT_TYPE))
    {
        let got = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported content type {}: send the body as JSON with Content-Type: application/json",
                got.map_or_else(|| "(none)".to_owned(), |g| format!("{g:?}"))
            ),
        );
    }
    next.run(req).await
}

/// Rewrites every non-JSON error answer as `{"error": MESSAGE}` (same status and headers).
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error())
        || is_json(resp.headers().get(header::CONTENT_TYPE))
    {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_TEXT)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let msg = if status == StatusCode::METHOD_NOT_ALLOWED {
        // axum adds `Allow` outside every layer, so it is not known here yet.
        format!("method {method} is not allowed on {path} (the Allow header lists those that are)")
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    let json = serde_json::json!({ "error": msg }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(json))
}

/// `nosniff` on every response; CSP and referrer policy on HTML.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let html = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    resp
}
