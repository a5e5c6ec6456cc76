//! mw-security's parsers of untrusted input on arbitrary bytes: an audit-trail line, a whole
//! audit log (both tail policies), and a presented API token (shape check and lookup in an
//! empty store).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mw_security::audit;

fuzz_target!(|data: &[u8]| {
    let _ = audit::verify(data, false);
    let _ = audit::verify(data, true);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = audit::parse_line(s);
        let _ = mw_security::token_id(s);
        if let Ok(store) = mw_security::TokenStore::open(std::path::Path::new("/nonexistent/mw-fuzz"))
        {
            assert!(store.authenticate_token(s).is_err());
        }
    }
});
