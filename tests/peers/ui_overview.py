#!/usr/bin/env python3
"""The overview page in a real browser (Playwright driving Debian's Chromium, never a downloaded one).

Usage: ui_overview.py HTTP_ADDR TOKEN [CHROMIUM]

Signs in through the demo's login link, then checks, with real-time waits (bounded): the page script
refreshed (the status line says "updated …"), at least 10 sparklines are drawn from the tags' history,
the pump's flow row and its detector's re-learn button are there, gd1's detector shows its warm-up as a
countdown (``warm-up …`` in place of the quality, kept by the script's refresh) with a place for the alarm's
contributors next to its flag, the CSRF meta tag carries a token,
the alarm stream is open (an EventSource request answered 200), and the served page has no inline
handler or style. Any console message, page error or CSP violation fails. Prints ``OK <summary>`` or
``FAIL <reason>`` and exits 0 or 1.
"""

import sys

from playwright.sync_api import sync_playwright

FLOW = "acme/plant1/utilities/water/pump1/flow"
PUMP = "acme/plant1/utilities/water/pump1"
GD1 = "acme/plant1/utilities/compressor_house/gd1"


def main():
    http, token = sys.argv[1], sys.argv[2]
    chromium = sys.argv[3] if len(sys.argv) > 3 else "/usr/bin/chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        problems = []
        streams = []
        try:
            page = b.new_page()
            page.set_default_timeout(15000)
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("response", lambda r: streams.append(r.status) if r.url.endswith("/api/v1/alarms/stream") else None)
            page.add_init_script(
                "document.addEventListener('securitypolicyviolation',"
                " e => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI));")
            resp = page.goto(f"http://{http}/login?token={token}")
            html = page.content()
            raw = resp.text() if resp is not None else ""
            page.wait_for_function(
                "() => (document.getElementById('status')||{}).textContent?.startsWith('updated')")
            page.wait_for_function(
                "() => [...document.querySelectorAll('polyline')].filter(p => p.getAttribute('points')).length >= 10")
            # the demo has just started: gd1's 400-poll warm-up is still running
            page.wait_for_function(
                "() => { const s = document.querySelector(\"[id='t:%s/anomaly_score'] td.q span\");"
                " return s && s.className === 'warmup' && s.textContent.startsWith('warm-up'); }" % GD1)
            drawn = page.eval_on_selector_all("polyline", "ps => ps.filter(p => p.getAttribute('points')).length")
            page.wait_for_function("() => true")  # let queued console events arrive
            for _ in range(50):
                if streams:
                    break
                page.wait_for_timeout(100)
            checks = {
                "flow row": page.query_selector(f"[id='t:{FLOW}']") is not None,
                "re-learn button": page.query_selector(f"button.relearn[data-asset='{PUMP}']") is not None,
                "contributors next to the flag": page.query_selector(
                    f"small.contrib[data-flag='{GD1}/anomalous']") is not None,
                "csrf token": bool(page.get_attribute("meta[name='csrf-token']", "content")),
                "alarm stream open": 200 in streams,
                "no inline handler or style": "onclick" not in raw and "<style" not in raw and "onclick" not in html,
            }
            failed = [k for k, ok in checks.items() if not ok]
            if failed or problems:
                print("FAIL " + "; ".join(failed + problems), flush=True)
                sys.exit(1)
            status = page.inner_text("#status")
            print(f"OK {drawn} sparklines drawn; status {status!r}; alarm stream {streams}", flush=True)
        except Exception as e:
            print("FAIL " + str(e).splitlines()[0] + ("; " + "; ".join(problems) if problems else ""), flush=True)
            sys.exit(1)
        finally:
            b.close()


if __name__ == "__main__":
    main()
