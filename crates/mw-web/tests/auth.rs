//! Authentication and use control, walking the table of docs/security.md ("HTTP endpoints and
//! roles"): every route of the router is in it, and every row is sent with every role's token,
//! anonymously and with bad tokens; then password login, sessions, CSRF, throttling, and that no
//! secret comes back in an answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use mw_model::{Sample, TagPath};
use mw_security::{HashParams, LocalAuthenticator, Role, TokenStore, UserStore};
use mw_web::{AppState, TagStore};
use tower::ServiceExt;

struct NoTags;

impl TagStore for NoTags {
    fn latest(&self, _: &TagPath) -> Option<Sample> {
        None
    }
    fn latest_all(&self) -> Vec<Sample> {
        Vec::new()
    }
    fn recent(&self, _: &TagPath, _: usize) -> Option<Vec<Sample>> {
        None
    }
    fn window(&self) -> usize {
        10
    }
}

const ROLES: [Role; 4] = [Role::Viewer, Role::Operator, Role::Engineer, Role::Admin];
const PASSWORD: &str = "correct horse battery";

struct Fixture {
    _dir: TempDir,
    state: AppState,
    tokens: Vec<(Role, String)>,
    expired: String,
    revoked: String,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("mw-web-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cheap = HashParams {
        m_kib: 1024,
        t: 1,
        p: 1,
    };
    let mut users = UserStore::open(&dir).unwrap().with_params(cheap);
    for r in ROLES {
        users.add(&format!("u-{r}"), r, PASSWORD).unwrap();
    }
    users.add("u-off", Role::Admin, PASSWORD).unwrap();
    users.set_disabled("u-off", true).unwrap();
    let mut ts = TokenStore::open(&dir).unwrap();
    let tokens = ROLES
        .iter()
        .map(|&r| {
            let t = ts
                .create(&format!("t-{r}"), r, Duration::from_secs(3600), "test")
                .unwrap();
            (r, t.token)
        })
        .collect();
    let expired = ts
        .create("t-old", Role::Admin, Duration::from_millis(1), "test")
        .unwrap()
        .token;
    let revoked_t = ts
        .create("t-gone", Role::Admin, Duration::from_secs(3600), "test")
        .unwrap();
    ts.revoke(&revoked_t.id).unwrap();
    std::thread::sleep(Duration::from_millis(5)); // let "t-old" expire
    let auth = LocalAuthenticator::open(&dir).unwrap();
    let state = AppState::new(
        "t",
        Arc::new(NoTags),
        Arc::new(mw_web::Auth::new(Arc::new(auth))),
    );
    Fixture {
        _dir: TempDir(dir),
        state,
        tokens,
        expired,
        revoked: revoked_t.token,
    }
}

/// The rows of the table in docs/security.md: (method, path, least role; None = public).
fn table() -> Vec<(Method, String, Option<Role>)> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/security.md");
    let text = std::fs::read_to_string(&doc).expect("docs/security.md");
    let section = text
        .split("## HTTP endpoints and roles")
        .nth(1)
        .expect("the section in docs/security.md");
    let mut rows = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() != 5 || !matches!(cells[1], "GET" | "POST") {
            continue;
        }
        let method: Method = cells[1].parse().unwrap();
        let path = cells[2].trim_matches('`').to_owned();
        let role = match cells[3] {
            "public" => None,
            r => Some(
                r.parse::<Role>()
                    .unwrap_or_else(|_| panic!("bad role {r:?} in the table")),
            ),
        };
        rows.push((method, path, role));
    }
    rows
}

