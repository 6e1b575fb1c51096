"""Fake ``modal.App``, ``modal.Secret`` and ``modal.Image``.

An image's layers are recorded, not built: the fake's sandboxes run on the host's files, with the
host's Python standing in for the image's. So a build checks what it can against the host (a
pinned ``pip_install`` must match the installed version, a known ``apt_install`` binary must
exist) and fails with the real ``ImageBuildError`` where the host could not stand in.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import modal
from modal.exception import ImageBuildError, InvalidError, NotFoundError

from . import _state
from ._bridge import api, bind_plain
from .supervisor import check_mount_target

# apt packages whose presence on the host the fake can check, and the binary each provides.
APT_BINARIES = {
    "git": "git",
    "curl": "curl",
    "nodejs": "node",
    "npm": "npm",
    "ripgrep": "rg",
    "bubblewrap": "bwrap",
    "procps": "ps",
    "openssh-client": "ssh",
}


class App:
    """``modal.App`` as returned by ``App.lookup``: a name and a stable ``app_id``."""

    def __init__(self, name: str, app_id: str) -> None:
        self.name = name
        self._app_id = app_id

    @property
    def app_id(self) -> str:
        return self._app_id

    def __repr__(self) -> str:
        return f"App({self.name!r})"

    @api(lambda: modal.App.lookup)
    async def lookup(cls, a: dict[str, Any]) -> App:
        from modal._utils.name_utils import check_object_name, is_app_id

        name = a["name"]
        if is_app_id(name):
            if a["create_if_missing"]:
                raise InvalidError("`create_if_missing=True` is not supported when looking up an App by ID.")
        else:
            check_object_name(name, "App")
        await _state.network_call()
        with _state.locked():
            apps = _state.read_json(_state.root() / "apps.json", {})
            if is_app_id(name):
                for app_name, app_id in apps.items():
                    if app_id == name:
                        return App(app_name, app_id)
                raise NotFoundError(f"App {name!r} not found")
            if name not in apps:
                if not a["create_if_missing"]:
                    raise NotFoundError(f"Could not find App '{name}'")
                apps[name] = _state.new_id("ap")
                _state.write_json(_state.root() / "apps.json", apps)
            return App(name, apps[name])


class Secret:
    """``modal.Secret``: a dict of variables, or a name resolved from secrets.json when used."""

    def __init__(self, *, values: dict[str, str] | None = None, name: str | None = None,
                 required_keys: list[str] | None = None) -> None:  # fmt: skip
        self._values = values
        self._name = name
        self._required_keys = list(required_keys or [])

    def __repr__(self) -> str:
        if self._name is not None:
            return f"modal.Secret.from_name({self._name!r})"
        return f"Secret.from_dict([{', '.join(self._values or {})}])"

    def _describe(self) -> dict[str, Any]:
        if self._name is not None:
            return {"secret": "from_name", "name": self._name}
        return {"secret": "from_dict", "keys": sorted(self._values or {})}

    @staticmethod
    def from_dict(*args: Any, **kwargs: Any) -> Secret:
        a = bind_plain(modal.Secret.from_dict, "Secret.from_dict", None, args, kwargs)
        env_dict = a["env_dict"]
        if not isinstance(env_dict, dict):
            raise InvalidError(f"Secret.from_dict expects a dict, got {type(env_dict).__name__}")
        values = {k: v for k, v in env_dict.items() if v is not None}
        for key, value in values.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidError(f"Secret.from_dict expects str keys and values; bad entry for {key!r}")
        return Secret(values=values)

    @staticmethod
    def from_name(*args: Any, **kwargs: Any) -> Secret:
        a = bind_plain(modal.Secret.from_name, "Secret.from_name", None, args, kwargs)
        return Secret(name=a["name"], required_keys=a["required_keys"])

    @api(lambda: modal.Secret.hydrate)
    async def hydrate(self, a: dict[str, Any]) -> Secret:
        """Look the secret up now (a named one fails here when it does not exist)."""
        await _state.network_call()
        self._resolve()
        return self

    def _resolve(self) -> dict[str, str]:
        """The secret's variables; a named secret is looked up now, as Modal does when it is used."""
        if self._values is not None:
            return dict(self._values)
        named = _state.read_json(_state.root() / "secrets.json", {})
        if self._name not in named:
            raise NotFoundError(f"Secret '{self._name}' not found")
        values = {str(k): str(v) for k, v in named[self._name].items()}
        missing = [k for k in self._required_keys if k not in values]
        if missing:
            raise NotFoundError(f"Secret '{self._name}' is missing required keys: {', '.join(missing)}")
        return values


