"""GitHub's published REST contract, for holding the fake GitHub (``fake_github.py``) to it.

The contract is GitHub's official OpenAPI description as the npm package ``@octokit/openapi``
ships it (``generated/api.github.com.json``, OpenAPI 3.0.3). ``scripts/test.sh`` fetches it into
``.cache/octokit/``; ``CLOUDWS_GITHUB_OPENAPI`` may name another copy. Without it the fake cannot
start, and says how to get it: a test that needs the contract fails, it never skips.

From the description this module takes, per operation, the example answer (the fake fills in real
values) and the response and request-body schemas (every answer and body is validated). OpenAPI
3.0's ``nullable: true`` is not JSON Schema: it is rewritten to a ``null`` type first.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

import jsonschema

SPEC_ENV = "CLOUDWS_GITHUB_OPENAPI"
SPEC_PACKAGE = "@octokit/openapi@23.0.2"
DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[2] / ".cache" / "octokit" / "api.github.com.json"

# The operations the fake serves: operationId -> (method, path template, success status).
OPERATIONS: dict[str, tuple[str, str, int]] = {
    "repos/list-for-authenticated-user": ("get", "/user/repos", 200),
    "repos/get": ("get", "/repos/{owner}/{repo}", 200),
    "repos/list-branches": ("get", "/repos/{owner}/{repo}/branches", 200),
    "pulls/list": ("get", "/repos/{owner}/{repo}/pulls", 200),
    "pulls/get": ("get", "/repos/{owner}/{repo}/pulls/{pull_number}", 200),
    "pulls/create": ("post", "/repos/{owner}/{repo}/pulls", 201),
}


_SCHEMA_REF = "#/components/schemas/"


class SpecMissing(RuntimeError):
    """The OpenAPI description is not where it should be."""


class ContractError(AssertionError):
    """An answer or a request body that GitHub's published schema does not allow."""


def spec_path() -> Path:
    return Path(os.environ.get(SPEC_ENV) or DEFAULT_SPEC_PATH)


def load_spec(path: str | Path | None = None) -> dict[str, Any]:
    """The parsed OpenAPI description, at ``path`` or :func:`spec_path`."""
    where = Path(path) if path else spec_path()
    if not where.is_file():
        raise SpecMissing(
            f"GitHub's OpenAPI description is missing at {where}. scripts/test.sh fetches it "
            f"(npm pack {SPEC_PACKAGE}, then generated/api.github.com.json into .cache/octokit/); "
            f"or point {SPEC_ENV} at a copy of that file."
        )
    return _read(str(where.resolve()))


@functools.lru_cache(maxsize=2)
def _read(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text())  # once per process: it is 13 MB


def _json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable: true`` becomes a ``null`` alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return out
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [{"type": "null"}, out]}  # a $ref, allOf, oneOf...: any of those, or null


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``) to what it names."""
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class Contract:
    """Examples and validators for the operations in :data:`OPERATIONS`."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec if spec is not None else load_spec()
        self._schemas: dict[str, Any] = {}  # converted lazily: all of them take seconds
        self._validators: dict[str, jsonschema.Draft202012Validator] = {}

    def operation(self, operation_id: str) -> dict[str, Any]:
        method, path, _ = OPERATIONS[operation_id]
        op = self.spec["paths"][path][method]
        assert op["operationId"] == operation_id, (op["operationId"], operation_id)
        return op

    def _validator(self, key: str, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        if key not in self._validators:
            # "#/components/schemas/..." resolves against this document's root, which carries
            # every schema the answer's refers to, directly or not.
            root = {**_json_schema(schema), "components": {"schemas": self._referenced(schema)}}
            self._validators[key] = jsonschema.Draft202012Validator(root)
        return self._validators[key]

    def _referenced(self, schema: Any) -> dict[str, Any]:
        """The component schemas ``schema`` refers to, directly or through others, converted."""
        names: set[str] = set()
        todo = [schema]
        while todo:
            node = todo.pop()
            if isinstance(node, list):
                todo += node
            elif isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
                    name = ref.removeprefix(_SCHEMA_REF)
                    if name not in names:
                        names.add(name)
                        todo.append(self.spec["components"]["schemas"][name])
                todo += [v for k, v in node.items() if k != "$ref"]
        for name in names - self._schemas.keys():
            self._schemas[name] = _json_schema(self.spec["components"]["schemas"][name])
        return {name: self._schemas[name] for name in names}

    def response_schema(self, operation_id: str, status: int) -> dict[str, Any]:
        """The schema of an answer; an error status the operation does not list gets GitHub's
        ``basic-error`` (the shape every GitHub error body has)."""
        responses = self.operation(operation_id)["responses"]
        response = _resolve(self.spec, responses.get(str(status), {}))
        content = response.get("content", {}).get("application/json")
        if content is None:
            if status < 400:
                raise ContractError(f"{operation_id} documents no JSON answer with status {status}")
            return {"$ref": "#/components/schemas/validation-error" if status == 422 else "#/components/schemas/basic-error"}
        return content["schema"]

    def example(self, operation_id: str) -> Any:
        """A fresh copy of the operation's documented example answer."""
        _, _, status = OPERATIONS[operation_id]
        content = _resolve(self.spec, self.operation(operation_id)["responses"][str(status)])["content"]
        examples = content["application/json"]["examples"]
        return copy.deepcopy(_resolve(self.spec, next(iter(examples.values())))["value"])

    def check_response(self, operation_id: str, status: int, body: Any) -> None:
        self._check(f"{operation_id} {status}", self.response_schema(operation_id, status), body)

    def check_request(self, operation_id: str, body: Any) -> None:
        request = self.operation(operation_id).get("requestBody")
        if request is None:
            raise ContractError(f"{operation_id} takes no request body")
        self._check(f"{operation_id} request", request["content"]["application/json"]["schema"], body)

    def _check(self, key: str, schema: dict[str, Any], body: Any) -> None:
        error = jsonschema.exceptions.best_match(self._validator(key, schema).iter_errors(body))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(the whole body)"
            raise ContractError(f"{key}: at {where}: {error.message[:500]}")


_contracts: dict[str, Contract] = {}


def default_contract() -> Contract:
    """One contract per description file and process: compiling the schemas is the slow part."""
    key = str(spec_path())
    if key not in _contracts:
        _contracts[key] = Contract(load_spec())
    return _contracts[key]
