"""The dashboard's guards: who may see it (auth hook), CSRF tokens, response headers.

Pure functions and small classes, no I/O: the app wires them into each request. CSRF uses a
signed double-submit token: a random value plus its HMAC under the app's secret, set as a
SameSite=Strict cookie and repeated in every form; a POST is accepted only when both match and
the signature holds (and, when the browser sends one, the Origin is this host).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CSRF_COOKIE = "goodjob_csrf"
CSRF_FIELD = "csrf_token"

# No inline script or style is needed (the SVG charts are markup): anything injected into a page
# cannot run even if escaping ever failed.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def new_csrf_token(secret: bytes) -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_sign(secret, nonce)}"


def _sign(secret: bytes, nonce: str) -> str:
    return hmac.new(secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]


def csrf_token_valid(secret: bytes, token: str | None) -> bool:
    """A token this secret signed (shape and signature only; pair it with the cookie check)."""
    if not token or token.count(".") != 1:
        return False
    nonce, signature = token.split(".")
    return hmac.compare_digest(_sign(secret, nonce), signature)


def csrf_ok(secret: bytes, cookie: str | None, submitted: str | None) -> bool:
    """The POST carries the cookie's token in the form, and the token is ours."""
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie, submitted) and csrf_token_valid(secret, cookie)


def origin_ok(origin: str | None, host: str | None) -> bool:
    """A cross-site form post names another origin; a missing or ``null`` Origin is left to
    the token (older browsers and privacy settings omit it)."""
    if not origin or origin == "null":
        return True
    return urlsplit(origin).netloc.lower() == (host or "").lower()


@dataclass(frozen=True)
class BasicAuth:
    """HTTP basic auth with one user name and password (compared in constant time)."""

    username: str
    password: str
    realm: str = "goodjob_mp dashboard"

    def check(self, authorization: str | None) -> bool:
        if not authorization or not authorization.lower().startswith("basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        user_ok = hmac.compare_digest(user.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok

    def challenge(self) -> dict[str, str]:
        return {"www-authenticate": f'Basic realm="{self.realm}", charset="UTF-8"'}


# An auth hook: BasicAuth, or any callable taking the Starlette Request and returning True to
# let the request through (the host application's session, a header set by a proxy, ...).
AuthHook = BasicAuth | Callable[[Any], bool]