def _image_dir(image_id: str) -> Path:
    return _state.root() / "images" / image_id


def load_image_record(image_id: str) -> dict[str, Any]:
    """A stored image, or NotFoundError when it never existed or its ttl has passed."""
    record = _state.read_json(_image_dir(image_id) / "image.json")
    if record is None:
        raise NotFoundError(f"Image {image_id} not found")
    expires_at = record.get("expires_at")
    if expires_at is not None and expires_at <= time.time():
        raise NotFoundError(f"Image {image_id} not found: it expired")
    return record


def expire_image(fake_root: str | os.PathLike[str], image_id: str) -> None:
    """Make an image (e.g. a snapshot) expire now, as its ttl running out would."""
    path = Path(fake_root) / "images" / image_id / "image.json"
    record = json.loads(path.read_text())
    record["expires_at"] = time.time() - 1
    path.write_text(json.dumps(record))


class Image:
    """``modal.Image``: a recorded list of layers, content-addressed once built."""

    def __init__(self, layers: list[dict[str, Any]], *, object_id: str | None = None) -> None:
        self._layers = layers
        self._object_id = object_id

    def __repr__(self) -> str:
        if self._object_id and not self._layers:
            return f"Image.from_id({self._object_id!r})"
        return f"Image({[layer['op'] for layer in self._layers]})"

    @property
    def object_id(self) -> str | None:
        return self._object_id

    def _content_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self._layers, sort_keys=True, default=str).encode()).digest()
        return _state.hash_id("im", digest)

    def _with(self, real_name: str, args: tuple, kwargs: dict) -> Image:
        a = bind_plain(getattr(modal.Image, real_name), f"Image.{real_name}", self, args, kwargs)
        layer = {"op": real_name, **_jsonable(a)}
        base = self._layers if self._layers or not self._object_id else [{"op": "from_id", "image_id": self._object_id}]
        return Image([*base, layer])

    # Constructors (no I/O in real modal either).
    @staticmethod
    def debian_slim(*args: Any, **kwargs: Any) -> Image:
        a = bind_plain(modal.Image.debian_slim, "Image.debian_slim", None, args, kwargs)
        if isinstance(a["python_version"], float):
            raise TypeError("The `python_version` argument should be a string, not a float.")
        return Image([{"op": "debian_slim", **_jsonable(a)}])

    @staticmethod
    def from_registry(*args: Any, **kwargs: Any) -> Image:
        a = bind_plain(modal.Image.from_registry, "Image.from_registry", None, args, kwargs)
        a.pop("secret", None)
        return Image([{"op": "from_registry", **_jsonable(a)}])

    @api(lambda: modal.Image.from_id, record=False)
    async def _from_id_aio(cls, a: dict[str, Any]) -> Image:
        return Image([], object_id=a["image_id"])

    class _FromId:
        """``Image.from_id(id)`` does no I/O (an unknown id fails when the image is used);
        ``Image.from_id.aio`` exists but real modal 1.6 warns that it is deprecated."""

        def __get__(self, instance: Any, owner: type) -> Image._FromId:
            self._owner = owner
            return self

        def __call__(self, *args: Any, **kwargs: Any) -> Image:
            a = bind_plain(modal.Image.from_id, "Image.from_id", self._owner, args, kwargs)
            return Image([], object_id=a["image_id"])

        def aio(self, *args: Any, **kwargs: Any) -> Any:
            from modal._utils.deprecation import deprecation_warning

            deprecation_warning(
                (2025, 11, 14),
                "The async constructor Image.from_id.aio(...) will be deprecated in a future version of Modal.\n"
                "Please use Image.from_id(...) instead (it doesn't perform any IO, and is safe in async contexts)",
            )
            return self._owner._from_id_aio.aio(*args, **kwargs)

    from_id = _FromId()

    # Layers.
    def apt_install(self, *args: Any, **kwargs: Any) -> Image:
        return self._with("apt_install", args, kwargs)

    def pip_install(self, *args: Any, **kwargs: Any) -> Image:
        return self._with("pip_install", args, kwargs)

    def run_commands(self, *args: Any, **kwargs: Any) -> Image:
        return self._with("run_commands", args, kwargs)

    def env(self, *args: Any, **kwargs: Any) -> Image:
        image = self._with("env", args, kwargs)
        bad = [k for k, v in image._layers[-1]["vars"].items() if not isinstance(v, str)]
        if bad:
            raise InvalidError(f"Image ENV variables must be strings. Invalid keys: {bad}")
        return image

    def add_local_dir(self, *args: Any, **kwargs: Any) -> Image:
        image = self._with("add_local_dir", args, kwargs)
        _check_local_layer(image._layers[-1], "add_local_dir")
        return image

    def add_local_file(self, *args: Any, **kwargs: Any) -> Image:
        image = self._with("add_local_file", args, kwargs)
        _check_local_layer(image._layers[-1], "add_local_file")
        return image

    @api(lambda: modal.Image.build)
    async def build(self, a: dict[str, Any]) -> Image:
        await _state.network_call()
        return self._build()

    def _build(self) -> Image:
        """Resolve the image as Sandbox.create would: load it by id, or "build" its layers."""
        if self._object_id and not self._layers:
            load_image_record(self._object_id)
            return self
        image_id = self._content_id()
        if self._layers and self._layers[0]["op"] == "from_id":
            load_image_record(self._layers[0]["image_id"])
        record = _state.read_json(_image_dir(image_id) / "image.json")
        if record is None:
            log = _check_against_host(self._layers, image_id)
            _image_dir(image_id).mkdir(parents=True, exist_ok=True)
            record = {"id": image_id, "kind": "built", "layers": self._layers, "build_log": log,
                      "built_at": time.time(), "expires_at": None}  # fmt: skip
            _state.write_json(_image_dir(image_id) / "image.json", record)
        self._object_id = image_id
        return self


