"""Sign in on keyfob's authorization pages with plain form posts, as a browser would
submit them, following the page contract: a POST form with ``username`` and ``password``
(its other fields, the CSRF one included, sent back as they came), then for a client
that is not first-party a consent form answered ``decision=allow``, then a 303 to the
redirect URI. No JavaScript is involved, so none is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx

__all__ = ["post_form", "sign_in"]


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")


def post_form(client: httpx.Client, page: httpx.Response, **values: str) -> httpx.Response:
    """Submit the page's one POST form: its fields, with ``values`` filled in."""
    parser = _Forms()
    parser.feed(page.text)
    forms = [f for f in parser.forms if f.method == "post"]
    assert len(forms) == 1, page.text
    target = urljoin(str(page.url), forms[0].action) if forms[0].action else str(page.url)
    return client.post(target, data={**forms[0].fields, **values})


def sign_in(client: httpx.Client, url: str, username: str, password: str) -> httpx.Response:
    """Open the authorization URL, sign in and consent; keyfob's last answer: the 303 to
    the redirect URI, or the page it showed instead (a wrong password, an error)."""
    page = client.get(url)
    if page.status_code != 200:
        return page
    answer = post_form(client, page, username=username, password=password)
    if answer.status_code == 200 and 'value="allow"' in answer.text:
        answer = post_form(client, answer, decision="allow")  # the consent page
    return answer
