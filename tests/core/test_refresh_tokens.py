"""The refresh-token text form: exact shape, MAC before anything else, masked printing."""

from __future__ import annotations

import base64
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyfob.core.refresh_tokens import (
    PREFIX,
    TOKEN_LENGTH,
    RefreshToken,
    RefreshTokenCodec,
    _PreparedHMAC,
    derive_mac_key,
    encode_sid,
    hash_secret,
    new_secret,
    new_sid,
)
from keyfob.exceptions import ConfigurationError, MalformedToken

KEY = derive_mac_key(b"k" * 32)
OTHER_KEY = derive_mac_key(b"o" * 32)


@pytest.fixture
def codec() -> RefreshTokenCodec:
    return RefreshTokenCodec([KEY])


def _mint(codec: RefreshTokenCodec, counter: int = 0) -> tuple[str, str, bytes]:
    sid, secret = encode_sid(new_sid()), new_secret()
    return codec.mint(sid, secret, counter).value, sid, secret


def test_round_trip(codec: RefreshTokenCodec) -> None:
    """A minted token parses back to its session id, secret and counter."""
    text, sid, secret = _mint(codec, counter=41)
    parsed = codec.parse(text)
    assert (parsed.sid, parsed.secret, parsed.counter) == (sid, secret, 41)
    assert parsed.secret_hash == hash_secret(secret)


def test_shape(codec: RefreshTokenCodec) -> None:
    """Tokens are kfrt_ + URL-safe base64 without padding, always the same length."""
    text, _, _ = _mint(codec)
    assert text.startswith(PREFIX)
    assert len(text) == TOKEN_LENGTH
    assert "=" not in text and "+" not in text and "/" not in text


def test_parse_accepts_a_refresh_token_object(codec: RefreshTokenCodec) -> None:
    """parse() takes the RefreshToken object as well as its text."""
    token = codec.mint(encode_sid(new_sid()), new_secret(), 3)
    assert codec.parse(token).counter == 3


def test_successors_differ_only_by_counter_and_mac(codec: RefreshTokenCodec) -> None:
    """Minting the same session at the same counter twice gives the identical token."""
    sid, secret = encode_sid(new_sid()), new_secret()
    assert codec.mint(sid, secret, 5) == codec.mint(sid, secret, 5)
    assert codec.mint(sid, secret, 5) != codec.mint(sid, secret, 6)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "kfrt_",
        "kfrt_abc",
        "Bearer xyz",
        "x" * TOKEN_LENGTH,
        "kfrt_" + "A" * (TOKEN_LENGTH - 5),
        "kfrt_" + "!" * (TOKEN_LENGTH - 5),
        "kfrt_" + "é" * (TOKEN_LENGTH - 5),
        "k" * 100_000,
    ],
)
def test_garbage_is_malformed(codec: RefreshTokenCodec, bad: str) -> None:
    """Anything that is not a minted token raises MalformedToken."""
    with pytest.raises(MalformedToken):
        codec.parse(bad)


@pytest.mark.parametrize("bad", [None, 42, b"kfrt_", ["kfrt_"]])
def test_non_text_is_malformed(codec: RefreshTokenCodec, bad: object) -> None:
    """A value that is not text at all raises MalformedToken, not TypeError."""
    with pytest.raises(MalformedToken):
        codec.parse(bad)  # type: ignore[arg-type]


def test_truncated_and_extended_tokens_are_malformed(codec: RefreshTokenCodec) -> None:
    """A token with a character removed or added is refused."""
    text, _, _ = _mint(codec)
    for bad in (text[:-1], text + "A", text[1:]):
        with pytest.raises(MalformedToken):
            codec.parse(bad)


def test_every_single_character_change_is_refused(codec: RefreshTokenCodec) -> None:
    """Changing any one character of a token makes it invalid (the MAC covers all of it)."""
    text, _, _ = _mint(codec)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i in range(len(PREFIX), len(text)):
        replacement = alphabet[(alphabet.index(text[i]) + 1) % len(alphabet)]
        with pytest.raises(MalformedToken):
            codec.parse(text[:i] + replacement + text[i + 1 :])


