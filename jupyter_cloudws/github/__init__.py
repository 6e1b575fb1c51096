"""GitHub and GitHub Enterprise: where repositories live, how the hub and sandboxes authenticate
to them, and (in later modules) the REST calls for repositories, branches and pull requests."""

from .settings import GitCredential, GitHub

__all__ = ["GitCredential", "GitHub"]
