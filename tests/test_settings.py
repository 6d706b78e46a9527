"""Settings: durations, environment variables, masking, and the deployment secret."""

from __future__ import annotations

import os
import stat
from dataclasses import fields
from pathlib import Path
from typing import get_args

import pytest

from keyfob import ConfigurationError, Secret, Settings
from keyfob.settings import SETTINGS, load_deployment_secret, parse_duration
from keyfob.settings.model import CookieMode, LogFormat, ReusePolicy, SigningAlg, SqliteSync
from keyfob.settings.values import format_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("900", 900),
        ("15m", 900),
        ("7d", 604800),
        ("10s", 10),
        ("2h", 7200),
        ("1w", 604800),
        ("0", 0),
        ("1.5m", 90),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    """Durations are seconds or a number with a unit suffix."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "15 minutes", "-1", "m", "1y", "abc"])
def test_bad_durations(bad: str) -> None:
    """A duration that cannot be read is a ConfigurationError with an example in the message."""
    with pytest.raises(ConfigurationError, match="15m"):
        parse_duration(bad)


def test_from_env_reads_the_documented_names() -> None:
    """KEYFOB_* variables fill the settings with the spec's names and units."""
    env = {
        "KEYFOB_STORE_URL": "sqlite:///x.db",
        "KEYFOB_ACCESS_TTL": "5m",
        "KEYFOB_IDLE_TTL": "1d",
        "KEYFOB_ABSOLUTE_TTL": "2d",
        "KEYFOB_GRACE": "0",
        "KEYFOB_REUSE_POLICY": "user",
        "KEYFOB_SIGNING_ALG": "EdDSA",
        "KEYFOB_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
        "KEYFOB_INSECURE_DEV_COOKIES": "true",
        "KEYFOB_SECRET": "s" * 40,
        "KEYFOB_ISSUER": "https://auth.example",
    }
    s = Settings.from_env(environ=env)
    assert (s.access_ttl, s.idle_ttl, s.absolute_ttl, s.grace) == (300, 86400, 172800, 0)
    assert s.reuse_policy == "user" and s.signing_alg == "EdDSA"
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.insecure_dev_cookies is True
    assert s.effective_audience == "https://auth.example"


def test_bad_choice_is_refused() -> None:
    """An unknown algorithm or policy names the allowed values."""
    with pytest.raises(ConfigurationError, match="ES256"):
        Settings(signing_alg="HS256")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="session"):
        Settings.from_env(environ={"KEYFOB_REUSE_POLICY": "everyone"})


def test_settings_are_frozen_and_secrets_masked() -> None:
    """Settings cannot be changed in place and never print the secret."""
    s = Settings(secret=Secret("x" * 40))
    with pytest.raises(AttributeError):
        s.grace = 5  # type: ignore[misc]
    assert "x" * 40 not in repr(s)
    assert "x" * 40 not in str(s.secret)


def test_secret_generated_once_beside_sqlite(tmp_path: Path) -> None:
    """Without a secret, SQLite gets one generated once into a 0600 file beside the database."""
    s = Settings(store_url=f"sqlite:///{tmp_path}/keyfob.db")
    first = load_deployment_secret(s)
    path = tmp_path / "keyfob.db.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_deployment_secret(s) == first
    assert len(first[0]) >= 32


def test_secret_required_for_postgres() -> None:
    """PostgreSQL needs an explicit secret: instances must share it."""
    with pytest.raises(ConfigurationError, match="KEYFOB_SECRET"):
        load_deployment_secret(Settings(store_url="postgresql://localhost/keyfob"))


def test_secret_file_and_previous_secrets(tmp_path: Path) -> None:
    """A secret file is read; previous secrets follow the current one."""
    f = tmp_path / "secret"
    f.write_text("f" * 40 + "\n")
    os.chmod(f, 0o600)
    s = Settings(secret_file=str(f), previous_secrets=(Secret("p" * 40),))
    assert load_deployment_secret(s) == [b"f" * 40, b"p" * 40]


