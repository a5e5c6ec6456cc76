//! The server-rendered overview page. No JavaScript bundle: the table is rendered here, and a
//! short script (`/assets/app.js`, embedded in the binary) refreshes values and sparklines from
//! `/api/v1/tags?history=120` every second (the page is fully readable without JavaScript) and,
//! when alarms are configured, keeps the banner of unacknowledged critical alarms and each
//! asset's status colour ([`crate::alarms::asset_status`]: its most urgent annunciated alarm,
//! `unknown` while an input is not good, else `ok`) current from the alarm stream
//! (`/api/v1/alarms/stream`, re-reading the list on each change) and the rows' quality. The
//! page has no inline script, handler or style, so it runs under the strict
//! [`crate::CONTENT_SECURITY_POLICY`].

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;
use mw_model::unit_info;

use crate::AppState;

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The page's style sheet, `GET /assets/app.css`.
const STYLE: &str = include_str!("../assets/app.css");

/// The page's script, `GET /assets/app.js`.
const SCRIPT: &str = include_str!("../assets/app.js");

/// The login page's script, `GET /assets/login.js`.
pub(crate) async fn login_script() -> axum::response::Response {
    asset("text/javascript; charset=utf-8", crate::auth::LOGIN_SCRIPT)
}

/// Boolean tags whose `true` deserves red: alarms, anomaly flags, trips, high/low switches
/// (the same rule as `ALARMISH` in the page script). A `running = true` is not an alarm.
fn is_alarmish(name: &str) -> bool {
    ["alarm", "anomal", "fault", "trip", "high", "low"]
        .iter()
        .any(|k| name.contains(k))
}

