"""Password hashes with scrypt (hashlib), a random salt per password, constant-time checks.

Encoded as ``scrypt$<n>$<r>$<p>$<salt_b64>$<hash_b64>``, so the cost can rise later and old
hashes still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from netfate.errors import InvalidInput

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # ~16 MiB and tens of ms per hash: the interactive-login parameters
SALT_BYTES = 16
HASH_BYTES = 32
MAX_PASSWORD_BYTES = 1024
_MAX_N = 2**20  # refuse stored parameters that would take gigabytes


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=256 * r * n + 1024 * 1024
    )


def _encode(password: str) -> bytes:
    raw = password.encode("utf-8")
    if not raw:
        raise InvalidInput("password is empty")
    if len(raw) > MAX_PASSWORD_BYTES:
        raise InvalidInput(f"password is longer than {MAX_PASSWORD_BYTES} bytes")
    return raw


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password``; never contains the password itself."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(_encode(password), salt, N, R, P, HASH_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches ``encoded``. False for a malformed or foreign hash."""
    try:
        scheme, n_s, r_s, p_s, salt_b64, hash_b64 = encoded.split("$")
        n, r, p = int(n_s), int(r_s), int(p_s)
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
    except ValueError:
        return False
    if scheme != SCHEME or not (1 < n <= _MAX_N and 0 < r <= 32 and 0 < p <= 16) or not expected:
        return False
    raw = password.encode("utf-8")
    if not raw or len(raw) > MAX_PASSWORD_BYTES:
        return False
    try:
        got = _scrypt(raw, salt, n, r, p, len(expected))
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(got, expected)


def needs_rehash(encoded: str) -> bool:
    """Whether a stored hash uses other parameters than the current ones."""
    return not encoded.startswith(f"{SCHEME}${N}${R}${P}$")


# Verified against when the user does not exist, so a login takes as long either way.
DUMMY_HASH = (
    f"{SCHEME}${N}${R}${P}${_b64(b'netfate-no-user!')}${_b64(bytes(HASH_BYTES))}"
)