def test_short_or_missing_secret_is_refused(tmp_path: Path) -> None:
    """A too-short secret or an unreadable secret file is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_deployment_secret(Settings(secret=Secret("short")))
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_deployment_secret(Settings(secret_file=str(tmp_path / "missing")))


def test_every_field_is_described_once() -> None:
    """SETTINGS describes every Settings field, in order, with a help text and a variable."""
    described = [s.name for s in SETTINGS]
    assert described == [f.name for f in fields(Settings)]
    for s in SETTINGS:
        assert s.help and s.default_text, s.name
        assert s.env == "KEYFOB_" + s.name.upper()
        assert s.default == getattr(Settings(), s.name), "the description's default is the field's"


def test_literal_defaults_read_back_as_the_default() -> None:
    """A default shown as a value (15m, 10000, ES256) is what its variable would hold."""
    literal = [s for s in SETTINGS if s.default_is_literal]
    assert {"access_ttl", "store_url", "signing_alg", "verified_token_cache_size"} <= {
        s.name for s in literal
    }
    for s in literal:
        env = {s.env: s.default_text}
        assert getattr(Settings.from_env(environ=env), s.name) == s.default, s.name


def test_every_variable_is_read_by_its_description() -> None:
    """Each KEYFOB_* variable goes through its setting's parser (durations, lists, switches)."""
    env = {
        "KEYFOB_PREVIOUS_SECRETS": "a" * 40 + ", " + "b" * 40,
        "KEYFOB_PASSWORD_MIN_LENGTH": "12",
        "KEYFOB_VERIFIED_TOKEN_CACHE_SIZE": "0",
        "KEYFOB_KEY_RELOAD_INTERVAL": "2m",
        "KEYFOB_SQLITE_SYNCHRONOUS": "normal",
        "KEYFOB_INSECURE_DEV_COOKIES": "off",
    }
    s = Settings.from_env(environ=env)
    assert s.previous_secrets == (Secret("a" * 40), Secret("b" * 40))
    assert (s.password_min_length, s.verified_token_cache_size) == (12, 0)
    assert s.key_reload_interval == 120
    assert s.sqlite_synchronous == "normal" and s.insecure_dev_cookies is False
    with pytest.raises(ConfigurationError, match="whole number"):
        Settings.from_env(environ={"KEYFOB_PASSWORD_MIN_LENGTH": "ten"})
    with pytest.raises(ConfigurationError, match="KEYFOB_INSECURE_DEV_COOKIES"):
        Settings.from_env(environ={"KEYFOB_INSECURE_DEV_COOKIES": "maybe"})
    with pytest.raises(ConfigurationError, match="unknown setting"):
        Settings.from_env({"nonsense": "1"}, environ={})


def test_enumerated_values_are_written_once() -> None:
    """The choices of each enumerated setting are its Literal type's values, which the
    modules that act on them import (core.jwk, the cookie policy, the SQLite store)."""
    choices = {s.name: s.choices for s in SETTINGS if s.choices}
    assert choices == {
        "reuse_policy": get_args(ReusePolicy),
        "signing_alg": get_args(SigningAlg),
        "id_token_alg": get_args(SigningAlg),
        "cookie_mode": get_args(CookieMode),
        "sqlite_synchronous": get_args(SqliteSync),
        "log_format": get_args(LogFormat),
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15m"), (604800, "7d"), (60, "1m"), (3600, "1h"), (10, "10s"), (0, "0s"), (1.5, "1.5s")],
)
def test_durations_are_shown_as_they_are_written(seconds: float, text: str) -> None:
    """format_duration writes the shortest exact text, which parse_duration reads back."""
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_a_secret_given_as_plain_text_is_wrapped_and_never_shown() -> None:
    settings = Settings(
        secret="plain-text-secret-plain-text-secret-0123", previous_secrets=("old-one",)
    )  # type: ignore[arg-type]
    assert isinstance(settings.secret, Secret)
    assert settings.secret.reveal() == "plain-text-secret-plain-text-secret-0123"
    assert [s.reveal() for s in settings.previous_secrets] == ["old-one"]
    assert "plain-text" not in repr(settings)
