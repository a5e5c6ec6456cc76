//! Authentication and use control for every route: who is asking ([`identify`]: a bearer token,
//! a session cookie, a verified client certificate) and whether their role may ([`access`], the
//! table docs/security.md lists and a test walks). Nothing is anonymous but the login page and
//! its assets, and `/health`.
//!
//! * **API clients** send `Authorization: Bearer TOKEN` (an API token, or the demo's login token
//!   during that run); `Token TOKEN` and `Basic` with the token as password are accepted too, as
//!   InfluxDB clients send them. No CSRF token is needed: a browser never adds that header by
//!   itself.
//! * **The UI** logs in at `/login` (user and password, or `/login?token=TOKEN` from the demo's
//!   start line) and gets a session cookie: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Secure`
//!   under TLS. A state-changing request made with the cookie must also carry
//!   `X-CSRF-Token`, the session's binding the page holds in `<meta name=csrf-token>`.
//! * **Mutual TLS**: a client certificate the listener verified names its user by its CN.
//!
//! Refusals: 401 with `WWW-Authenticate: Bearer` (the page redirects to `/login` instead), 403
//! naming the role needed. Password logins are throttled per user and per address and run off the
//! executor (an argon2 check takes ~0.1 s on purpose). Every login and logout, and every refused
//! login, becomes an `Audit` event on the bus (when the binary gave a publisher); secrets never
//! appear in a message, a log line or an event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use mw_bus::Publisher;
use mw_model::Event;
use mw_security::{
    AuthError, Authenticator, LoginThrottle, Permission, Principal, Role, SessionBasis,
    SessionStore, Via,
};
use serde_json::json;

use crate::{AppState, ClientCert};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "mw_session";
/// The header a cookie-authenticated state-changing request must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The demo's login token: valid for this run only, never stored.
struct Ephemeral {
    secret: String,
    principal: Principal,
}

/// What the HTTP layer authenticates with. Built by the binary from `mw-security`.
pub struct Auth {
    authenticator: Arc<dyn Authenticator>,
    sessions: SessionStore,
    throttle: LoginThrottle,
    ephemeral: Option<Ephemeral>,
    secure_cookies: bool,
    events: Option<Publisher>,
}

impl Auth {
    /// Users and tokens from `authenticator`, default session and throttle settings.
    pub fn new(authenticator: Arc<dyn Authenticator>) -> Auth {
        Auth {
            authenticator,
            sessions: SessionStore::new(mw_security::SessionConfig::default()),
            throttle: LoginThrottle::new(mw_security::ThrottleConfig::default()),
            ephemeral: None,
            secure_cookies: false,
            events: None,
        }
    }

    /// Knows no users and no API tokens: only the login token `secret`, for `principal` (for a
    /// process whose only user is the one who started it, and for tests).
    pub fn token_only(secret: String, principal: Principal) -> Auth {
        struct Nobody;
        impl Authenticator for Nobody {
            fn password(&self, _: &str, _: &str) -> Result<Principal, AuthError> {
                Err(AuthError::Denied)
            }
            fn token(&self, _: &str) -> Result<Principal, AuthError> {
                Err(AuthError::UnknownToken)
            }
        }
        Auth::new(Arc::new(Nobody)).with_ephemeral_token(secret, principal)
    }

    /// Adds a login token valid for this process only, for `principal` (the demo's admin).
    pub fn with_ephemeral_token(mut self, secret: String, principal: Principal) -> Auth {
        self.ephemeral = Some(Ephemeral { secret, principal });
        self
    }

    /// Session cookies get `Secure` (set when the listener serves TLS).
    pub fn secure_cookies(mut self, yes: bool) -> Auth {
        self.secure_cookies = yes;
        self
    }

    /// Publishes audit events (logins, logouts, operator actions) on the bus.
    pub fn audit_to(mut self, publisher: Publisher) -> Auth {
        self.events = Some(publisher);
        self
    }

    pub(crate) async fn audit(&self, event: Event) {
        if let Some(p) = &self.events
            && p.publish_events(vec![event]).await.is_err()
        {
            tracing::warn!("audit event not published: the bus is closed");
        }
    }

    fn bearer(&self, token: &str) -> Result<Principal, AuthError> {
        self.bearer_with_basis(token).map(|(p, _)| p)
    }

