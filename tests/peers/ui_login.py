#!/usr/bin/env python3
"""Signs in to a running Millwright through its login page in headless Chromium and uses the page.

Driven by crates/millwright/tests/ui_login_chromium.rs. Playwright (PyPI) drives the Debian
Chromium given by --chromium (never a browser Playwright downloads). The password of --user comes
on stdin (one line), so it is in no process list.

Steps, each bounded by a timeout (Playwright's default timeout, or an explicit deadline):
  1. /login with a wrong password: the page's status line shows the server's message, no cookie is
     set, the browser stays on /login.
  2. /login with the right password: the browser lands on /, the tag rows render and update, the
     session cookie is HttpOnly + SameSite=Strict (not readable by the page's script), the page
     carries its CSRF token, /api/v1/whoami names the user.
  3. The live alarm banner: once the page's alarm stream (SSE) is open, a gas release is injected
     from the page (POST /api/v1/sim/faults with the session and its CSRF token); the banner of
     unacknowledged critical alarms must appear without a reload.
  4. Logout from the page: the cookie is gone, / redirects to /login, and the old session id,
     replayed, is refused with 401.
Throughout: no console message, no uncaught page error and no Content-Security-Policy violation
(listened to with a `securitypolicyviolation` listener installed before any page script), except
the one console line Chromium writes for the refused login of step 1.

Prints `step N: …` lines, then `session SESSION_ID` (so the caller can check that the id appears
in no log) and `ok`. Any failure: `FAIL: what` on stderr and exit status 1.
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright

STEP_TIMEOUT_MS = 15_000
# A gas release raises the danger alarm within a few simulated seconds; generous upper bound.
BANNER_TIMEOUT_S = 30

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Installed before any script of every document: reports CSP violations back to Python.
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', e => {
  window.__mwCspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') +
    ' at ' + e.sourceFile + ':' + e.lineNumber);
});
"""


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def deadline_wait(page, what, timeout_s, pred):
    """Polls pred() while letting the page run (events are delivered during wait_for_timeout)."""
    end = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise Fail(f"timed out after {timeout_s} s waiting for {what}")
        page.wait_for_timeout(100)


def session_cookies(context):
    return [c for c in context.cookies() if c["name"] == "mw_session"]