pub(crate) async fn index(
    State(st): State<AppState>,
    csrf: Option<axum::Extension<crate::auth::CsrfToken>>,
) -> Html<String> {
    let mut h = String::with_capacity(16 * 1024);
    let csrf = csrf.map_or(String::new(), |c| esc(&c.0.0));
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <meta name=csrf-token content='{csrf}'>\
         <title>{name} — Millwright</title><link rel=icon href='data:,'><link rel=stylesheet href='/assets/app.css'></head><body>\
         <header><h1>{name}</h1><span>Millwright {ver}</span><span id=status>live</span>\
         <span>{alarms}<a href='/api/v1/tags'>API</a> · <a href='/metrics'>metrics</a></span></header>{banner}<main>",
        name = esc(&st.site_name),
        ver = env!("CARGO_PKG_VERSION"),
        alarms = if st.alarms.is_some() {
            "<a href='/alarms'>alarms</a> · "
        } else {
            ""
        },
        banner = crate::alarms::banner(&st),
    );
    if st.faults.is_some() {
        h.push_str(
            "<section id=faults><h2>Simulator faults <small>ground truth: what the detectors should see \
             (POST /api/v1/sim/faults to inject)</small></h2><table>\
             <colgroup><col class=f1><col class=f2><col class=f3><col class=f4>\
             <col class=f5><col class=f6></colgroup><tbody id=faultrows>\
             <tr><td colspan=6>loading…</td></tr></tbody></table></section>",
        );
    }
    let detectors: Vec<crate::DetectorInfo> =
        st.detectors.as_ref().map(|d| d.list()).unwrap_or_default();
    let detector_assets: Vec<&str> = detectors.iter().map(|d| d.asset.as_str()).collect();
    let alarms = crate::alarms::asset_alarms(&st);
    for asset in st.tree.assets().filter(|a| !a.tags.is_empty()) {
        let button = if detector_assets.contains(&asset.path.as_str()) {
            format!(
                "<button class=relearn data-asset='{}' \
                 title='The anomaly detectors forget what they learnt and warm up again'>re-learn</button>",
                esc(asset.path.as_str())
            )
        } else {
            String::new()
        };
        let latest: Vec<Option<mw_model::Sample>> =
            asset.tags.iter().map(|d| st.tags.latest(&d.path)).collect();
        // Without alarms the page judges no asset (no colour, no badge); the rows still show
        // each input's quality.
        let (class, label) = if st.alarms.is_some() {
            let unknown = latest
                .iter()
                .filter(|s| crate::alarms::input_unknown(s.as_ref()))
                .count();
            crate::alarms::asset_status(
                alarms.get(asset.path.as_str()).copied().unwrap_or_default(),
                unknown,
            )
        } else {
            (String::new(), String::new())
        };
        let _ = write!(
            h,
            "<section class='asset{class}' data-asset='{path}'><h2>{button}{} <small>{} · {}</small>\
             <span class='astat{class}'>{label}</span></h2><table>\
             <colgroup><col class=n><col class=v><col class=u><col class=q><col class=s><col class=t></colgroup>",
            esc(asset.path.rsplit('/').next().unwrap_or(&asset.path)),
            esc(asset.kind.as_str()),
            esc(if asset.description.is_empty() {
                &asset.path
            } else {
                &asset.description
            }),
            path = esc(asset.path.as_str()),
            label = esc(&label),
        );
        let beyond = asset.tags.iter().zip(&latest).any(|(d, s)| {
            d.path.name() == "rul_upper"
                && s.as_ref().and_then(|s| s.quality.reason()) == Some(RUL_BEYOND)
        });
        for (def, latest) in asset.tags.iter().zip(latest) {
            let rul = is_rul(def.path.name(), def.unit.as_deref());
            // a row without a value is marked `nodata` too, so the script can tell it from an
            // uncertain value when it recomputes the asset's status
            let (value, quality, qclass, reason, ts) = match &latest {
                Some(s) => (
                    match &s.value {
                        mw_model::Value::F64(f) if !f.is_finite() => "—".to_owned(),
                        mw_model::Value::F64(f) if rul && beyond && def.path.name() == "rul" => {
                            format!("beyond {}", duration_text(*f))
                        }
                        mw_model::Value::F64(f) if rul => duration_text(*f),
                        mw_model::Value::F64(f) => format!("{f:.2}"),
                        mw_model::Value::F32(f) if !f.is_finite() => "—".to_owned(),
                        mw_model::Value::F32(f) => format!("{f:.2}"),
                        v => v.to_string(),
                    },
                    s.quality.status(),
                    s.quality.status(),
                    s.quality.reason().unwrap_or(""),
                    mw_model::format_rfc3339_ns(s.source_ts)
                        .get(11..19)
                        .unwrap_or("")
                        .to_owned(),
                ),
                None => (
                    "—".to_owned(),
                    "uncertain",
                    "uncertain nodata",
                    "no data received yet",
                    String::new(),
                ),
            };
            // a detector's score and flag: warm-up as a countdown, not as a quality problem; the
            // flag names the inputs behind the latest onset
            let det = detectors
                .iter()
                .find(|d| d.score_tag == def.path.as_str() || d.flag_tag == def.path.as_str());
            let is_flag = det.is_some_and(|d| d.flag_tag == def.path.as_str());
            let (quality, qclass, reason) = match det {
                Some(d) if d.state.warming_up => {
                    let (text, why) = warmup_text(&d.state);
                    (text, "warmup".to_owned(), why)
                }
                _ => (quality.to_owned(), qclass.to_owned(), reason.to_owned()),
            };
            let contrib = match det {
                Some(d) if is_flag => format!(
                    "<small class=contrib data-flag='{}'>{}</small>",
                    esc(&d.flag_tag),
                    esc(&contributors_text(&d.state))
                ),
                _ => String::new(),
            };
            let unit = def
                .unit
                .as_deref()
                .filter(|_| !rul)
                .and_then(unit_info)
                .map(|u| u.symbol)
                .unwrap_or("");
            let _ = write!(
                h,
                "<tr id='t:{path}' title='{desc}'><td>{name}{contrib}</td><td class='v{on}'>{value}</td><td class=u>{unit}</td>\
                 <td class=q><span class='{qclass}' title='{reason}'>{quality}</span></td>\
                 <td><svg class=spark viewBox='0 0 120 22' preserveAspectRatio=none><polyline points=''/></svg></td>\
                 <td class=ts>{ts}</td></tr>",
                path = esc(def.path.as_str()),
                on = if latest
                    .as_ref()
                    .is_some_and(|s| s.value == mw_model::Value::Bool(true))
                    && is_alarmish(def.path.name())
                {
                    " on"
                } else {
                    ""
                },
                desc = esc(&def.description),
                name = esc(def.path.name()),
                value = esc(&value),
                unit = esc(unit),
                reason = esc(&reason),
                quality = esc(&quality),
            );
        }
        h.push_str("</table></section>");
    }
    h.push_str("<section id=sources><h2>Sources</h2><table>");
    for s in st.sources.snapshot() {
        let (state, class) = match &s.state {
            mw_bus::SourceState::Starting => ("starting".to_owned(), "uncertain"),
            mw_bus::SourceState::Up => ("up".to_owned(), "good"),
            mw_bus::SourceState::Down(r) => (format!("down: {r}"), "bad"),
        };
        let _ = write!(
            h,
            "<tr><td>{}/{}</td><td class=q><span class={class}>{}</span></td><td>{} polls</td></tr>",
            esc(&s.component),
            esc(&s.instance),
            esc(&state),
            s.cycles
        );
    }
    let _ = write!(
        h,
        "</table></section></main><script src='/assets/app.js'></script></body></html>"
    );
    Html(h)
}

