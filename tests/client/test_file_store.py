"""FileTokenStore: the refresh token on disk, 0600, replaced atomically, never loaded from
a file others can read."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from keyfob.client import FileTokenStore, KeyfobAuth, TokenFileError, TokenSet

from .fakes import API, Clock, FakeAuthServer, refresh_token


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_saved_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """Even under umask 000 the token file is readable by its owner only."""
    store = FileTokenStore(tmp_path / "token.json")
    old = os.umask(0)
    try:
        store.save(TokenSet(refresh_token="r1" * 20, access_token="a" * 40))
    finally:
        os.umask(old)
    assert _mode(tmp_path / "token.json") == 0o600


def test_the_file_holds_the_refresh_token_and_no_access_token(tmp_path: Path) -> None:
    """The access token stays in memory; load gives a set with the refresh token alone."""
    store = FileTokenStore(tmp_path / "token.json")
    store.save(TokenSet(refresh_token="r1" * 20, access_token="a-secret" * 5, expires_at=5.0))
    assert json.loads((tmp_path / "token.json").read_text()) == {"refresh_token": "r1" * 20}
    loaded = store.load()
    assert loaded is not None
    assert loaded.refresh_token == "r1" * 20
    assert loaded.access_token is None


def test_a_save_replaces_the_file_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    """A save is a rename over the old file (a new inode), and no temporary file remains;
    an existing 0644 file is replaced by a 0600 one."""
    path = tmp_path / "token.json"
    path.write_text('{"refresh_token": "old"}')
    path.chmod(0o644)
    before = path.stat().st_ino
    FileTokenStore(path).save(TokenSet(refresh_token="new-token"))
    assert path.stat().st_ino != before
    assert _mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]


def test_a_failed_write_keeps_the_old_token_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the write fails midway, the old file is untouched and no temporary is left."""
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    store.save(TokenSet(refresh_token="old-token"))

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError, match="No space"):
        store.save(TokenSet(refresh_token="new-token"))
    monkeypatch.undo()
    assert store.load() == TokenSet(refresh_token="old-token")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["token.json"]


def test_load_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    """Like ssh with a private key: a group- or world-readable token file is refused."""
    path = tmp_path / "token.json"
    FileTokenStore(path).save(TokenSet(refresh_token="r" * 40))
    path.chmod(0o640)
    with pytest.raises(TokenFileError, match="accessible by others"):
        FileTokenStore(path).load()


@pytest.mark.parametrize("content", [b"", b"not json", b"[]", b'{"refresh_token": 5}'])
def test_load_refuses_a_malformed_file(tmp_path: Path, content: bytes) -> None:
    """A file that holds no refresh token is a clear TokenFileError."""
    path = tmp_path / "token.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(TokenFileError, match="holds no refresh token"):
        FileTokenStore(path).load()


def test_load_of_a_missing_file_is_none_and_clear_removes_it(tmp_path: Path) -> None:
    """No file: None (log in). clear() forgets the token and is idempotent."""
    store = FileTokenStore(tmp_path / "token.json")
    assert store.load() is None
    store.save(TokenSet(refresh_token="r" * 40))
    store.clear()
    store.clear()
    assert store.load() is None


def test_the_store_as_token_saver_holds_each_new_token_before_it_is_used(
    tmp_path: Path, server: FakeAuthServer, clock: Clock
) -> None:
    """Passed as token_saver, the file already holds the successor when the API sees the
    new access token; a restarted program continues from the file."""
    path = tmp_path / "token.json"
    store = FileTokenStore(path)
    on_disk_at_api: list[str | None] = []

    def api(request: httpx.Request) -> httpx.Response:
        loaded = store.load()
        on_disk_at_api.append(loaded.refresh_token if loaded else None)
        return server.handler(request)

    token_client = httpx.Client(transport=httpx.MockTransport(server.handler))
    auth = KeyfobAuth(
        server.endpoint(), server.issue(), clock=clock, token_client=token_client, token_saver=store
    )
    clock.advance(900)
    with httpx.Client(transport=httpx.MockTransport(api), auth=auth) as client:
        assert client.get(f"{API}/x").status_code == 200
    assert on_disk_at_api == [refresh_token(1)]

    restored = store.load()
    assert restored is not None
    again = KeyfobAuth(
        server.endpoint(), restored, clock=clock, token_client=token_client, token_saver=store
    )
    with httpx.Client(transport=httpx.MockTransport(server.handler), auth=again) as client:
        assert client.get(f"{API}/x").status_code == 200
    assert server.refreshes == [refresh_token(0), refresh_token(1)]
    assert store.load() == TokenSet(refresh_token=refresh_token(2))
