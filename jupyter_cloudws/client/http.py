"""Requests to the hub's REST API: JSON in and out, errors as :class:`CloudwsError`."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from .errors import CloudwsError, ServerUnreachable, error_from_response


class HubHttp:
    """``{url}cloudws/api`` with ``Authorization: token ...`` (and any ``extra_headers``, e.g. a
    browser's cookies) on every request; ``verify`` is httpx's (an SSL context, or a bool).
    ``trust_env`` False ignores the proxy variables (``HTTP_PROXY``, ``ALL_PROXY``...) and netrc."""

    def __init__(
        self, url: str, token: str, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None,
        *, extra_headers: dict[str, str] | None = None, verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
    ) -> None:  # fmt: skip
        self.url = url
        self.api_url = url + "cloudws/api"
        self.headers = {**(extra_headers or {}), **({"Authorization": f"token {token}"} if token else {})}
        self._http = httpx.Client(
            base_url=self.api_url, headers=self.headers, timeout=timeout_s, transport=transport, verify=verify,
            trust_env=trust_env,
        )

    def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
        retry_transport_error: bool = False,
    ) -> Any:  # fmt: skip
        """The decoded JSON answer. A request that is safe to repeat (GET, PATCH, or one marked
        ``retry_transport_error``) is sent once more when it or its answer was lost on the way,
        e.g. on a pooled connection that a restarted server no longer holds."""
        tries = 2 if retry_transport_error or method in ("GET", "PATCH") else 1
        for attempt in range(1, tries + 1):
            try:
                response = self._http.request(method, path, json=json, params=params)
                break
            except httpx.TransportError as exc:
                if attempt == tries:
                    raise ServerUnreachable(
                        0, "unreachable", f"{method} {self.api_url}{path} failed: {type(exc).__name__}: {exc}"
                    ) from exc
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_error:
            raise error_from_response(response.status_code, body, response.text)
        if response.content and body is None:
            raise CloudwsError(response.status_code, "bad_response", f"{method} {path} did not answer JSON")
        return body

    def close(self) -> None:
        self._http.close()
