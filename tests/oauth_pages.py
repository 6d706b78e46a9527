"""Sign in on keyfob's authorization pages with plain form posts, as a browser would
submit them, following the page contract: a POST form with ``username`` and ``password``
(its other fields, the CSRF one included, sent back as they came), then for a client
that is not first-party a consent form answered ``decision=allow``, then a 303 to the
redirect URI. No JavaScript is involved, so none is needed.

keyfob's page cookies are ``Secure``. A browser sends them to ``http://127.0.0.1`` and
``http://localhost`` (a secure context) as it does over HTTPS; httpx's cookie jar sends
``Secure`` cookies over HTTPS only. So :class:`Browser` keeps the cookies itself and
sends them as a browser would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import httpx

__all__ = ["Browser", "sign_in"]


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


class Browser:
    """An httpx client with a browser's view of cookies on loopback (see above)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        jar = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers = {"cookie": jar} if jar else {}
        response = self.client.request(method, url, headers=headers, **kwargs)
        self.client.cookies.clear()  # this class keeps them, not the jar
        for line in response.headers.get_list("set-cookie"):
            name, _, rest = line.partition("=")
            value = rest.partition(";")[0]
            if "max-age=0" in line.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return response

    def post_form(self, page: httpx.Response, **values: str) -> httpx.Response:
        """Submit the page's one POST form: its fields, with ``values`` filled in."""
        parser = _Forms()
        parser.feed(page.text)
        forms = [f for f in parser.forms if f.method == "post"]
        assert len(forms) == 1, page.text
        target = urljoin(str(page.url), forms[0].action) if forms[0].action else str(page.url)
        return self.request("POST", target, data={**forms[0].fields, **values})


def sign_in(client: httpx.Client, url: str, username: str, password: str) -> httpx.Response:
    """Open the authorization URL, sign in and consent; keyfob's last answer: the 303 to
    the redirect URI, or the page it showed instead (a wrong password, an error)."""
    browser = Browser(client)
    page = browser.request("GET", url)
    if page.status_code != 200:
        return page
    answer = browser.post_form(page, username=username, password=password)
    if answer.status_code == 200 and 'value="allow"' in answer.text:
        answer = browser.post_form(answer, decision="allow")  # the consent page
    return answer