    /// The token's principal, and what a session started with it rests on.
    fn bearer_with_basis(&self, token: &str) -> Result<(Principal, SessionBasis), AuthError> {
        if let Some(e) = &self.ephemeral
            && mw_security::constant_time_eq(e.secret.as_bytes(), token.as_bytes())
        {
            return Ok((e.principal.clone(), SessionBasis::Process));
        }
        let p = self.authenticator.token(token)?;
        let id = mw_security::token_id(token).ok_or(AuthError::MalformedToken)?;
        Ok((p, SessionBasis::Token(id.to_owned())))
    }

    /// The session's principal if the session exists and what it was started with still holds
    /// (the user is enabled, the token valid); a session that no longer holds is ended.
    fn session(&self, id: &str) -> Result<Principal, AuthError> {
        let (p, basis) = self.sessions.lookup_with_basis(id, Instant::now())?;
        match self.authenticator.session(&p, &basis) {
            Ok(p) => Ok(p),
            Err(e) => {
                self.sessions.revoke(id);
                Err(e)
            }
        }
    }
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (the login page and its assets, `/health`).
    Public,
    /// A principal whose role allows this.
    Needs(Permission),
}

/// The access rule of every route (docs/security.md "HTTP endpoints and roles").
pub fn access(method: &Method, path: &str) -> Access {
    use Permission::*;
    match (method.as_str(), path) {
        (_, "/health" | "/login" | "/assets/login.js" | "/assets/app.css") => Access::Public,
        ("POST", "/api/v1/login") => Access::Public,
        ("POST", "/api/v1/sim/faults") => Access::Needs(InjectFault),
        ("POST", "/api/v1/detectors/relearn") => Access::Needs(ChangeDetectors),
        ("GET", "/api/v1/audit") => Access::Needs(ReadAudit),
        // alarm actions: POST /api/v1/alarms/{id}/{verb} (ids contain slashes)
        ("POST", p) if p.starts_with("/api/v1/alarms/") => {
            if p.ends_with("/ack") {
                Access::Needs(AcknowledgeAlarm)
            } else {
                Access::Needs(ShelveAlarm)
            }
        }
        ("POST", "/api/v1/write" | "/write" | "/api/v2/write") => Access::Needs(WriteData),
        ("POST", p) if p.starts_with("/api/v1/tags/") && p.ends_with("/write") => {
            Access::Needs(WriteEquipment)
        }
        // everything else — reading, logging out, unknown routes — needs a signed-in principal
        _ => Access::Needs(Read),
    }
}

/// Who a request comes from: the principal, and the session id when it came with the cookie.
/// `Ok(None)`: it offered nothing.
fn identify(auth: &Auth, req: &Request) -> Result<Option<(Principal, Option<String>)>, AuthError> {
    let h = req.headers();
    if let Some(v) = h.get(header::AUTHORIZATION) {
        let v = v.to_str().map_err(|_| AuthError::MalformedToken)?;
        let token = presented_token(v).ok_or(AuthError::MalformedToken)?;
        return auth.bearer(token.trim()).map(|p| Some((p, None)));
    }
    if let Some(id) = cookie(h, SESSION_COOKIE) {
        return auth.session(&id).map(|p| Some((p, Some(id))));
    }
    if let Some(cert) = req.extensions().get::<ClientCert>() {
        let user =
            mw_security::certs::client_cert_user(cert.der()).map_err(|_| AuthError::Denied)?;
        return auth
            .authenticator
            .certificate(&user)
            .map(|p| Some((p, None)));
    }
    Ok(None)
}

/// The API token of an `Authorization` header: `Bearer TOKEN`; `Token TOKEN` (what InfluxDB 2.x
/// clients and Telegraf send); `Basic` with the token as the password (InfluxDB 1.x clients; the
/// user name is ignored — a password is never checked here, so a request cannot make the server
/// hash one).
pub(crate) fn presented_token(v: &str) -> Option<String> {
    let (scheme, rest) = v.trim().split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => Some(rest.to_owned()),
        "basic" => {
            use base64::Engine as _;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            let (_, password) = text.split_once(':')?;
            Some(password.to_owned())
        }
        _ => None,
    }
}

/// A cookie's value from the `Cookie` headers.
pub(crate) fn cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The session's CSRF binding, for the page to embed (a request extension on requests that came
/// with a session cookie).
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

