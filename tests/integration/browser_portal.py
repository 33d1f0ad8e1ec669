"""A person with a browser at the captive portal, run INSIDE a client's namespace:

    ip netns exec fate-h-client1 .venv/bin/python tests/integration/browser_portal.py JSON

JSON: {"url", "then", "user", "password", "marker"}. Debian's chromium, driven by Playwright
(never `playwright install`). Prints one JSON object of what it saw; exits 0 unless the
browser itself could not run. Not a test module: test_portal_browser.py runs it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from playwright.sync_api import Page, sync_playwright

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True,
         "device_scale_factor": 3}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}


def layout(page: Page) -> dict[str, Any]:
    """What makes a page usable: a viewport, inputs that fit and are readable."""
    box = page.locator("#username").bounding_box()
    button = page.locator("button[type=submit]").bounding_box()
    return {
        "viewport_meta": page.locator('meta[name="viewport"]').count(),
        "input_width": box["width"] if box else None,
        "input_right": box["x"] + box["width"] if box else None,
        "button_height": button["height"] if button else None,
        "font_px": float(page.eval_on_selector(
            "#username", "e => parseFloat(getComputedStyle(e).fontSize)")),
        "page_width": page.evaluate("document.documentElement.scrollWidth"),
    }


def main(arg: str) -> dict[str, Any]:
    plan = json.loads(arg)
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox"])
        try:
            phone = browser.new_context(**PHONE)  # type: ignore[arg-type]
            page = phone.new_page()
            hops: list[Any] = []
            out["responses"] = hops
            # time, URL, status, server address, and whether the portal answered (its
            # pages are no-store; the internet host's are not)
            page.on("response", lambda r: hops.append(
                [round(time.monotonic(), 2), r.url, r.status,
                 (r.server_addr() or {}).get("ipAddress"),
                 "no-store" in (r.headers.get("cache-control") or "")]))
            # Any http URL by name lands on the login page.
            page.goto(plan["url"], wait_until="load", timeout=30_000)
            out["landed"] = page.url
            out["title"] = page.title()
            out["phone"] = layout(page)
            # A wrong password: the reason in words, the form again.
            page.fill("#username", plan["user"])
            page.fill("#password", "not-" + plan["password"])
            page.click("button[type=submit]")
            page.wait_for_load_state("load")
            alert = page.locator('[role="alert"]')
            out["error"] = alert.inner_text() if alert.count() else None
            # The right one: back to the page asked for, served (no reconnect, no renewal).
            page.fill("#password", plan["password"])
            t0 = time.monotonic()
            out["login_at"] = round(t0, 2)
            page.click("button[type=submit]")
            try:
                page.wait_for_selector(f"#{plan['marker']}", timeout=90_000)
            except Exception as exc:
                out["failed"] = str(exc)[:300]
                return out
            out["after_login_s"] = round(time.monotonic() - t0, 2)
            out["reached"] = page.url
            out["reached_text"] = page.inner_text("body")
            # Another site, by name, at once.
            page.goto(plan["then"], wait_until="load", timeout=30_000)
            page.wait_for_selector(f"#{plan['marker']}", timeout=15_000)
            out["then"] = page.url
            out["then_text"] = page.inner_text("body")
            # The login page on a desktop screen.
            desk = browser.new_context(**DESKTOP)  # type: ignore[arg-type]
            dpage = desk.new_page()
            dpage.goto(plan["portal"] + "/login", wait_until="load", timeout=15_000)
            out["desktop"] = layout(dpage)
        finally:
            browser.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
