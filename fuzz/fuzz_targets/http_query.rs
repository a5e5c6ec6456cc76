//! The query strings of mw-web's API routes on arbitrary bytes, parsed as their handlers parse
//! them (`mw_web::fuzzing::query_strings`): axum's `Query` extractor into each route's query type,
//! then the route's checks — `/api/v1/query`'s `tag/from/to/agg/step`, `/api/v1/latest?tag=`, the
//! write routes' `precision`, the alarm list filters, alarm history `limit/since`, KPI `window_s`,
//! `?history=`, `?limit=` of recent samples and of the audit trail, `/login?token=`. None may panic,
//! an accepted value must lie in the range its handler relies on (asserted inside), and every
//! refusal must carry a message (it becomes the JSON body of the 400).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(routes) = mw_web::fuzzing::query_strings(data) {
        for (route, outcome) in routes {
            if let Err(m) = outcome {
                assert!(!m.trim().is_empty(), "{route}: a refusal without a message");
            }
        }
    }
});
