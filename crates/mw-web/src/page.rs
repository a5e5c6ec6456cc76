//! The server-rendered overview page. No JavaScript bundle: the table is rendered here, and a
//! short inline script refreshes values and sparklines from `/api/v1/tags?history=120` every
//! second (the page is fully readable without JavaScript).

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

const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:baseline}
header h1{font-size:18px;margin:0} header span{opacity:.75;font-size:13px}
main{padding:12px 20px;display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:14px}
section{background:#fff;border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.12);padding:8px 12px}
section h2{font-size:14px;margin:4px 0 6px} section h2 small{font-weight:normal;color:#667}
button.relearn{float:right;font-size:11px;padding:1px 6px;border:1px solid #99a;border-radius:4px;background:#fff;cursor:pointer}
table{border-collapse:collapse;width:100%;font-size:13px;table-layout:fixed}
col.n{width:32%} col.v{width:15%} col.u{width:9%} col.q{width:12%} col.s{width:22%} col.t{width:10%}
td.v.on{color:#b42318} td.ts{color:#778;font-size:11px;text-align:right}
td{padding:3px 4px;border-top:1px solid #eef} td.v{text-align:right;font-variant-numeric:tabular-nums;font-weight:600}
td.u{color:#556;width:52px} td.q span{font-size:11px;padding:1px 5px;border-radius:8px}
.good{background:#dff3e4;color:#17612c} .bad{background:#fde2e1;color:#9b1c1c} .uncertain{background:#fff2cc;color:#7a5b00}
svg.spark{width:120px;height:22px} svg.spark polyline{fill:none;stroke:#2f6fde;stroke-width:1.3}
#sources{font-size:12px} #faults{grid-column:1/-1;font-size:12px} #faults td{white-space:nowrap}
"#;

const SCRIPT: &str = r#"
const ALARMISH=/alarm|anomal|fault|trip|high|low/;
function fmt(v){if(v===null||v===undefined)return '—';if(typeof v==='number'){const a=Math.abs(v);return a>=1000?v.toFixed(0):a>=100?v.toFixed(1):a>=1?v.toFixed(2):v.toFixed(3);}return String(v);}
function spark(h){const pts=h.map((v,i)=>[i,v]).filter(p=>typeof p[1]==='number');if(pts.length<2)return '';
let lo=Math.min(...pts.map(p=>p[1])),hi=Math.max(...pts.map(p=>p[1]));if(hi===lo){hi+=1;lo-=1;}
const n=Math.max(h.length-1,1);return pts.map(p=>(p[0]*120/n).toFixed(1)+','+(21-(p[1]-lo)*20/(hi-lo)).toFixed(1)).join(' ');}
async function refresh(){try{const r=await fetch('/api/v1/tags?history=120');const j=await r.json();
for(const t of j.tags){const row=document.getElementById('t:'+t.path);if(!row)continue;
const vc=row.querySelector('.v');vc.textContent=fmt(t.value);vc.classList.toggle('on',t.value===true&&ALARMISH.test(t.path.split('/').pop()));
const q=row.querySelector('.q span');q.textContent=t.quality;q.className=t.quality;q.title=t.reason||'';
row.querySelector('.ts').textContent=t.ts?t.ts.substring(11,19):'';
const pl=row.querySelector('polyline');if(pl&&t.history)pl.setAttribute('points',spark(t.history));}
document.getElementById('status').textContent='updated '+new Date().toLocaleTimeString();}
catch(e){document.getElementById('status').textContent='connection lost — retrying';}}
async function faults(){const tb=document.getElementById('faultrows');if(!tb)return;
try{const r=await fetch('/api/v1/sim/faults');const j=await r.json();
const rows=j.faults.slice(-8).reverse().map(f=>'<tr><td>'+f.id+'</td><td>'+esc(f.kind)+'</td><td>'+esc(f.asset.split('/').pop())+
(f.point?' / '+esc(f.point):'')+'</td><td class=q><span class='+(f.active?'bad':'good')+'>'+(f.active?'active':'ended')+
'</span></td><td>'+f.wall_start.substring(11,19)+' → '+f.wall_end.substring(11,19)+'</td><td>'+esc(f.origin)+'</td></tr>');
tb.innerHTML=rows.join('')||'<tr><td colspan=6>no faults yet</td></tr>';}catch(e){}}
async function relearn(b){const a=b.dataset.asset;
if(!confirm('Re-learn normal behaviour for '+a+'?\nIts anomaly detectors forget what they learnt and warm up again on the data from now on (after a repair or a deliberate change).'))return;
try{const r=await fetch('/api/v1/detectors/relearn',{method:'POST',headers:{'content-type':'application/json'},body:JSON.stringify({asset:a})});
const j=await r.json();document.getElementById('status').textContent=r.ok?('re-learning '+a):('re-learn failed: '+(j.error||r.status));}
catch(e){document.getElementById('status').textContent='re-learn failed: '+e;}}
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
setInterval(refresh,1000);refresh();setInterval(faults,2000);faults();
"#;

/// Boolean tags whose `true` deserves red: alarms, anomaly flags, trips, high/low switches
/// (the same rule as `ALARMISH` in the page script). A `running = true` is not an alarm.
fn is_alarmish(name: &str) -> bool {
    ["alarm", "anomal", "fault", "trip", "high", "low"]
        .iter()
        .any(|k| name.contains(k))
}

pub(crate) async fn index(State(st): State<AppState>) -> Html<String> {
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
         <title>{name} — Millwright</title><style>{STYLE}</style></head><body>\
         <header><h1>{name}</h1><span>Millwright {ver}</span><span id=status>live</span>\
         <span><a style='color:#9cf' href='/api/v1/tags'>API</a> · <a style='color:#9cf' href='/metrics'>metrics</a></span></header><main>",
        name = esc(&st.site_name),
        ver = env!("CARGO_PKG_VERSION"),
    );
    if st.faults.is_some() {
        h.push_str(
            "<section id=faults><h2>Simulator faults <small>ground truth: what the detectors should see \
             (POST /api/v1/sim/faults to inject)</small></h2><table>\
             <colgroup><col style='width:5%'><col style='width:15%'><col style='width:30%'><col style='width:10%'>\
             <col style='width:25%'><col style='width:15%'></colgroup><tbody id=faultrows>\
             <tr><td colspan=6>loading…</td></tr></tbody></table></section>",
        );
    }
    let detector_assets: Vec<String> = st
        .detectors
        .as_ref()
        .map(|d| d.list().into_iter().map(|i| i.asset).collect())
        .unwrap_or_default();
    for asset in st.tree.assets().filter(|a| !a.tags.is_empty()) {
        let button = if detector_assets.iter().any(|a| a == asset.path.as_str()) {
            format!(
                "<button class=relearn data-asset='{}' onclick='relearn(this)' \
                 title='The anomaly detectors forget what they learnt and warm up again'>re-learn</button>",
                esc(asset.path.as_str())
            )
        } else {
            String::new()
        };
        let _ = write!(
            h,
            "<section><h2>{button}{} <small>{} · {}</small></h2><table>\
             <colgroup><col class=n><col class=v><col class=u><col class=q><col class=s><col class=t></colgroup>",
            esc(asset.path.rsplit('/').next().unwrap_or(&asset.path)),
            esc(asset.kind.as_str()),
            esc(if asset.description.is_empty() {
                &asset.path
            } else {
                &asset.description
            }),
        );
        for def in &asset.tags {
            let latest = st.tags.latest(&def.path);
            let (value, quality, reason, ts) = match &latest {
                Some(s) => (
                    match &s.value {
                        mw_model::Value::F64(f) if !f.is_finite() => "—".to_owned(),
                        mw_model::Value::F64(f) => format!("{f:.2}"),
                        v => v.to_string(),
                    },
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
                    "no data received yet",
                    String::new(),
                ),
            };
            let unit = def
                .unit
                .as_deref()
                .and_then(unit_info)
                .map(|u| u.symbol)
                .unwrap_or("");
            let _ = write!(
                h,
                "<tr id='t:{path}' title='{desc}'><td>{name}</td><td class='v{on}'>{value}</td><td class=u>{unit}</td>\
                 <td class=q><span class={quality} title='{reason}'>{quality}</span></td>\
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
                reason = esc(reason),
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
        "</table></section></main><script>{SCRIPT}</script></body></html>"
    );
    Html(h)
}