/// A detector's warm-up as the page shows it in place of the quality: the countdown, and the
/// reason (for the title) — e.g. `warm-up 2 min 13 s` (133 rows left at the inputs' interval), or
/// `warm-up waiting` while the data is unstable. `assets/app.js` renders the same.
pub(crate) fn warmup_text(s: &crate::DetectorState) -> (String, String) {
    let rows = s.warmup_rows_left;
    let time = s.warmup_seconds_left.filter(|x| x.is_finite()).map(|secs| {
        let secs = secs.ceil() as u64;
        if secs >= 60 {
            format!("{} min {} s", secs / 60, secs % 60)
        } else {
            format!("{secs} s")
        }
    });
    let plural = if rows == 1 { "" } else { "s" };
    match &s.unstable {
        Some(why) => (
            "warm-up waiting".to_owned(),
            format!("{why} (at least {rows} more row{plural})"),
        ),
        None => (
            format!("warm-up {}", time.unwrap_or_else(|| format!("{rows} rows"))),
            format!(
                "learning normal behaviour: {rows} more row{plural} of {}",
                s.warmup_rows
            ),
        ),
    }
}

/// The inputs behind a detector's latest alarm onset, as the page names them next to its flag
/// (tag names with their shares in per cent; `last:` once the alarm has ended; empty before
/// the first onset).
pub(crate) fn contributors_text(s: &crate::DetectorState) -> String {
    if s.contributors.is_empty() {
        return String::new();
    }
    let names: Vec<String> = s
        .contributors
        .iter()
        .map(|(t, share)| {
            format!(
                "{} {:.0} %",
                t.rsplit('/').next().unwrap_or(t),
                share * 100.0
            )
        })
        .collect();
    let names = names.join(" · ");
    if s.anomalous {
        names
    } else {
        format!("last: {names}")
    }
}

pub(crate) fn asset(content_type: &'static str, body: &'static str) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn script() -> axum::response::Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> axum::response::Response {
    asset("text/css; charset=utf-8", STYLE)
}

/// The reason of `ASSET/rul_upper` (no value) while the RUL estimate is beyond its horizon; `ASSET/rul` then
/// holds the horizon (docs/pdm.md "Live RUL").
const RUL_BEYOND: &str = "beyond the horizon";

/// `ASSET/rul`, `rul_lower`, `rul_upper` in hours: shown as durations (the rule of `rulText` in the page script).
fn is_rul(name: &str, unit: Option<&str>) -> bool {
    unit == Some("h") && matches!(name, "rul" | "rul_lower" | "rul_upper")
}

/// Hours as a duration an operator reads at a glance: "12 min", "2 h 10 min", "3 days 4 h" (`dur` in the page
/// script).
fn duration_text(h: f64) -> String {
    if h <= 0.0 {
        return "0 min".to_owned();
    }
    let m = (h * 60.0).round();
    if m < 1.0 {
        return "< 1 min".to_owned();
    }
    if m < 60.0 {
        return format!("{m} min");
    }
    let (hh, mm) = ((m / 60.0).floor(), m % 60.0);
    if hh < 24.0 {
        return if mm > 0.0 {
            format!("{hh} h {mm} min")
        } else {
            format!("{hh} h")
        };
    }
    let whole = h.round();
    let (d, rh) = ((whole / 24.0).floor(), whole % 24.0);
    let days = if d == 1.0 { "day" } else { "days" };
    if rh > 0.0 {
        format!("{d} {days} {rh} h")
    } else {
        format!("{d} {days}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rul_durations_read_as_days_hours_minutes() {
        let cases = [
            (0.0, "0 min"),
            (0.005, "< 1 min"),
            (0.2, "12 min"),
            (2.1667, "2 h 10 min"),
            (23.99, "23 h 59 min"),
            (24.0, "1 day"),
            (47.9, "2 days"),
            (76.0, "3 days 4 h"),
            (720.0, "30 days"),
        ];
        for (h, text) in cases {
            assert_eq!(duration_text(h), text, "{h} h");
        }
        assert!(is_rul("rul", Some("h")) && is_rul("rul_upper", Some("h")));
        assert!(!is_rul("rul", Some("min")) && !is_rul("flow", Some("h")));
    }
}
