"""The panel's :class:`~jupyter_cloudws.client.Client`: this same server's API, over loopback,
as the browser user.

The panel's controller drives sessions through the same REST and WebSocket API as a kernel's
client, so ownership, authorization and every check of the API apply unchanged. It must ask as
the person whose browser opened the panel, never as the server: so it carries the credentials
of the panel's WebSocket handshake (the ``Cookie`` header, with the ``_xsrf`` cookie also sent
as ``X-XSRFToken`` since jupyter-server checks it for cookie-authenticated writes; an
``Authorization`` header; or a ``?token=`` query argument) and never the server's own token.
"""

from __future__ import annotations

import ssl
from http.cookies import CookieError, SimpleCookie
from typing import Any

from ..client import Client

# Listening addresses reached as the loopback from inside the server: the wildcards (no address
# to connect to) and "localhost", which may resolve to an address the server does not listen on.
_ANY_ADDRESSES = {"", "0.0.0.0", "*", "localhost"}  # noqa: S104
_ANY_ADDRESSES_V6 = {"::"}


def loopback_url(ip: str, port: int, base_url: str, *, https: bool) -> str:
    """The server's own API root as reached from inside it (``base_url`` ends with a slash)."""
    if ip in _ANY_ADDRESSES:
        host = "127.0.0.1"
    elif ip in _ANY_ADDRESSES_V6:
        host = "[::1]"
    else:
        host = f"[{ip}]" if ":" in ip else ip
    return f"{'https' if https else 'http'}://{host}:{port}{base_url}"


def browser_credentials(headers: Any, token_argument: str | None) -> dict[str, str]:
    """The headers that authenticate the browser's requests, taken from its handshake:
    ``headers`` is the request's (a mapping of header names), ``token_argument`` its ``?token=``."""
    out: dict[str, str] = {}
    cookie = headers.get("Cookie")
    if cookie:
        out["Cookie"] = cookie
        xsrf = _cookie_value(cookie, "_xsrf")
        if xsrf:
            out["X-XSRFToken"] = xsrf
    # jupyter-server reads ``?token=`` before the Authorization header: the same order here, so
    # the loopback's requests present the credential that identified the handshake.
    authorization = f"token {token_argument}" if token_argument else headers.get("Authorization")
    if authorization:
        out["Authorization"] = authorization
    return out


def _cookie_value(cookie_header: str, name: str) -> str | None:
    jar = SimpleCookie()
    try:
        jar.load(cookie_header)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def loopback_ssl_context(certfile: str) -> ssl.SSLContext:
    """An HTTPS server's own certificate as the only trust anchor, names not checked.

    The loopback connects to 127.0.0.1, which is not the name the certificate was issued for,
    so the usual check of the name would fail. Trusting exactly the server's own certificate
    (partial chains allowed, so a CA-issued leaf works as an anchor too) still proves that the
    peer is this server: skipping verification altogether would hand the browser's cookies to
    whatever answered on the port."""
    context = ssl.create_default_context(cafile=certfile)
    context.check_hostname = False
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


def loopback_client(serverapp: Any, credentials: dict[str, str], **options: Any) -> Client:
    """A Client of ``serverapp``'s API with the browser's ``credentials`` (see
    :func:`browser_credentials`); ``options`` go to :class:`Client`."""
    if getattr(serverapp, "sock", ""):
        raise RuntimeError("the panel needs a server that listens on a TCP port, not only on a UNIX socket")
    certfile = getattr(serverapp, "certfile", "") or ""
    url = loopback_url(serverapp.ip, serverapp.port, serverapp.base_url, https=bool(certfile))
    context = loopback_ssl_context(certfile) if certfile else None
    # token="" on purpose: the server's token would make every panel user the server's owner.
    # trust_env=False: a proxy from the environment (HTTP_PROXY, ALL_PROXY...) is for the
    # server's outgoing traffic; through it the loopback would hand the browser's cookies to the
    # proxy, which could not reach this server's 127.0.0.1 anyway.
    return Client(url, "", headers=credentials, ssl_context=context, how="panel loopback", trust_env=False,
                  **options)  # fmt: skip
