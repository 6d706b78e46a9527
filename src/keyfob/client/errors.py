"""What the client raises, in one tree; catch :class:`ClientError` to catch them all.

    ClientError                     base of every keyfob.client error
    ├── TokenEndpointError          the token endpoint refused or answered garbage
    │   │                           (status_code, error, description from its JSON)
    │   ├── SessionEnded            invalid_grant on refresh: the session is over, log in again
    │   └── LoginFailed             invalid_grant on login (wrong username or password)
    │                               or on a code exchange
    ├── TokenEndpointUnavailable    503/429/5xx or network errors until the retries ran out
    ├── TokenSaveError              the token_saver raised: the new tokens were not used
    ├── AuthorizationFailed         the authorization-code flow stopped before the token
    │                               request: refused, timed out, or an answer not to trust
    └── TokenFileError              a FileTokenStore file is unreadable or too permissive

These errors come out of the ``httpx`` call that needed the token (``client.get(...)``),
so a program handles "log in again" in one place. Their messages carry the server's
``error`` and ``error_description``, never a token.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationFailed",
    "ClientError",
    "LoginFailed",
    "SessionEnded",
    "TokenEndpointError",
    "TokenEndpointUnavailable",
    "TokenFileError",
    "TokenSaveError",
]

# A server's error_description is shown to people and logs: keep it short and printable.
_MAX_DESCRIPTION = 300


class ClientError(Exception):
    """Base class of every error keyfob.client raises."""


class TokenEndpointError(ClientError):
    """The token endpoint answered with an error (RFC 6749 §5.2) or an unreadable body."""

    def __init__(self, status_code: int, error: str, description: str = "") -> None:
        self.status_code = status_code
        self.error = _printable(error, 64)
        self.description = _printable(description, _MAX_DESCRIPTION)
        detail = f": {self.description}" if self.description else ""
        super().__init__(f"token endpoint answered {status_code} {self.error}{detail}")


class SessionEnded(TokenEndpointError):
    """The refresh token was refused (``invalid_grant``): revoked, expired or reused.

    Retrying cannot help; the user must log in again. The auth object stays ended: every
    later request raises this again without asking the server.
    """


class LoginFailed(TokenEndpointError):
    """The login was refused (``invalid_grant``): wrong username or password; or, in the
    authorization-code flow, the code or its PKCE verifier was refused."""


class TokenEndpointUnavailable(ClientError):
    """The token endpoint stayed unavailable (503, 429, other 5xx, network errors) for
    every attempt the :class:`~keyfob.client.RetryPolicy` allows, or asked for a wait
    longer than it allows. The refresh token is unchanged and may be tried again later."""

    def __init__(self, reason: str, *, attempts: int, retry_after: float | None = None) -> None:
        self.attempts = attempts
        self.retry_after = retry_after
        super().__init__(f"token endpoint unavailable after {attempts} attempt(s): {reason}")


class TokenSaveError(ClientError):
    """The ``token_saver`` raised (its error is ``__cause__``).

    The new tokens were not used: the auth keeps the previous refresh token, which the
    server honours within its grace window by handing out the same successor again.
    """


class AuthorizationFailed(ClientError):
    """The authorization step of the code flow did not give a code.

    ``error`` is the server's (``access_denied`` when the person said no, RFC 6749
    §4.1.2.1) or the client's own: ``invalid_metadata`` (the server cannot do the flow
    safely), ``invalid_state`` / ``invalid_issuer`` (the redirect answers another
    request or another server: possibly an attack), ``invalid_response``, ``timeout``.
    """

    def __init__(self, error: str, description: str = "") -> None:
        self.error = _printable(error, 64)
        self.description = _printable(description, _MAX_DESCRIPTION)
        detail = f": {self.description}" if self.description else ""
        super().__init__(f"authorization failed ({self.error}){detail}")


class TokenFileError(ClientError):
    """A token file cannot be used: unreadable, malformed, or readable by others."""


def _printable(text: str, limit: int) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
