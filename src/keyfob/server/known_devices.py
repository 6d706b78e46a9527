"""Known-device cookies: a browser that signed in to an account before is not a stranger.

After a successful login with the cookie transport, the answer also sets a device
cookie (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a random
device id and an HMAC over that id and the account's rate-limit key, under a key derived
from the deployment secret. On the next login to *that* account it tells
:mod:`.ratelimit` that this browser is a known client:

- it is exempt from the per-account limit that a distributed attack can exhaust, so an
  attacker who fails from a thousand addresses still cannot lock the owner out of a
  browser they use;
- its failures are counted under its own id wherever it connects from, so a guessing
  attacker behind the owner's NAT does not throttle it either.

The cookie grants nothing else: it is not a credential (the password is still
checked), a copy of it only buys its holder the owner's own throttle, and a cookie for
one account means nothing for another. It is ``HttpOnly``, ``SameSite=Strict``, and
``Secure`` with the refresh cookie's prefix and path wherever the refresh cookie is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from typing import Final

from ..settings import Settings, load_deployment_secret
from ..transports.cookies import (
    REFRESH_COOKIE_BASENAME,
    CookiePolicy,
    read_refresh_cookie,
    refresh_cookie,
)

__all__ = ["DEVICE_COOKIE_BASENAME", "DEVICE_COOKIE_MAX_AGE", "KnownDevices"]

#: The cookie's name without its prefix.
DEVICE_COOKIE_BASENAME: Final = "keyfob_device"
#: A browser stays known for a year after its last successful login.
DEVICE_COOKIE_MAX_AGE: Final = 365 * 86400

_KEY_INFO: Final = b"keyfob device cookie v1"
_ID_BYTES: Final = 16
_MAC_BYTES: Final = 16
# base64url of the id, a dot, base64url of the MAC: anything longer is not ours.
_MAX_VALUE: Final = 64


class KnownDevices:
    """Mints and checks device cookies under keys derived from the deployment secrets."""

    __slots__ = ("_keys",)

    def __init__(self, deployment_secrets: Sequence[bytes]) -> None:
        if not deployment_secrets:
            raise ValueError("at least one deployment secret is needed")
        # Newest first: mint with the first, accept any (secret rotation keeps devices).
        self._keys = [hmac.digest(s, _KEY_INFO, "sha256") for s in deployment_secrets]

    @classmethod
    def from_settings(cls, settings: Settings) -> KnownDevices:
        return cls(load_deployment_secret(settings))

    def identify(
        self, policy: CookiePolicy | None, cookie_header: str | None, account: str
    ) -> str | None:
        """The device id of a valid device cookie for ``account`` (a rate-limit account
        key) in the request, or ``None``."""
        if policy is None:
            return None
        for value in read_refresh_cookie(_device_policy(policy), cookie_header):
            device = self._check(value, account)
            if device is not None:
                return device
        return None

    def set_cookie(self, policy: CookiePolicy, account: str) -> str:
        """The ``Set-Cookie`` value of a new device cookie for ``account``."""
        device = _b64(secrets.token_bytes(_ID_BYTES))
        value = f"{device}.{_b64(self._mac(self._keys[0], device, account))}"
        return refresh_cookie(_device_policy(policy), value, max_age=DEVICE_COOKIE_MAX_AGE)

    def _check(self, value: str, account: str) -> str | None:
        if len(value) > _MAX_VALUE:
            return None
        device, dot, mac = value.partition(".")
        if not dot or not device or not value.isascii():
            return None
        for key in self._keys:
            if hmac.compare_digest(mac, _b64(self._mac(key, device, account))):
                return device
        return None

    @staticmethod
    def _mac(key: bytes, device: str, account: str) -> bytes:
        message = f"{device}\0{account}".encode()
        return hmac.digest(key, message, hashlib.sha256)[:_MAC_BYTES]


def _device_policy(policy: CookiePolicy) -> CookiePolicy:
    # The refresh cookie's prefix (__Secure-/__Host-), path and Secure flag.
    name = policy.name.replace(REFRESH_COOKIE_BASENAME, DEVICE_COOKIE_BASENAME)
    return CookiePolicy(name=name, path=policy.path, secure=policy.secure)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
