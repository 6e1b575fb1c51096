"""The fake's state on disk, its ids, and the failure modes of a real API it imitates.

Everything lives under ``$CLOUDWS_FAKE_MODAL_ROOT`` so that a sandbox outlives the process that
made it and a fresh process finds it by id, as with Modal's servers:

    apps.json                    {app name: app id}
    secrets.json                 named secrets, {name: {VAR: value}} (written by tests)
    images/<im-id>/image.json    a built or snapshot image; snapshots also keep fs/
    sandboxes/<sb-id>/           spec.json, env.json, runtime.json, result.json, tags.json, fs/
    calls.jsonl                  every call with its bound arguments, secret values masked
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets as _secrets
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modal.exception import AuthError, InvalidError

ROOT_ENV = "CLOUDWS_FAKE_MODAL_ROOT"
UNREACHABLE_ENV = "CLOUDWS_FAKE_MODAL_UNREACHABLE"

_ID_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
# Real modal's own words when no token is configured (modal/client.py, Client.from_env).
TOKEN_MISSING_MESSAGE = (
    "Token missing. Could not authenticate client."
    " If you have token credentials, see modal.com/docs/sdk/py/latest/config for setup help."
    " If you are a new user, register an account at modal.com, then run `modal token new`."
)


def root() -> Path:
    value = os.environ.get(ROOT_ENV)
    if not value:
        raise RuntimeError(f"{ROOT_ENV} is not set: the fake modal keeps its apps, images and sandboxes there")
    path = Path(value)
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_id(prefix: str) -> str:
    """An id shaped like Modal's: a type prefix and 22 base-62 characters (``sb-…``, ``im-…``)."""
    return f"{prefix}-" + "".join(_secrets.choice(_ID_ALPHABET) for _ in range(22))


def hash_id(prefix: str, digest: bytes) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(22):
        number, rest = divmod(number, len(_ID_ALPHABET))
        chars.append(_ID_ALPHABET[rest])
    return f"{prefix}-" + "".join(chars)


def write_json(path: Path, data: Any, *, private: bool = False) -> None:
    """Replace a JSON file at once, so a reader in another process never sees half of it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked(name: str = ".lock") -> Iterator[None]:
    """Serialise read-modify-write of shared files between processes."""
    with open(root() / name, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_modal_toml() -> dict[str, Any]:
    path = os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")
    if not os.path.exists(path):
        return {}
    try:
        try:
            import tomllib
        except ImportError:  # Python 3.10; modal depends on `toml`
            import toml

            return dict(toml.load(path))
        with open(path, "rb") as f:
            return tomllib.load(f)
    except Exception as exc:
        raise InvalidError(f"\nError when reading the modal configuration from `{path}`.\n\n{exc}")


def has_credentials() -> bool:
    """Whether real modal would find credentials now (modal/config.py and client.py).

    Each setting is ``MODAL_<KEY>`` from the environment, else the key in the active profile of
    ``$MODAL_CONFIG_PATH`` or ``~/.modal.toml`` (profile ``$MODAL_PROFILE``, else the one marked
    ``active``, else ``default``). A token needs both id and secret; OAuth needs refresh token,
    client id and a client secret or JWT key. Real modal reads the file once at import; the fake
    reads it at each call so a test can change it.
    """
    config = _read_modal_toml()
    profile = os.environ.get("MODAL_PROFILE") or next(
        (name for name, values in config.items() if isinstance(values, dict) and values.get("active") is True),
        "default",
    )
    section = config.get(profile) if isinstance(config.get(profile), dict) else {}

    def get(key: str) -> str | None:
        env_key = "MODAL_" + key.upper()
        if env_key in os.environ:
            return os.environ[env_key]
        value = section.get(key)
        return None if value is None else str(value)

    if get("token_id") and get("token_secret"):
        return True
    return bool(get("oauth_refresh_token") and get("oauth_client_id")) and (
        bool(get("oauth_client_secret")) != bool(get("oauth_jwt_key"))
    )


async def network_call() -> None:
    """Every call that would reach Modal's servers passes here first.

    No credentials: ``AuthError`` at once, like real modal. ``CLOUDWS_FAKE_MODAL_UNREACHABLE=1``:
    the call never returns until cancelled, like an API that cannot be reached (real modal gives
    up with ``modal.exception.ConnectionError`` only after about a minute).
    """
    if not has_credentials():
        raise AuthError(TOKEN_MISSING_MESSAGE)
    if os.environ.get(UNREACHABLE_ENV) == "1":
        await asyncio.get_running_loop().create_future()


def _describe(value: Any) -> Any:
    from ._objects import App, Image, Secret

    if isinstance(value, Secret):
        return value._describe()
    if isinstance(value, Image):
        return {"image": value.object_id or value._content_id()}
    if isinstance(value, App):
        return {"app": value.app_id}
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_describe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def record_call(name: str, arguments: dict[str, Any]) -> None:
    """Append one call to calls.jsonl; secret values appear only as key names."""
    if not os.environ.get(ROOT_ENV):
        return
    line = json.dumps({"call": name, "args": _describe(arguments), "at": time.time()})
    fd = os.open(root() / "calls.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def read_calls(fake_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The calls recorded under a fake root, oldest first."""
    path = Path(fake_root) / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