fn is_state_changing(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn unauthorized(req_path: &str, msg: &str) -> Response {
    if req_path == "/" {
        return Redirect::to("/login").into_response();
    }
    let mut r = crate::api::error(StatusCode::UNAUTHORIZED, msg);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"millwright\""),
    );
    r
}

/// The middleware: identifies the requester and applies [`access`].
pub(crate) async fn authorize(
    State(st): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let need = access(req.method(), req.uri().path());
    let who = identify(&st.auth, &req);
    let path = req.uri().path().to_owned();
    let (principal, session) = match (need, who) {
        (Access::Public, Ok(Some(found))) => (Some(found.0), found.1),
        (Access::Public, _) => (None, None),
        (Access::Needs(_), Ok(None)) => {
            return unauthorized(
                &path,
                "sign in first: send Authorization: Bearer TOKEN, or log in at /login",
            );
        }
        (Access::Needs(_), Err(e)) => return unauthorized(&path, &e.to_string()),
        (Access::Needs(p), Ok(Some((principal, session)))) => {
            if !principal.allows(p) {
                let needed = p.minimum_role();
                return crate::api::error(
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} has role {}; {} needs role {needed} or higher",
                        principal.name,
                        principal.role,
                        describe(req.method(), &path)
                    ),
                );
            }
            (Some(principal), session)
        }
    };
    if let Some(id) = &session {
        let binding = mw_security::session_binding(id);
        if is_state_changing(req.method()) && need != Access::Public {
            let sent = req
                .headers()
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !mw_security::constant_time_eq(sent.as_bytes(), binding.as_bytes()) {
                return crate::api::error(
                    StatusCode::FORBIDDEN,
                    "missing or wrong X-CSRF-Token: a request made with the session cookie must echo \
                     the page's csrf-token",
                );
            }
        }
        req.extensions_mut().insert(CsrfToken(binding));
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
    }
    next.run(req).await
}

fn describe(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

// ---- login and logout ------------------------------------------------------------------------

#[derive(serde::Deserialize)]
pub(crate) struct LoginQuery {
    token: Option<String>,
}

fn session_cookie(auth: &Auth, id: &str) -> HeaderValue {
    let secure = if auth.secure_cookies { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("mw_session=; Path=/"))
}

fn client_ip(
    req_addr: Option<&axum::Extension<ConnectInfo<SocketAddr>>>,
) -> Option<std::net::IpAddr> {
    req_addr.map(|c| c.0.0.ip())
}

/// `GET /login`: the login form, or with `?token=TOKEN` a session for that token and a
/// redirect to the overview.
pub(crate) async fn login_page(
    State(st): State<AppState>,
    addr: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Query(q): Query<LoginQuery>,
) -> Response {
    let Some(token) = q.token else {
        return login_form(&st.site_name, None);
    };
    let (result, basis) = match st.auth.bearer_with_basis(token.trim()) {
        Ok((p, b)) => (Ok(p), b),
        Err(e) => (Err(e), SessionBasis::Process),
    };
    let who = mw_security::token_id(token.trim())
        .unwrap_or("login-token")
        .to_owned();
    st.auth
        .audit(mw_security::auth_event(
            "http/login",
            &who,
            Via::Token,
            client_ip(addr.as_ref()),
            &result,
        ))
        .await;
    let p = match result {
        Ok(p) => p,
        Err(e) => {
            let mut r = login_form(&st.site_name, Some(&e.to_string()));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            return r;
        }
    };
    match st
        .auth
        .sessions
        .create_with(&p.name, p.role, basis, Instant::now())
    {
        Ok(id) => {
            let mut r = Redirect::to("/").into_response();
            r.headers_mut()
                .insert(header::SET_COOKIE, session_cookie(&st.auth, &id));
            r
        }
        Err(e) => crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn login_form(site: &str, error: Option<&str>) -> Response {
    let err = error.map_or(String::new(), |e| {
        format!("<p class=err id=error>{}</p>", crate::page::esc(e))
    });
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <title>Sign in — {site}</title><link rel=icon href='data:,'><link rel=stylesheet href='/assets/app.css'>\
         <script src='/assets/login.js' defer></script></head><body><main class=login><h1>{site}</h1>\
         <form id=login><label>User <input name=user id=user autocomplete=username required></label>\
         <label>Password <input name=password id=password type=password autocomplete=current-password required></label>\
         <button type=submit>Sign in</button></form>{err}<p id=status></p></main></body></html>",
        site = crate::page::esc(site),
    ))
    .into_response()
}

/// The login page's script, `GET /assets/login.js`.
pub(crate) const LOGIN_SCRIPT: &str = include_str!("../assets/login.js");

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    user: String,
    password: String,
}

