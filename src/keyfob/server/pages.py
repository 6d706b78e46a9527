"""Server-rendered HTML pages (the authorization endpoint's login, consent and error
pages): Jinja2 templates shipped in the package, autoescaped.

Every page is sent with :func:`~.responses.html_headers` (a strict CSP: no script at all,
styles from keyfob's own ``/static``, no framing) and ``Cache-Control: no-store``, since
a page carries a user's CSRF token or login ticket. The templates live in
``keyfob/server/templates`` and their style in ``keyfob/server/static/authorize.css``;
both ship in the wheel (``tests/test_packaging.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse, Response

from ..oauth.errors import NO_STORE_HEADERS
from .responses import html_headers

__all__ = ["TEMPLATES_DIR", "render_page"]

TEMPLATES_DIR: Final = Path(__file__).parent / "templates"

# autoescape=True: every value is HTML-escaped, whatever the template's name.
# StrictUndefined: a missing value is an error in the tests, not an empty string.
_ENVIRONMENT: Final = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=True,
    undefined=StrictUndefined,
    auto_reload=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_page(
    template: str,
    context: Mapping[str, object],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    form_action: Sequence[str] = (),
) -> Response:
    """``template`` rendered with ``context``, with the pages' headers and ``headers``.

    ``form_action``: CSP sources the page's forms may lead to besides keyfob itself.
    """
    body = _ENVIRONMENT.get_template(template).render(context)
    out = html_headers({**NO_STORE_HEADERS, **(headers or {})}, form_action=form_action)
    return HTMLResponse(body, status, out)
