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
  such as U+202E but the joiners ZWNJ/ZWJ, line and paragraph separators, private-use,
  noncharacters), not starting or
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


_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: RFC 8264 §9.8 CONTEXTJ (Persian, emoji)


def _opaque(c: str) -> bool:
    """Whether `c` may be in a password, by RFC 8264's FreeformClass (under OpaqueString):
    the categories L, M, N, P, S, the space separator Zs, and the joiners ZWNJ and ZWJ
    (CONTEXTJ: Persian "می‌خواهم", Hindi conjuncts and emoji sequences need them; allowed
    wherever they stand, as their contexts are the script's business). Not the other Cf
    (U+202E turns the text around), Zl, Zp (U+2028 breaks the line), Co, noncharacters.
    A code point this Python's Unicode data does not know (Cn) is allowed: it may be
    assigned in a later Unicode (a new emoji), which the user's keyboard has already."""
    cat = unicodedata.category(c)
    if cat[0] in "LMNPS" or cat == "Zs" or c in _JOINERS:
        return True
    return cat == "Cn" and not _noncharacter(ord(c))


def _noncharacter(cp: int) -> bool:
    """Unicode's 66 noncharacters (U+FDD0..U+FDEF, and U+xxFFFE/U+xxFFFF in every plane)."""
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def password_problem(password: str, *, new: bool = True) -> str | None:
    """Why `password` cannot be a user's password, or None if it can. Never quotes it.
    `new` False (a login, not a password being set): only what no login could carry (size,
    control characters, the re-authentication prefix); the rules for the characters and
    their form apply when a password is set, so a rule made stricter never locks out a
    user whose password met the rule of its day."""
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
    if not new:
        return _reauth_problem(password)
    odd = next((c for c in password if not _opaque(c)), None)
    if odd is not None:
        return (f"password must not contain U+{ord(odd):04X} ({unicodedata.category(odd)}): "
                "only letters, marks, digits, punctuation, symbols and spaces (RFC 8265 "
                "OpaqueString; no format, separator, private-use or noncharacters)")
    if password != password.strip():
        return "password must not begin or end with white space"
    if unicodedata.normalize("NFC", password) != password:
        return "password must be in Unicode normalisation form NFC"
    return _reauth_problem(password)


def _reauth_problem(password: str) -> str | None:
    if password.startswith(REAUTH_PREFIX):
        return (f"password must not begin with {REAUTH_PREFIX!r} (RADIUS reads that as a "
                "session token)")
    return None
