"""keyfob's one frozen settings object (spec §8).

Build it in code (``Settings(access_ttl=300)``), from the environment
(``Settings.from_env()`` reads ``KEYFOB_*``), or both (``Settings.from_env(overrides)``).
Durations accept seconds or a unit suffix: ``900``, ``15m``, ``7d``. Secrets print
masked.

Each setting is described once, where ``Settings`` declares it; :data:`SETTINGS` lists
the descriptions, from which ``keyfob serve`` builds its flags and help and
``python -m keyfob.settings --markdown`` the documentation's table.

    model.py              Settings, SETTINGS and the enumerated values
    fields.py             setting(): how a field is described; SettingDescription
    values.py             text -> value parsers, durations, Secret
    deployment_secret.py  load_deployment_secret(): the secret, or one generated for SQLite
    markdown.py           the KEYFOB_* table of the docs
"""

from __future__ import annotations

from .deployment_secret import load_deployment_secret
from .fields import SettingDescription
from .model import FAST_SETTINGS_OVERRIDES, SETTINGS, Settings
from .values import Secret, parse_duration

__all__ = [
    "FAST_SETTINGS_OVERRIDES",
    "SETTINGS",
    "Secret",
    "SettingDescription",
    "Settings",
    "load_deployment_secret",
    "parse_duration",
]
