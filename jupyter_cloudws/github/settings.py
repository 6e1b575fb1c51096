"""``c.GitHub.*``: the git host's addresses and the user's token.

The token comes from this server's configuration or its environment (``GITHUB_TOKEN``), never
from a client. It leaves the hub only as a :class:`GitCredential` handed to a sandbox's
credential helper over the bridge, and to the hub's own REST and git calls.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

from traitlets import Float, Unicode, default, validate
from traitlets.config import Configurable

TOKEN_ENV = "GITHUB_TOKEN"
# What GitHub expects as the user name beside an installation or personal access token.
TOKEN_USERNAME = "x-access-token"


@dataclass(frozen=True)
class GitCredential:
    """What git's credential protocol answers for one host. The password never shows in a repr."""

    protocol: str
    host: str  # host[:port], as git sends it
    username: str
    password: str = field(repr=False)

    def matches(self, protocol: str, host: str) -> bool:
        return protocol == self.protocol and host.lower() == self.host.lower()


def _origin(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return parsed.scheme.lower(), (parsed.netloc.rsplit("@", 1)[-1]).lower()


class GitHub(Configurable):
    url = Unicode(
        "https://github.com",
        help="The git host's web and git address: https://github.com, or a GitHub Enterprise Server's "
        "https://github.example.com. Repositories under it clone and push with the token.",
    ).tag(config=True)
    api_url = Unicode(
        "https://api.github.com",
        help="The git host's REST API: https://api.github.com, or https://HOST/api/v3 on GitHub Enterprise Server.",
    ).tag(config=True)
    token = Unicode(
        help="The user's GitHub token (repository contents and pull requests: read and write). "
        f"Default: the server's {TOKEN_ENV} environment variable. Never taken from a client.",
    ).tag(config=True)
    request_timeout_s = Float(
        30.0, help="Each REST call to the git host gives up after this many seconds."
    ).tag(config=True)

    @default("token")
    def _default_token(self) -> str:
        return os.environ.get(TOKEN_ENV, "")

    @validate("url", "api_url")
    def _check_url(self, proposal: dict) -> str:
        value = str(proposal["value"]).rstrip("/")
        scheme, host = _origin(value)
        if scheme not in ("https", "http") or not host:
            raise ValueError(f"c.GitHub.{proposal['trait'].name} must be an http(s) URL, not {value!r}")
        if "@" in urlparse(value).netloc:
            raise ValueError(f"c.GitHub.{proposal['trait'].name} may not hold credentials; set c.GitHub.token")
        return value

    def hosts(self, repo: str) -> bool:
        """Whether ``repo`` (a clone URL) lives on this git host."""
        return _origin(repo) == _origin(self.url) and urlparse(repo).path.startswith(urlparse(self.url).path + "/")

    def credential_for(self, repo: str) -> GitCredential | None:
        """The credential a sandbox's git needs for ``repo``: None when it lives elsewhere or no
        token is configured."""
        if not self.token or not self.hosts(repo):
            return None
        scheme, host = _origin(self.url)
        return GitCredential(protocol=scheme, host=host, username=TOKEN_USERNAME, password=self.token)

    def clone_url(self, full_name: str) -> str:
        """``owner/name`` as a clone URL on this host."""
        return f"{self.url}/{full_name}.git"
