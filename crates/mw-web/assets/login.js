'use strict';
// The login form: posts {"user","password"} as JSON (the API takes JSON only) and, on success,
// goes to the overview; the session cookie is set by the answer.
document.addEventListener('DOMContentLoaded',()=>{
const f=document.getElementById('login'),st=document.getElementById('status');
f.addEventListener('submit',async ev=>{ev.preventDefault();st.textContent='signing in…';
try{const r=await fetch('/api/v1/login',{method:'POST',headers:{'content-type':'application/json'},
body:JSON.stringify({user:document.getElementById('user').value,password:document.getElementById('password').value})});
if(r.ok){location.href='/';return}
const j=await r.json().catch(()=>({}));st.textContent=j.error||('sign-in failed ('+r.status+')');}
catch(e){st.textContent='sign-in failed: '+e}});});
