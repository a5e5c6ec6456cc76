//! `POST /api/v1/tags/{path}/write`: an operator writes a value to the equipment behind a tag
//! (a Modbus holding register or coil configured `writable = true`), through the process's
//! [`mw_bus::WriteRegistry`]. Needs `WriteEquipment` (operator); every attempt is audited
//! (`tag.write`, outcome `ok` or why not, refusals included; who, the tag, the value it had
//! (`old=`, the latest known) and the value asked for, the comment).
//!
//! Body: `{"value": NUMBER | BOOL | STRING, "comment": TEXT}` (`comment` optional). Answers:
//! | outcome | status |
//! |---|---|
//! | written, confirmed by the device | 200 `{"tag", "value", "written": true, "owner"}` |
//! | malformed body, invalid path | 400 |
//! | not writable (no owner) | 409 |
//! | refused by the owner (type, `write_min`/`write_max`, range) | 422 |
//! | the device did not take it (exception, disconnected) | 502 |
//! | the owner's queue is full, or it stopped | 503 with `Retry-After: 1` |
//! | no answer within [`WRITE_TIMEOUT`] (it may still be applied) | 504 |
//!
//! Without a registry (a process that builds none) the route answers 501.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mw_bus::WriteError;
use mw_model::{TagPath, Value};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::api::error;

/// How long the route waits for the owner's answer (well above a device's own timeout).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteBody {
    value: serde_json::Value,
    #[serde(default)]
    comment: String,
}

/// The model value of a JSON value: a bool, an integer (`I64`, or `U64` above `i64::MAX`), any
/// other number `F64`, a string; anything else is refused.
pub(crate) fn json_value(v: &serde_json::Value) -> Result<Value, String> {
    match v {
        serde_json::Value::Bool(b) => Ok(Value::Bool(*b)),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Value::I64(i))
            } else if let Some(u) = n.as_u64() {
                Ok(Value::U64(u))
            } else {
                n.as_f64()
                    .map(Value::F64)
                    .ok_or_else(|| format!("{n} is not a number Millwright can write"))
            }
        }
        serde_json::Value::String(s) => Ok(Value::string(s)),
        other => Err(format!(
            "\"value\" must be a number, true/false or a string, not {other}"
        )),
    }
}

/// The value and comment of a write body, or the message of the 400.
pub(crate) fn parse_write_body(body: &[u8]) -> Result<(Value, String), String> {
    let b: WriteBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "invalid write request: {e}; expected {{\"value\": NUMBER | true/false | STRING, \"comment\": TEXT}}"
        )
    })?;
    let value = json_value(&b.value).map_err(|m| format!("invalid write request: {m}"))?;
    Ok((value, b.comment))
}

fn status_of(e: &WriteError) -> StatusCode {
    match e {
        WriteError::NotWritable(_) => StatusCode::CONFLICT,
        WriteError::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        WriteError::Failed { .. } => StatusCode::BAD_GATEWAY,
        WriteError::Busy { .. } | WriteError::Gone { .. } => StatusCode::SERVICE_UNAVAILABLE,
        WriteError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// The handler, reached from `POST /api/v1/tags/{*rest}` when `rest` ends in `/write`.
pub(crate) async fn write(
    st: &AppState,
    who: Option<mw_security::Principal>,
    path_str: &str,
    body: &[u8],
) -> Response {
    let Some(registry) = st.writes.as_ref() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            "this process has no writable tags",
        );
    };
    let path = match TagPath::new(path_str) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid tag path {path_str:?}: {e}"),
            );
        }
    };
    let (value, comment) = match parse_write_body(body) {
        Ok(b) => b,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let Some(p) = who else {
        return error(StatusCode::UNAUTHORIZED, "sign in first");
    };
    let old = st
        .tags
        .latest(&path)
        .map_or_else(|| "none".to_owned(), |s| s.value.to_string());
    let origin = format!("http user {}", p.name);
    let result = registry
        .write(&path, value.clone(), origin, WRITE_TIMEOUT)
        .await;
    let (outcome, detail) = match &result {
        Ok(()) => ("ok", format!("old={old} value={value} comment={comment:?}")),
        Err(e) => (
            e.kind(),
            format!("old={old} value={value} comment={comment:?} reason={e}"),
        ),
    };
    st.auth
        .audit(crate::auth::action_event(
            &p,
            "tag.write",
            path.as_str(),
            outcome,
            detail,
        ))
        .await;
    match result {
        Ok(()) => Json(json!({
            "tag": path.as_str(),
            "value": crate::api::value_json(&value),
            "written": true,
            "owner": registry.owner(path.as_str()),
        }))
        .into_response(),
        Err(e) => {
            let status = status_of(&e);
            let mut r = error(status, e.to_string());
            if status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_map_to_model_values() {
        let j = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
        assert_eq!(json_value(&j("true")), Ok(Value::Bool(true)));
        assert_eq!(json_value(&j("-3")), Ok(Value::I64(-3)));
        assert_eq!(
            json_value(&j("18446744073709551615")),
            Ok(Value::U64(u64::MAX))
        );
        assert_eq!(json_value(&j("42.5")), Ok(Value::F64(42.5)));
        assert_eq!(json_value(&j("\"auto\"")), Ok(Value::string("auto")));
        assert!(json_value(&j("null")).unwrap_err().contains("not null"));
        assert!(json_value(&j("[1]")).is_err());
    }
}
