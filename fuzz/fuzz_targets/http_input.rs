//! mw-web's parsers of untrusted request input on arbitrary bytes: every JSON request body the
//! API deserializes (login, fault injection, detector re-learn, tag write), a line-protocol write body with
//! its positions, the `Authorization` header's token forms, and the session-cookie lookup in
//! `Cookie` headers. None may panic; a value found in a cookie must occur in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mw_web::fuzzing::json_bodies(data);
    let _ = mw_web::fuzzing::write_body(data);
    let _ = mw_web::fuzzing::authorization(data);
    if let Some(v) = mw_web::fuzzing::session_cookie(data) {
        assert!(
            data.windows(v.len().max(1)).any(|w| w == v.as_bytes()) || v.is_empty(),
            "cookie value not in the input"
        );
    }
});
