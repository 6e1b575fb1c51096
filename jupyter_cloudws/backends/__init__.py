"""Sandbox backends, chosen by name with ``c.CloudWorkspaces.backend``."""

from __future__ import annotations

from .base import BridgeStream, ExecResult, SandboxBackend, SandboxGone, SandboxSpec

BACKENDS: dict[str, str] = {
    "local": "jupyter_cloudws.backends.local.LocalBackend",
    "modal": "jupyter_cloudws.backends.modal.ModalBackend",
}

__all__ = ["BACKENDS", "BridgeStream", "ExecResult", "SandboxBackend", "SandboxGone", "SandboxSpec"]
