"""The captive portal's HTML: small pages, usable on a phone and on a desktop.

Every page carries a viewport, its own few lines of CSS (nothing fetched from elsewhere: a
captive client can reach nothing else, and no CDN may see who logs in where), and says in
words what happened and what to do. Pure: strings in, strings out; every value is escaped.
"""

from __future__ import annotations

import html

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1d2330;background:#eef1f5}
main{max-width:26rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 4px #0002}
h1{font-size:1.35rem;margin:0 0 .75rem}
p{margin:.5rem 0}
label{display:block;margin:.9rem 0 .25rem;font-weight:600}
input{width:100%;font-size:1rem;padding:.7rem;border:1px solid #9aa3b2;border-radius:8px}
input:focus{outline:2px solid #2b6cdf;border-color:#2b6cdf}
button,.button{display:block;width:100%;margin-top:1.25rem;padding:.8rem;font-size:1.05rem;
 font-weight:600;color:#fff;background:#2b6cdf;border:0;border-radius:8px;text-align:center;
 text-decoration:none}
.error{background:#fdecec;color:#8a1111;border-left:4px solid #c62828;padding:.6rem .8rem;
 border-radius:6px}
.ok{background:#e8f5e9;color:#1b5e20;border-left:4px solid #2e7d32;padding:.6rem .8rem;
 border-radius:6px}
.small{font-size:.85rem;color:#5a6374;word-break:break-all}
"""


def page(title: str, body: str, *, refresh: tuple[int, str] | None = None) -> str:
    """A whole page; ``body`` is trusted HTML (callers escape what they put in it).
    ``refresh``: (seconds, url) for a meta refresh."""
    meta = ""
    if refresh is not None:
        secs, url = refresh
        meta = f'<meta http-equiv="refresh" content="{secs};url={html.escape(url)}">'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{html.escape(title)}</title><style>{CSS}</style></head>"
        f'<body><main><div class="card"><h1>{html.escape(title)}</h1>{body}'
        "</div></main></body></html>"
    )


def login_form(node: str, next_url: str | None, *, error: str | None = None,
               user: str = "") -> str:
    """The login page; ``error`` (words) above the form, the user name kept."""
    hidden = (f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
              if next_url else "")
    err = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    where = (f'<p class="small">You will then go on to {html.escape(next_url)}</p>'
             if next_url else "")
    return page(
        "Log in to use the network",
        f"{err}<p>This network ({html.escape(node)}) needs your account.</p>"
        '<form method="post" action="/login">'
        '<label for="username">User name</label>'
        f'<input id="username" name="username" maxlength="64" autocomplete="username" '
        f'autocapitalize="none" spellcheck="false" value="{html.escape(user)}" required>'
        '<label for="password">Password</label>'
        '<input id="password" name="password" type="password" maxlength="128" '
        'autocomplete="current-password" required>'
        f'{hidden}<button type="submit">Log in</button></form>{where}',
    )


def message(title: str, text: str, *, error: bool = False, back: bool = False) -> str:
    cls = "error" if error else "ok"
    link = '<a class="button" href="/login">Back to the login</a>' if back else ""
    return page(title, f'<p class="{cls}">{html.escape(text)}</p>{link}')


def logged_in(user: str, node: str, ip: str, next_url: str | None) -> str:
    """After a login: online now, nothing to do; a link on to the page asked for."""
    body = (f'<p class="ok">You are online as <b>{html.escape(user)}</b> at '
            f"{html.escape(node)}. There is nothing else to do.</p>"
            f'<p class="small">Your device keeps the address {html.escape(ip)} at every '
            "access point of this network.</p>")
    if next_url:
        body += (f'<a class="button" href="{html.escape(next_url)}">Continue to '
                 f"{html.escape(_short(next_url))}</a>")
    return page("You are online", body)


def setting_up(url: str) -> str:
    """A logged-in device that still reached the portal for some site (its network is being
    set up, or its browser kept the portal's address for the name): try again shortly."""
    return page(
        "You are online",
        '<p class="ok">You are logged in. Your connection is being set up: this page '
        "reloads by itself in a moment.</p>"
        f'<a class="button" href="{html.escape(url)}">Continue to '
        f"{html.escape(_short(url))}</a>",
        # 1 s: the switch's steering is usually in within a second of the login's 303
        # (measured in the browser test), so the page asked for comes on the first reload.
        refresh=(1, url),
    )


def _short(url: str, limit: int = 60) -> str:
    return url if len(url) <= limit else url[: limit - 1] + "…"