pub(crate) fn parse_login_body(body: &[u8]) -> Result<(String, String), serde_json::Error> {
    serde_json::from_slice::<LoginBody>(body).map(|b| (b.user, b.password))
}

/// `POST /api/v1/login` `{"user", "password"}`: a session cookie, or 401 / 429.
pub(crate) async fn login(
    State(st): State<AppState>,
    addr: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    body: axum::body::Bytes,
) -> Response {
    let body: LoginBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return crate::api::error(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid login request: {e}; expected {{\"user\": NAME, \"password\": PASSWORD}}"
                ),
            );
        }
    };
    let ip = client_ip(addr.as_ref());
    let auth = st.auth.clone();
    let user = body.user.clone();
    let result = tokio::task::spawn_blocking(move || {
        mw_security::login(
            auth.authenticator.as_ref(),
            &auth.throttle,
            &body.user,
            &body.password,
            ip,
            Instant::now(),
        )
    })
    .await
    .unwrap_or(Err(AuthError::Denied));
    st.auth
        .audit(mw_security::auth_event(
            "http/login",
            &user,
            Via::Password,
            ip,
            &result,
        ))
        .await;
    match result {
        Ok(p) => match st.auth.sessions.create(&p.name, p.role, Instant::now()) {
            Ok(id) => {
                let mut r =
                    Json(json!({ "user": p.name, "role": p.role.as_str() })).into_response();
                r.headers_mut()
                    .insert(header::SET_COOKIE, session_cookie(&st.auth, &id));
                r
            }
            Err(e) => crate::api::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(AuthError::Throttled(wait)) => {
            let mut r = crate::api::error(
                StatusCode::TOO_MANY_REQUESTS,
                AuthError::Throttled(wait).to_string(),
            );
            if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        Err(e @ AuthError::Store(_)) => {
            tracing::error!(error = %e, "login failed on the user store");
            crate::api::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the user store cannot be read",
            )
        }
        Err(_) => crate::api::error(StatusCode::UNAUTHORIZED, AuthError::Denied.to_string()),
    }
}

/// `POST /api/v1/logout`: ends the session of the cookie (if any).
pub(crate) async fn logout(State(st): State<AppState>, req: Request) -> Response {
    let principal = req.extensions().get::<Principal>().cloned();
    if let Some(id) = cookie(req.headers(), SESSION_COOKIE) {
        st.auth.sessions.revoke(&id);
    }
    if let Some(p) = principal {
        st.auth
            .audit(Event::new(
                mw_model::now_ns(),
                "http/logout",
                mw_model::EventKind::Audit {
                    actor: p.name.clone(),
                    action: "logout".into(),
                    outcome: "ok".into(),
                    detail: format!("via={}", p.via.as_str()),
                },
            ))
            .await;
    }
    let mut r = Json(json!({ "signed_out": true })).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("mw_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/"),
    );
    r
}

/// `GET /api/v1/whoami`: the principal of the request.
pub(crate) async fn whoami(req: Request) -> Response {
    match req.extensions().get::<Principal>() {
        Some(p) => Json(json!({ "user": p.name, "role": p.role.as_str(), "via": p.via.as_str() }))
            .into_response(),
        None => crate::api::error(StatusCode::UNAUTHORIZED, "not signed in"),
    }
}

/// An operator action as an audit event (who did what to what, and how it ended).
pub(crate) fn action_event(
    p: &Principal,
    action: &str,
    target: &str,
    outcome: &str,
    detail: String,
) -> Event {
    Event::new(
        mw_model::now_ns(),
        "http/api",
        mw_model::EventKind::Audit {
            actor: p.name.clone(),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            detail: format!("target={target} role={} {detail}", p.role),
        },
    )
}

/// The role a route needs, as the docs table shows it (`-` for public ones).
pub fn minimum_role(method: &Method, path: &str) -> Option<Role> {
    match access(method, path) {
        Access::Public => None,
        Access::Needs(p) => Some(p.minimum_role()),
    }
}
