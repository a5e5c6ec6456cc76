#!/usr/bin/env python3
"""The overview's per-asset status in a real browser (Playwright driving Debian's Chromium).

Usage: overview_status.py HTTP_ADDR TOKEN    (stdin: one line once the server was killed)

Signs in with the demo's login token, waits for the page's alarm stream, then:
1. shelves gd1's gas warning through the API and waits for gd1's section to show `shelved`;
2. prints ``KILL`` and waits for a line on stdin (the test kills the server then);
3. waits for every asset section to show ``unknown`` with "connection lost: status unknown".
Prints one ``OK <step> <class>`` line per step; exits non-zero (with the page's state) on a timeout.
"""

import json
import sys
import urllib.request

from playwright.sync_api import sync_playwright

GD1 = "acme/plant1/utilities/compressor_house/gd1"
HI = "acme/plant1/utilities/compressor_house/gd1/gas:hi"


def main():
    http, token = sys.argv[1], sys.argv[2]
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        try:
            page = b.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"http://{http}/login?token={token}")
            page.wait_for_selector(f"section[data-asset='{GD1}']", timeout=20000)
            sel = f"section[data-asset='{GD1}']"
            # the stream opens with the page; its 'open' re-reads the list
            page.wait_for_function(f"() => document.querySelector(\"{sel}\").className !== 'asset'", timeout=20000)
            page.wait_for_timeout(1000)
            req = urllib.request.Request(
                f"http://{http}/api/v1/alarms/{HI}/shelve",
                data=json.dumps({"duration_s": 600, "reason": "bump test (browser)"}).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200, r.status
            page.wait_for_function(
                f"() => document.querySelector(\"{sel}\").className.split(' ').includes('shelved')", timeout=15000)
            badge = page.inner_text(f"{sel} span.astat")
            print(f"OK shelved {page.get_attribute(sel, 'class')} | {badge}", flush=True)
            print("KILL", flush=True)
            sys.stdin.readline()
            page.wait_for_function(
                "() => [...document.querySelectorAll('section[data-asset]')].every(s => s.className === 'asset unknown'"
                " && s.querySelector('span.astat').textContent === 'connection lost: status unknown')",
                timeout=15000)
            n = page.eval_on_selector_all("section[data-asset]", "ss => ss.length")
            print(f"OK lost {n} sections unknown", flush=True)
            if errors:
                print("page errors: " + "; ".join(errors), flush=True)
                sys.exit(2)
        except Exception as e:  # the page's state for the failure message
            try:
                print("FAIL " + str(e).splitlines()[0], flush=True)
                print(page.eval_on_selector_all("section[data-asset]",
                                                "ss => ss.map(s => s.className + ' | ' + s.querySelector('span.astat').textContent).join('\\n')"),
                      flush=True)
            finally:
                sys.exit(1)
        finally:
            b.close()


if __name__ == "__main__":
    main()