def _jsonable(a: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in a.items():
        if key in ("secrets", "secret"):
            out[key] = [s._describe() for s in value or []] if key == "secrets" else None
        elif isinstance(value, os.PathLike):
            out[key] = os.fspath(value)
        elif isinstance(value, (list, tuple)):
            out[key] = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        elif callable(value):
            out[key] = repr(value)
        else:
            out[key] = value
    return out


def _check_local_layer(layer: dict[str, Any], name: str) -> None:
    local, remote = layer["local_path"], layer["remote_path"]
    if not str(remote).startswith("/"):
        raise InvalidError(f"image.{name}() currently only supports absolute remote_path values")
    if not os.path.exists(local):
        raise FileNotFoundError(f"local path {local!r} given to Image.{name} does not exist")
    try:
        check_mount_target(remote)
    except ValueError as exc:
        raise InvalidError(str(exc)) from None


def _flatten(packages: Any) -> list[str]:
    out: list[str] = []
    for item in packages:
        out.extend(item if isinstance(item, list) else [item])
    return out


def _check_against_host(layers: list[dict[str, Any]], image_id: str) -> list[str]:
    """What a build would do, refused where the host cannot stand in for the image."""
    from packaging.requirements import InvalidRequirement, Requirement

    log: list[str] = []
    for layer in layers:
        op = layer["op"]
        if op == "pip_install":
            for spec in _flatten(layer["packages"]):
                log.append(f"pip install {spec}")
                try:
                    req = Requirement(spec)
                except InvalidRequirement:
                    continue  # a URL or path: recorded only
                try:
                    installed = importlib.metadata.version(req.name)
                except importlib.metadata.PackageNotFoundError:
                    raise ImageBuildError(
                        f"Image build for {image_id} failed: {req.name} is not installed in the "
                        "Python the fake modal uses as the image's", image_id) from None  # fmt: skip
                if req.specifier and not req.specifier.contains(installed, prereleases=True):
                    raise ImageBuildError(
                        f"Image build for {image_id} failed: the image asks for {spec} but the "
                        f"fake's Python has {req.name} {installed}", image_id)  # fmt: skip
        elif op == "apt_install":
            for package in _flatten(layer["packages"]):
                log.append(f"apt-get install {package}")
                binary = APT_BINARIES.get(package.split("=")[0])
                if binary and shutil.which(binary) is None:
                    raise ImageBuildError(
                        f"Image build for {image_id} failed: {package} ({binary}) is not on the "
                        "host the fake modal uses as the image", image_id)  # fmt: skip
        elif op == "run_commands":
            log.extend(f"RUN {c} (recorded, not run)" for c in _flatten(layer["commands"]))
        else:
            log.append(json.dumps(layer, default=str))
    return log
