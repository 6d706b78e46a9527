"""The client's address behind trusted proxies: ``X-Forwarded-For`` and RFC 7239
``Forwarded``, believed only from the peers a deployment names.

Anyone can send these headers, so they are read only when the TCP peer is one of the
trusted proxies (``KEYFOB_FORWARDED_ALLOW_IPS``; none by default). Each proxy appends
the address it received the request from, so the list is read from the right: trusted
hops are skipped, and the first untrusted one is the client. Everything to its left
was written by the client and is ignored. Consequences, each on purpose:

- a hop that is not an IP address (``unknown``, an obfuscated ``_name``, garbage) ends
  the walk and the last trusted address is the client: a client can never mint fresh
  rate-limit keys by writing junk;
- when a request carries both headers and they name different clients, one of them
  came from the client, unchanged by a proxy that writes only the other: the peer (the
  proxy) is taken, never a guess between the two;
- when every hop is trusted, the leftmost is the client (a request from inside);
- ``X-Forwarded-Proto`` (or ``proto=``) from a trusted peer gives the scheme the client
  used, so a TLS-terminating proxy keeps the ``Secure`` cookie working.

A peer that is not trusted but sends such headers is most likely a proxy nobody
configured: its headers are ignored and a warning is logged once per app.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Final, NamedTuple

from ..exceptions import ConfigurationError

__all__ = ["ForwardedClient", "TrustedProxies"]

logger = logging.getLogger("keyfob")

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_XFF: Final = b"x-forwarded-for"
_XFP: Final = b"x-forwarded-proto"
_FORWARDED: Final = b"forwarded"
_SCHEMES: Final = frozenset({"http", "https"})
# RFC 7239 §4: forwarded-pair = token "=" value; value = token / quoted-string. One pair,
# then the separator that follows it (";" within an element, "," between elements).
_PAIR: Final = re.compile(
    r'[ \t]*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[!#$%&\'*+.^_`|~0-9A-Za-z:\[\]-]*)'
    r"[ \t]*([;,]|$)"
)
# More hops than any real proxy chain: beyond this the header is a client's doing.
_MAX_HOPS: Final = 64


class ForwardedClient(NamedTuple):
    """Who the client is, as the trusted proxies say: its address, and the scheme it
    used when they said (``None``: keep the connection's)."""

    host: str
    scheme: str | None


class _Hop(NamedTuple):
    node: str  # the address text as written, port and brackets included
    proto: str | None


class TrustedProxies:
    """The proxies whose forwarding headers are believed, from addresses and CIDRs.

    :meth:`client` answers for one request from its peer and its raw ASGI headers.
    """

    __slots__ = ("_networks", "_trusts", "_warned")

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed: list[_Network] = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip()))
            except ValueError as exc:
                raise ConfigurationError(
                    f"trusted proxy {text!r} is not an IP address or network: {exc}"
                ) from None
        self._networks: tuple[_Network, ...] = tuple(parsed)
        self._warned = False
        # Peers repeat (the proxies themselves), so their verdict is remembered; bounded,
        # because without proxies every client's address would be a new key.
        self._trusts = functools.lru_cache(maxsize=1024)(self._compute_trust)

    @property
    def enabled(self) -> bool:
        """Whether any proxy is trusted (otherwise forwarding headers are never read)."""
        return bool(self._networks)

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(n) for n in self._networks]!r})"

    def trusts(self, host: str) -> bool:
        """Whether ``host`` (an address as text) is one of the trusted proxies."""
        return bool(self._networks) and self._trusts(host)

    def client(
        self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> ForwardedClient | None:
        """The client behind ``peer``, or ``None`` when the peer itself is the client
        (it is not trusted, or it forwarded nothing).

        ``headers`` are the request's, as ASGI gives them (lower-case names, bytes).
        """
        if peer is None or not self.trusts(peer):
            if not self._warned:
                self._warn_if_forwarded(peer, headers)
            return None
        xff: list[bytes] = []
        xfp: list[bytes] = []
        forwarded: list[bytes] = []
        for name, value in headers:
            if name == _XFF:
                xff.append(value)
            elif name == _XFP:
                xfp.append(value)
            elif name == _FORWARDED:
                forwarded.append(value)
        if not (xff or forwarded or xfp):
            return None
        peer_address = _address(peer)
        fallback = str(peer_address) if peer_address is not None else peer
        default_proto = _last_proto(xfp)
        from_xff = self._walk(_xff_hops(xff, xfp), fallback, default_proto) if xff else None
        from_forwarded = None
        if forwarded:
            hops = _forwarded_hops(forwarded)
            # A header that does not parse names nobody: the peer is the client.
            proto = hops[-1].proto if hops else default_proto
            from_forwarded = self._walk(hops, fallback, proto) if hops else None
            if from_forwarded is None:
                from_forwarded = ForwardedClient(fallback, proto)
        if from_xff is not None and from_forwarded is not None:
            if from_xff.host != from_forwarded.host:
                return ForwardedClient(fallback, default_proto)
            return from_xff
        return from_xff or from_forwarded or ForwardedClient(fallback, default_proto)

    def _walk(self, hops: list[_Hop], fallback: str, default_proto: str | None) -> ForwardedClient:
        """The rightmost untrusted hop; ``fallback`` is the peer, trusted already."""
        last_trusted = fallback
        for hop in reversed(hops[-_MAX_HOPS:]):
            address = _address(hop.node)
            if address is None:
                # Not an address: nobody trustworthy vouches for what lies beyond.
                return ForwardedClient(last_trusted, default_proto)
            text = str(address)
            if not self._trusts(text):
                return ForwardedClient(text, hop.proto or default_proto)
            last_trusted = text
        return ForwardedClient(last_trusted, default_proto)

    def _compute_trust(self, host: str) -> bool:
        address = _address(host)
        return address is not None and any(address in network for network in self._networks)

    def _warn_if_forwarded(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> None:
        for name, _ in headers:
            if name in (_XFF, _FORWARDED, _XFP):
                self._warned = True
                logger.warning(
                    "ignored the %s header from %s, which is not a trusted proxy: client "
                    "addresses are the peers' own. If this server is behind a proxy, set "
                    "KEYFOB_FORWARDED_ALLOW_IPS to the proxy's address (logged once)",
                    name.decode("latin-1"),
                    peer or "an unknown peer",
                )
                return


def _address(text: str) -> _Address | None:
    """An address written as a node: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]``, ``[::1]:80``
    or a bare IPv6 address; an IPv4-mapped IPv6 address becomes its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, _port = text[1:].partition("]")
        if not bracket:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _split(values: list[bytes]) -> list[str]:
    return [item.strip() for value in values for item in value.decode("latin-1").split(",")]


def _proto(text: str) -> str | None:
    proto = text.strip().lower()
    return proto if proto in _SCHEMES else None


def _last_proto(xfp: list[bytes]) -> str | None:
    protos = _split(xfp)
    return _proto(protos[-1]) if protos else None


def _xff_hops(xff: list[bytes], xfp: list[bytes]) -> list[_Hop]:
    nodes = _split(xff)
    protos = _split(xfp)
    # X-Forwarded-Proto names one scheme per hop only when the proxies append to it as
    # they do to X-Forwarded-For; otherwise its last entry speaks for the request.
    if len(protos) == len(nodes):
        return [_Hop(node, _proto(proto)) for node, proto in zip(nodes, protos, strict=True)]
    return [_Hop(node, None) for node in nodes]


def _forwarded_hops(values: list[bytes]) -> list[_Hop]:
    """The elements of RFC 7239 headers, left to right; ``[]`` when any is malformed."""
    text = ",".join(value.decode("latin-1") for value in values)
    hops: list[_Hop] = []
    node: str | None = None
    proto: str | None = None
    position = 0
    while position < len(text):
        match = _PAIR.match(text, position)
        if match is None:
            return []
        name, value, separator = match.groups()
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        name = name.lower()
        if name == "for":
            node = value
        elif name == "proto":
            proto = _proto(value)
        position = match.end()
        if separator != ";":  # the end of an element
            if node is None:
                return []  # an element without for= cannot be placed in the chain
            hops.append(_Hop(node, proto))
            node, proto = None, None
            if separator == "" and position < len(text):
                return []
    return hops
