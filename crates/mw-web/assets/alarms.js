// The alarm console's script (served as /assets/alarms.js; the CSP allows no inline script):
// re-renders the rows from /api/v1/alarms whenever the alarm stream announces a change, and
// sends the operator's actions (ack, shelve, unshelve, out of service, return) with the comment.
"use strict";
const CSRF=(document.querySelector('meta[name=csrf-token]')||{}).content||'';
const ROWS=document.getElementById('alarmrows');
const STATUS=document.getElementById('status');
function esc(s){return String(s).replace(/[&<>"']/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function val(v){return typeof v==='number'?v.toFixed(2):'unknown';}
function row(a){const asset=a.asset.split('/').pop();const t=a.raised_at?a.raised_at.substring(11,19):'';
return "<tr class='"+a.priority+"' data-id='"+esc(a.id)+"'><td><span class='pri "+a.priority+"'>"+a.priority+"</span></td>"+
"<td><span class='st "+a.state+"'>"+a.state+"</span></td><td>"+esc(a.message)+"<br><small>"+esc(a.id)+"</small></td>"+
"<td>"+esc(asset)+"</td><td class=v>"+esc(val(a.value))+"</td><td class=ts>"+t+"</td>"+
"<td class=act><input class=comment placeholder='comment / reason' maxlength=1000>"+
"<button data-act=ack>ack</button><select class=dur><option value=900>15 min</option><option value=3600 selected>1 h</option>"+
"<option value=28800>8 h</option><option value=86400>24 h</option></select>"+
"<button data-act=shelve>shelve</button><button data-act=unshelve>unshelve</button>"+
"<button data-act=oos>out of service</button><button data-act=return>return</button></td></tr>";}
let pending=null;
function reloadSoon(){if(!pending)pending=setTimeout(()=>{pending=null;reload();},200);}
async function reload(){if(!ROWS)return;
try{const r=await fetch('/api/v1/alarms');const j=await r.json();if(!r.ok){STATUS.textContent=j.error||r.status;return;}
const typed={};for(const tr of ROWS.querySelectorAll('tr[data-id]')){const c=tr.querySelector('.comment');if(c&&c.value)typed[tr.dataset.id]=c.value;}
ROWS.innerHTML=j.alarms.map(row).join('')||'<tr><td colspan=7>no active alarms</td></tr>';
for(const tr of ROWS.querySelectorAll('tr[data-id]')){if(typed[tr.dataset.id])tr.querySelector('.comment').value=typed[tr.dataset.id];}
STATUS.textContent='updated '+new Date().toLocaleTimeString();}
catch(e){STATUS.textContent='connection lost — retrying';}}
async function act(id,verb,comment,dur){
const body=verb==='shelve'?{duration_s:Number(dur),reason:comment}:verb==='oos'?{reason:comment}:{comment:comment};
const url='/api/v1/alarms/'+id.split('/').map(encodeURIComponent).join('/')+'/'+verb;
try{const r=await fetch(url,{method:'POST',headers:{'content-type':'application/json','x-csrf-token':CSRF},body:JSON.stringify(body)});
const j=await r.json();STATUS.textContent=r.ok?(verb+' '+id+': '+j.transition.from+' → '+j.transition.to):(verb+' refused: '+(j.error||r.status));}
catch(e){STATUS.textContent=verb+' failed: '+e;}
reloadSoon();}
if(ROWS){ROWS.addEventListener('click',ev=>{const b=ev.target.closest('button[data-act]');if(!b)return;const tr=b.closest('tr');
act(tr.dataset.id,b.dataset.act,tr.querySelector('.comment').value,tr.querySelector('.dur').value);});
const es=new EventSource('/api/v1/alarms/stream');
es.addEventListener('transition',reloadSoon);es.addEventListener('lagged',reloadSoon);es.addEventListener('open',reloadSoon);
es.addEventListener('error',()=>{STATUS.textContent='alarm stream lost — reconnecting';});}