def test_forged_counter_is_refused(codec: RefreshTokenCodec) -> None:
    """Raising the counter inside a real token without the MAC key is detected."""
    text, _, _ = _mint(codec, counter=1)
    raw = bytearray(base64.urlsafe_b64decode(text[len(PREFIX) :] + "=="))
    raw[1 + 16 + 16 + 7] += 1  # last byte of the counter
    forged = PREFIX + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(MalformedToken):
        codec.parse(forged)


def test_token_from_another_deployment_is_refused(codec: RefreshTokenCodec) -> None:
    """A token minted under another deployment secret is refused."""
    foreign = RefreshTokenCodec([OTHER_KEY]).mint(encode_sid(new_sid()), new_secret(), 0)
    with pytest.raises(MalformedToken):
        codec.parse(foreign)


def test_previous_deployment_secret_still_accepted() -> None:
    """After secret rotation, tokens minted under the old secret still parse."""
    old = RefreshTokenCodec([OTHER_KEY]).mint(encode_sid(new_sid()), new_secret(), 2)
    rotated = RefreshTokenCodec([KEY, OTHER_KEY])
    assert rotated.parse(old).counter == 2
    new = rotated.mint(encode_sid(new_sid()), new_secret(), 0)
    with pytest.raises(MalformedToken):
        RefreshTokenCodec([OTHER_KEY]).parse(new)


def test_refresh_token_prints_masked() -> None:
    """repr and str show only the prefix and the last three characters."""
    token = RefreshTokenCodec([KEY]).mint(encode_sid(new_sid()), new_secret(), 0)
    for shown in (repr(token), str(token), f"{token}"):
        assert token.value not in shown
        assert shown == f"RefreshToken('kfrt_…{token.value[-3:]}')"


def test_refresh_token_equality_is_by_value() -> None:
    """Two RefreshToken objects with the same text are equal and hash alike."""
    assert RefreshToken("kfrt_x") == RefreshToken("kfrt_x")
    assert len({RefreshToken("kfrt_x"), RefreshToken("kfrt_x")}) == 1


def test_short_deployment_secret_is_refused() -> None:
    """A deployment secret shorter than 32 bytes is a configuration error."""
    with pytest.raises(ConfigurationError):
        derive_mac_key(b"short")


def test_codec_needs_a_key() -> None:
    """A codec without keys cannot be built."""
    with pytest.raises(ConfigurationError):
        RefreshTokenCodec([])


@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_malformed(text: str) -> None:
    """Fuzz: arbitrary text never raises anything but MalformedToken."""
    with pytest.raises(MalformedToken):
        RefreshTokenCodec([KEY]).parse(text)


@given(st.binary(min_size=73, max_size=73))
def test_arbitrary_well_shaped_tokens_fail_the_mac(raw: bytes) -> None:
    """Fuzz: a correctly shaped token with random contents fails the MAC check."""
    text = PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    with pytest.raises(MalformedToken):
        RefreshTokenCodec([KEY]).parse(text)


@given(key=st.binary(min_size=1, max_size=200), message=st.binary(max_size=300))
def test_the_prepared_mac_is_hmac_sha256(key: bytes, message: bytes) -> None:
    """The MAC with precomputed key states equals ``hmac.digest`` for any key and message
    (keys longer than SHA-256's block are hashed first, as RFC 2104 says)."""
    assert _PreparedHMAC(key).digest(message) == hmac.digest(key, message, "sha256")


def test_a_token_carries_the_rfc_2104_mac_of_its_body(codec: RefreshTokenCodec) -> None:
    """The last 32 bytes are HMAC-SHA256 under the MAC key of the bytes before them."""
    text, _, _ = _mint(codec, counter=7)
    raw = base64.urlsafe_b64decode(text[len(PREFIX) :] + "=" * (-len(text[len(PREFIX) :]) % 4))
    assert raw[-32:] == hmac.digest(KEY, raw[:-32], "sha256")