async fn send(
    st: &AppState,
    method: &Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method.clone()).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = if *method == Method::POST {
        req = req.header("content-type", "application/json");
        Body::from("{}")
    } else {
        Body::empty()
    };
    let resp = mw_web::router(st.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn every_route_of_the_router_is_in_the_table() {
    let rows = table();
    assert!(rows.len() >= 20, "{} rows", rows.len());
    let src =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for route in src.split(".route(\"").skip(1) {
        let path = route.split('"').next().unwrap();
        let prefix = path.split("{*").next().unwrap();
        assert!(
            rows.iter()
                .any(|(_, p, _)| p == path || (path.contains("{*") && p.starts_with(prefix))),
            "route {path} is not in the table of docs/security.md"
        );
    }
    for (m, p, role) in &rows {
        assert_eq!(
            mw_web::auth::minimum_role(m, p),
            *role,
            "{m} {p}: the table and mw_web::access disagree"
        );
    }
}

#[tokio::test]
async fn every_row_with_every_role_and_every_bad_credential() {
    let fx = fixture("walk");
    let bearer = |t: &str| format!("Bearer {t}");
    for (method, path, least) in table() {
        // anonymous and bad tokens: public rows are served, the others refused with 401
        let bad = [
            None,
            Some(bearer(&fx.expired)),
            Some(bearer(&fx.revoked)),
            Some(bearer("mw_nonsense")),
            Some(bearer(
                "mw_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            )),
            Some("Basic dXNlcjpwdw==".to_owned()),
        ];
        for cred in &bad {
            let h: Vec<(&str, &str)> = cred.iter().map(|c| ("authorization", c.as_str())).collect();
            let (st, body) = send(&fx.state, &method, &path, &h).await;
            match least {
                None => assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN
                        || path == "/api/v1/login",
                    "{method} {path} is public, got {st} with {cred:?}: {body}"
                ),
                Some(_) if path == "/" => assert_eq!(
                    st,
                    StatusCode::SEE_OTHER,
                    "the page sends a visitor without valid credentials to /login"
                ),
                Some(_) => assert_eq!(
                    st,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {cred:?}: {body}"
                ),
            }
        }
        for (role, token) in &fx.tokens {
            let auth = bearer(token);
            let (st, body) = send(&fx.state, &method, &path, &[("authorization", &auth)]).await;
            let allowed = least.is_none_or(|need| *role >= need);
            if allowed {
                assert!(
                    st != StatusCode::UNAUTHORIZED && st != StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: must be allowed, got {st}: {body}"
                );
            } else {
                assert_eq!(
                    st,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role}: {body}"
                );
                assert!(body.contains("needs role"), "{body}");
            }
            assert!(
                !body.contains(token.as_str()),
                "a secret came back in the answer"
            );
        }
    }
}

fn set_cookie(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn login(st: &AppState, user: &str, pw: &str) -> (StatusCode, Option<String>, String) {
    let body = serde_json::json!({ "user": user, "password": pw }).to_string();
    let req = Request::post("/api/v1/login")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = mw_web::router(st.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let cookie = set_cookie(resp.headers());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, cookie, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn password_login_gives_a_strict_session_cookie_and_csrf_guards_its_writes() {
    let fx = fixture("session");
    let (st, cookie, body) = login(&fx.state, "u-engineer", PASSWORD).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let cookie = cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "no TLS here: {cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    // reading with the cookie works
    let (s, b) = send(
        &fx.state,
        &Method::GET,
        "/api/v1/whoami",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(b.contains("\"role\":\"engineer\""), "{b}");
    // the page carries the CSRF binding
    let (s, page) = send(&fx.state, &Method::GET, "/", &[("cookie", &pair)]).await;
    assert_eq!(s, StatusCode::OK);
    let csrf = page
        .split("name=csrf-token content='")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("csrf meta")
        .to_owned();
    assert_eq!(csrf.len(), 64);
    // a write with the cookie but without the token is refused; with it, it passes the gate
    let (s, b) = send(
        &fx.state,
        &Method::POST,
        "/api/v1/detectors/relearn",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
    assert!(b.contains("X-CSRF-Token"), "{b}");
    let (s, b) = send(
        &fx.state,
        &Method::POST,
        "/api/v1/detectors/relearn",
        &[("cookie", &pair), ("x-csrf-token", "0".repeat(64).as_str())],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a wrong token: {b}");
    let (s, b) = send(
        &fx.state,
        &Method::POST,
        "/api/v1/detectors/relearn",
        &[("cookie", &pair), ("x-csrf-token", &csrf)],
    )
    .await;
    assert!(
        s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED,
        "{s}: {b}"
    );
    // logout ends the session
    let (s, _) = send(
        &fx.state,
        &Method::POST,
        "/api/v1/logout",
        &[("cookie", &pair), ("x-csrf-token", &csrf)],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        &fx.state,
        &Method::GET,
        "/api/v1/whoami",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "the session ended");
}

#[tokio::test]
async fn wrong_passwords_disabled_users_and_throttling() {
    let fx = fixture("login");
    let (s, c, b) = login(&fx.state, "u-viewer", "wrong password!").await;
    assert_eq!((s, c.is_none()), (StatusCode::UNAUTHORIZED, true), "{b}");
    assert!(
        !b.contains("wrong password!"),
        "no secret in the answer: {b}"
    );
    let (s, _, b) = login(&fx.state, "u-off", PASSWORD).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a disabled user: {b}");
    let (s, _, _) = login(&fx.state, "nobody", PASSWORD).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // keep failing: the throttle answers 429 before checking the password
    let mut throttled = false;
    for _ in 0..12 {
        let (s, _, _) = login(&fx.state, "u-admin", "not the password").await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "repeated failures must be throttled");
    let (s, _, _) = login(&fx.state, "u-admin", PASSWORD).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits its turn"
    );
}

#[tokio::test]
async fn a_login_token_link_opens_a_session() {
    let fx = fixture("link");
    let (_, token) = &fx.tokens[0];
    let (s, _) = send(
        &fx.state,
        &Method::GET,
        &format!("/login?token={token}"),
        &[],
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, body) = send(&fx.state, &Method::GET, "/login?token=mw_bad", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(body.contains("malformed token"), "{body}");
}