def get_status(base, path, cookie):
    req = urllib.request.Request(base + path, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def run(args, password):
    base = args.base.rstrip("/")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            timeout=STEP_TIMEOUT_MS * 2,
        )
        try:
            context = browser.new_context()
            problems = []  # console messages, page errors, CSP violations: (phase, text)
            phase = ["start"]
            context.expose_function(
                "__mwCspViolation", lambda t: problems.append((phase[0], "CSP: " + t))
            )
            context.add_init_script(CSP_LISTENER)
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            page.set_default_navigation_timeout(STEP_TIMEOUT_MS)
            page.on(
                "console",
                lambda m: problems.append(
                    (phase[0], f"console {m.type}: {m.text} ({m.location.get('url')})")
                ),
            )
            page.on("pageerror", lambda e: problems.append((phase[0], f"page error: {e}")))
            streams = []
            page.on(
                "response",
                lambda r: streams.append(r.status)
                if r.url.endswith("/api/v1/alarms/stream")
                else None,
            )

            # 1. wrong password
            phase[0] = "wrong-password"
            page.goto(base + "/login")
            page.fill("#user", args.user)
            page.fill("#password", password + "-wrong")
            page.click("button[type=submit]")
            page.wait_for_function(
                "() => { const t = document.getElementById('status').textContent;"
                " return t !== '' && t !== 'signing in…'; }"
            )
            status = page.text_content("#status")
            check(
                status == "invalid user name or password",
                f"wrong password: status line says {status!r}",
            )
            check(page.url == base + "/login", f"wrong password: browser went to {page.url}")
            check(session_cookies(context) == [], "wrong password: a session cookie was set")
            # Chromium reports the refused fetch as one console error; nothing else may appear.
            refused = [
                t
                for ph, t in problems
                if ph == "wrong-password"
                and "status of 401" in t
                and t.endswith(base + "/api/v1/login)")
            ]
            check(len(refused) == 1, f"wrong password: expected the 401 console line, got {problems}")
            problems.remove(("wrong-password", refused[0]))
            print("step 1: wrong password refused on the page, no cookie", flush=True)

            # 2. right password
            phase[0] = "login"
            page.fill("#password", password)
            with page.expect_navigation(url=base + "/"):
                page.click("button[type=submit]")
            page.wait_for_function(
                "() => (document.getElementById('status')||{}).textContent?.startsWith('updated ')"
            )
            rows = page.eval_on_selector_all("tr[id^='t:']", "rs => rs.length")
            check(rows >= 10, f"overview lists only {rows} tag rows")
            values = page.eval_on_selector_all(
                "tr[id^='t:'] .v", "vs => vs.filter(v => v.textContent !== '—').length"
            )
            check(values >= 10, f"only {values} tag rows show a value")
            cookies = session_cookies(context)
            check(len(cookies) == 1, f"after login: session cookies {cookies}")
            c = cookies[0]
            check(c["httpOnly"] is True, f"session cookie is not HttpOnly: {c}")
            check(c["sameSite"] == "Strict", f"session cookie is not SameSite=Strict: {c}")
            check(c["path"] == "/", f"session cookie path: {c}")
            check(
                "mw_session" not in page.evaluate("document.cookie"),
                "the page's script can read the session cookie",
            )
            csrf = page.get_attribute("meta[name=csrf-token]", "content") or ""
            check(len(csrf) >= 16, f"the page carries no CSRF token ({csrf!r})")
            who = page.evaluate("fetch('/api/v1/whoami').then(r => r.json())")
            check(
                who.get("user") == args.user and who.get("role") == args.role,
                f"whoami: {who}",
            )
            print(f"step 2: signed in through the page ({who}), {rows} tags rendered", flush=True)

            # 3. live alarm banner over SSE
            phase[0] = "banner"
            deadline_wait(page, "the alarm stream to open", STEP_TIMEOUT_MS / 1000, lambda: streams)
            check(streams == [200], f"alarm stream answered {streams}")
            page.wait_for_timeout(300)  # let the stream's 'open' refresh finish
            check(
                page.get_attribute("#alarmbanner", "class").split().count("hidden") == 1,
                "the banner shows before any fault: " + (page.text_content("#alarmbanner") or ""),
            )
            injected = page.evaluate(
                """async () => {
                  const csrf = document.querySelector('meta[name=csrf-token]').content;
                  const r = await fetch('/api/v1/sim/faults', {method: 'POST',
                    headers: {'content-type': 'application/json', 'x-csrf-token': csrf},
                    body: JSON.stringify({asset: 'gd1', kind: 'gas_release', duration_s: 600})});
                  return [r.status, await r.text()];
                }"""
            )
            check(injected[0] == 201, f"fault injection from the page: {injected}")
            t0 = time.monotonic()
            deadline_wait(
                page,
                "the critical alarm banner",
                BANNER_TIMEOUT_S,
                lambda: "hidden" not in page.get_attribute("#alarmbanner", "class").split(),
            )
            banner = page.text_content("#alarmbanner")
            check("unacknowledged critical alarm" in banner, f"banner says {banner!r}")
            print(
                f"step 3: banner after {time.monotonic() - t0:.1f} s without reload: {banner}",
                flush=True,
            )

            # 4. logout
            phase[0] = "logout"
            old = f"mw_session={c['value']}"
            out = page.evaluate(
                """async () => {
                  const csrf = document.querySelector('meta[name=csrf-token]').content;
                  const r = await fetch('/api/v1/logout', {method: 'POST',
                    headers: {'content-type': 'application/json', 'x-csrf-token': csrf},
                    body: '{}'});
                  return [r.status, await r.text()];
                }"""
            )
            check(out[0] == 200, f"logout: {out}")
            check(session_cookies(context) == [], "logout left the session cookie")
            page.goto(base + "/")
            check(page.url.startswith(base + "/login"), f"after logout / went to {page.url}")
            st = get_status(base, "/api/v1/whoami", old)
            check(st == 401, f"the old session id still answers {st} after logout")
            print("step 4: logged out, / goes to /login, old session refused", flush=True)

            check(problems == [], "console messages, page errors or CSP violations: %s" % problems)
            print(f"session {c['value']}", flush=True)
            print("ok", flush=True)
        finally:
            browser.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="http://HOST:PORT of the web UI")
    ap.add_argument("--chromium", required=True, help="the Chromium executable")
    ap.add_argument("--user", required=True)
    ap.add_argument("--role", required=True, help="the role the user must have")
    args = ap.parse_args()
    password = sys.stdin.readline().rstrip("\n")
    try:
        run(args, password)
    except (Fail, PlaywrightError) as e:
        print(f"FAIL: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
