"""What a user name and a password may be: one rule for every path that carries them (the
northbound API, the repository, the captive portal's form, RADIUS). Pure.

A credential the API accepts must be one a person can use: typed into the portal's form,
carried in a RADIUS Access-Request, and checked by the back end as a password. So:

- a user name is 1-32 characters a-z, 0-9, '_', '.', '-', starting with a letter or digit
  (safe in resource names, see netfate.naming; RADIUS User-Name carries it as is);
- a password is 1-128 bytes of UTF-8 (RFC 2865 5.2: User-Password holds at most 128 octets;
  the portal caps its field there), in Unicode NFC (what keyboards send; RFC 8265's
  OpaqueString normalisation), without control characters (a form field cannot carry a
  newline or a tab, PAP pads with NUL) or others OpaqueString disallows (format characters
  such as U+202E, line and paragraph separators, private-use, unassigned), not starting or
  ending with white space (keyboards and password managers trim it), and not starting with
  "reauth:" (the RADIUS back end reads such a password as a fast re-authentication token,
  netfate.radius.backend).
"""

from __future__ import annotations

import re
import unicodedata

USERNAME_MAX = 32
PASSWORD_MAX_BYTES = 128  # RFC 2865 5.2
REAUTH_PREFIX = "reauth:"  # the RADIUS back end's token prefix: no password may start so
USERNAME_PATTERN = rf"^[a-z0-9][a-z0-9_.-]{{0,{USERNAME_MAX - 1}}}$"
_USERNAME = re.compile(USERNAME_PATTERN)
USERNAME_RULE = (f"1-{USERNAME_MAX} characters a-z, 0-9, '_', '.', '-', starting with a "
                 "letter or digit")


def username_problem(name: str) -> str | None:
    """Why `name` cannot be a user name, or None if it can."""
    if not isinstance(name, str) or not _USERNAME.fullmatch(name):
        return f"username must be {USERNAME_RULE}"
    return None


def _opaque(c: str) -> bool:
    """Whether RFC 8264's FreeformClass (under OpaqueString) allows `c`: the categories L, M,
    N, P, S and the space separator Zs. Not Cf (U+202E turns the text around), Zl, Zp
    (U+2028 breaks the line), Co, Cn."""
    cat = unicodedata.category(c)
    return cat[0] in "LMNPS" or cat == "Zs"


def password_problem(password: str) -> str | None:
    """Why `password` cannot be a user's password, or None if it can. Never quotes it."""
    if not isinstance(password, str) or not password:
        return "password is empty"
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:
        return "password must be valid Unicode text (no lone surrogates)"
    if size > PASSWORD_MAX_BYTES:
        return (f"password is over {PASSWORD_MAX_BYTES} bytes ({size} bytes of UTF-8): no more "
                "can be sent through RADIUS (RFC 2865 5.2) and the portal")
    if any(unicodedata.category(c) == "Cc" for c in password):
        return "password must not contain control characters (NUL, tab, newline...)"
    odd = next((c for c in password if not _opaque(c)), None)
    if odd is not None:
        return (f"password must not contain U+{ord(odd):04X} ({unicodedata.category(odd)}): "
                "only letters, marks, digits, punctuation, symbols and spaces (RFC 8265 "
                "OpaqueString; no format, separator, private-use or unassigned characters)")
    if password != password.strip():
        return "password must not begin or end with white space"
    if password.startswith(REAUTH_PREFIX):
        return (f"password must not begin with {REAUTH_PREFIX!r} (RADIUS reads that as a "
                "session token)")
    if unicodedata.normalize("NFC", password) != password:
        return "password must be in Unicode normalisation form NFC"
    return None
