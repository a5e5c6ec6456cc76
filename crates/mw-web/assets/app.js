// The overview page's script (served as /assets/app.js; the CSP allows no inline script):
// refreshes values and sparklines every second, the simulator's faults every two, keeps the
// alarm banner and each asset's status current, and wires the re-learn buttons.
"use strict";
const ALARMISH=/alarm|anomal|fault|trip|high|low/;
// Per asset (path) its alarm status {p: priority index, u: unacknowledged, sh: alarms shelved}, once the alarm
// list was read.
let AST=null;
// The page lost its server (a refresh or the alarm list failed) or its alarm stream: every asset is unknown until
// both are back, never its last colour.
let TAGS_LOST=false,STREAM_LOST=false;
function fmt(v){if(v===null||v===undefined)return '—';if(typeof v==='number'){const a=Math.abs(v);return a>=1000?v.toFixed(0):a>=100?v.toFixed(1):a>=1?v.toFixed(2):v.toFixed(3);}return String(v);}
// A remaining-useful-life tag (ASSET/rul, rul_lower, rul_upper: hours) reads as a duration — "12 min", "2 h 10 min",
// "3 days 4 h" — and "beyond 30 days" while the estimate is beyond its horizon (rul = the horizon, rul_lower and rul_upper empty
// with reason "beyond the horizon"; docs/pdm.md "Live RUL"). Other tags: null.
function dur(h){if(typeof h!=='number')return '—';if(h<=0)return '0 min';const m=Math.round(h*60);if(m<1)return '< 1 min';
if(m<60)return m+' min';const hh=Math.floor(m/60),mm=m%60;if(hh<24)return hh+' h'+(mm?' '+mm+' min':'');
const w=Math.round(h),d=Math.floor(w/24),rh=w%24;return d+(d===1?' day':' days')+(rh?' '+rh+' h':'');}
function rulText(t,by){const nm=t.path.split('/').pop();if(t.unit!=='h'||!/^rul(_lower|_upper)?$/.test(nm))return null;
const up=by[t.path.slice(0,-nm.length)+'rul_upper'];const beyond=!!up&&up.reason==='beyond the horizon';
if(nm==='rul'&&beyond)return 'beyond '+dur(t.value);return dur(t.value);}
function spark(h){const pts=h.map((v,i)=>[i,v]).filter(p=>typeof p[1]==='number');if(pts.length<2)return '';
let lo=Math.min(...pts.map(p=>p[1])),hi=Math.max(...pts.map(p=>p[1]));if(hi===lo){hi+=1;lo-=1;}
const n=Math.max(h.length-1,1);return pts.map(p=>(p[0]*120/n).toFixed(1)+','+(21-(p[1]-lo)*20/(hi-lo)).toFixed(1)).join(' ');}
async function refresh(){const dp=HAS_DET?fetch('/api/v1/detectors').then(r=>r.ok?r.json():null).catch(()=>null):null;
try{const r=await fetch('/api/v1/tags?history=120');if(!r.ok)throw new Error(r.status);const j=await r.json();
const by={};for(const t of j.tags)by[t.path]=t;
for(const t of j.tags){const row=document.getElementById('t:'+t.path);if(!row)continue;
const vc=row.querySelector('.v');const rt=rulText(t,by);vc.textContent=rt===null?fmt(t.value):rt;if(rt!==null)row.querySelector('.u').textContent='';vc.classList.toggle('on',t.value===true&&ALARMISH.test(t.path.split('/').pop()));
const q=row.querySelector('.q span');q.textContent=t.quality;q.className=t.quality+(t.ts?'':' nodata');q.title=t.reason||'';
row.querySelector('.ts').textContent=t.ts?t.ts.substring(11,19):'';
const pl=row.querySelector('polyline');if(pl&&t.history)pl.setAttribute('points',spark(t.history));}
if(dp)detectors(await dp);TAGS_LOST=false;paint();
document.getElementById('status').textContent='updated '+new Date().toLocaleTimeString();}
catch(e){TAGS_LOST=true;paint();document.getElementById('status').textContent='connection lost — retrying';}}
// The detectors' warm-up replaces the quality of their score and flag rows by a countdown (it is not a
// quality problem), and the flag row names the inputs behind the latest alarm onset (page.rs renders the same).
const HAS_DET=document.querySelector('small.contrib')!==null;
function warmupText(d){const w=d.warmup,n=w.rows_left,pl=n===1?'':'s';
if(w.unstable)return ['warm-up waiting',w.unstable+' (at least '+n+' more row'+pl+')'];
let t=n+' rows';if(typeof w.seconds_left==='number'){const s=Math.ceil(w.seconds_left);t=s>=60?Math.floor(s/60)+' min '+(s%60)+' s':s+' s';}
return ['warm-up '+t,'learning normal behaviour: '+n+' more row'+pl+' of '+w.rows];}
function contribText(d){if(!d.contributors.length)return '';
const s=d.contributors.map(c=>c.tag.split('/').pop()+' '+Math.round(c.share*100)+' %').join(' · ');return d.anomalous?s:'last: '+s;}
function detectors(j){if(!j)return;
for(const d of j.detectors){
if(d.warming_up){const [t,why]=warmupText(d);for(const p of [d.score_tag,d.flag_tag]){const row=document.getElementById('t:'+p);
if(!row)continue;const q=row.querySelector('.q span');q.textContent=t;q.className='warmup';q.title=why;}}
const c=document.querySelector('small.contrib[data-flag="'+CSS.escape(d.flag_tag)+'"]');if(c)c.textContent=contribText(d);}}
async function faults(){const tb=document.getElementById('faultrows');if(!tb)return;
try{const r=await fetch('/api/v1/sim/faults');const j=await r.json();
const rows=j.faults.slice(-8).reverse().map(f=>'<tr><td>'+f.id+'</td><td>'+esc(f.kind)+'</td><td>'+esc(f.asset.split('/').pop())+
(f.point?' / '+esc(f.point):'')+'</td><td class=q><span class='+(f.active?'bad':'good')+'>'+(f.active?'active':'ended')+
'</span></td><td>'+f.wall_start.substring(11,19)+' → '+f.wall_end.substring(11,19)+'</td><td>'+esc(f.origin)+'</td></tr>');
tb.innerHTML=rows.join('')||'<tr><td colspan=6>no faults yet</td></tr>';}catch(e){}}
async function relearn(b){const a=b.dataset.asset;
if(!confirm('Re-learn normal behaviour for '+a+'?\nIts anomaly detectors forget what they learnt and warm up again on the data from now on (after a repair or a deliberate change).'))return;
try{const r=await fetch('/api/v1/detectors/relearn',{method:'POST',headers:{'content-type':'application/json','x-csrf-token':CSRF},body:JSON.stringify({asset:a})});
const j=await r.json();document.getElementById('status').textContent=r.ok?('re-learning '+a):('re-learn failed: '+(j.error||r.status));}
catch(e){document.getElementById('status').textContent='re-learn failed: '+e;}}
const CSRF=(document.querySelector('meta[name=csrf-token]')||{}).content||'';
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
for(const b of document.querySelectorAll('button.relearn'))b.addEventListener('click',()=>relearn(b));
setInterval(refresh,1000);refresh();setInterval(faults,2000);faults();
// The banner of unacknowledged critical alarms and the per-asset status: the alarm part is
// re-read from /api/v1/alarms on every change the alarm stream announces (and when it
// (re)connects), so it follows within a second; the input part is re-read from the rows'
// quality on every refresh. An asset takes the most urgent priority of its annunciated alarms
// (active or returned unacknowledged; suppressed and out of service do not count), is marked shelved while
// any of its alarms is shelved, unknown while any of its inputs is bad or has no value yet (rows marked nodata;
// an uncertain value counts as a value), and is ok only when none applies (the same rule as
// alarms::asset_status on the server). While the connection or the stream is lost every asset is unknown.
const BANNER=document.getElementById('alarmbanner');
const PRI=['critical','high','medium','low'];
const COLOURS=new Set(['unack_active','ack_active','rtn_unack']);
function paint(){const lost=TAGS_LOST||STREAM_LOST;if(!AST&&!lost)return;
for(const sec of document.querySelectorAll('section[data-asset]')){
if(lost){sec.className='asset unknown';const b=sec.querySelector('span.astat');
if(b){b.className='astat unknown';b.textContent='connection lost: status unknown';}continue;}
const s=AST[sec.dataset.asset];
let n=0;for(const q of sec.querySelectorAll('td.q span'))if(q.classList.contains('bad')||q.classList.contains('nodata'))n++;
let cls='';const lab=[];
if(s&&s.p<4){cls=' '+PRI[s.p]+(s.u?' unack':'');lab.push(PRI[s.p]+' alarm'+(s.u?', unacknowledged':''));}
if(s&&s.sh>0){cls+=' shelved';lab.push(s.sh+' alarm'+(s.sh===1?'':'s')+' shelved');}
if(n>0){cls+=' unknown';lab.push(n+' input'+(n===1?'':'s')+' bad or without a value');}
if(!cls)cls=' ok';sec.className='asset'+cls;
const b=sec.querySelector('span.astat');if(b){b.className='astat'+cls;b.textContent=lab.join(' · ');}}}
async function alarms(){try{const r=await fetch('/api/v1/alarms');if(!r.ok)throw new Error(r.status);
const all=(await r.json()).alarms;
const a=all.filter(x=>x.priority==='critical'&&(x.state==='unack_active'||x.state==='rtn_unack'));
BANNER.textContent=a.length===0?'':a.length===1?'1 unacknowledged critical alarm: '+a[0].message:
a.length+' unacknowledged critical alarms, first: '+a[0].message;BANNER.classList.toggle('hidden',a.length===0);
const st={};for(const x of all){const shelved=x.state==='shelved';if(!shelved&&!COLOURS.has(x.state))continue;
const s=st[x.asset]||(st[x.asset]={p:4,u:false,sh:0});
if(shelved){s.sh++;continue;}
s.p=Math.min(s.p,PRI.indexOf(x.priority));s.u=s.u||x.state!=='ack_active';}
AST=st;TAGS_LOST=false;paint();}
catch(e){TAGS_LOST=true;paint();}}
// the alarm stream opens with the page, so the banner follows it from the start (its 'open' event
// refreshes the list: nothing raised between the first read and the stream is missed)
if(BANNER){alarms();const es=new EventSource('/api/v1/alarms/stream');for(const k of ['transition','lagged'])es.addEventListener(k,alarms);
es.addEventListener('open',()=>{STREAM_LOST=false;alarms();});
es.addEventListener('error',()=>{if(es.readyState!==EventSource.OPEN){STREAM_LOST=true;paint();}});}
