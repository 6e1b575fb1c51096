"""``jupyter cloudws``: jupyter_cloudws's command line (the ``jupyter-cloudws`` script, which
``jupyter`` runs as ``jupyter cloudws``).

    jupyter cloudws prebuild REPO [--branch B] [--server URL --token T] [--no-wait]

finds the running Jupyter server as the Python client does (``CLOUDWS_URL``/``CLOUDWS_TOKEN``,
JupyterHub's variables, the servers Jupyter records), asks it to prebuild the repository's image,
and follows the build step by step. Exit status: 0 the image is ready (or, with ``--no-wait``,
the build started), 1 the build failed, 2 the request was refused or no server answered.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

import httpx

from .client.discovery import find_server
from .client.errors import ServerNotFound

EXIT_READY, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
REQUEST_TIMEOUT_S = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="jupyter cloudws", description="Claude Code sessions in sandboxes, from Jupyter.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    prebuild = commands.add_parser(
        "prebuild", help="build a repository's image so new sessions on it start from there",
        description="Clone REPO at BRANCH in a sandbox, run its .cloudws/setup.sh and keep the result as an image: "
        "new sessions on that repository and base branch start from it and only fetch. Needs a server whose "
        "backend can snapshot sandboxes.",
    )  # fmt: skip
    prebuild.add_argument("repo", metavar="REPO", help="a git URL, or a path to a repository the server may read")
    prebuild.add_argument("--branch", default="", help="the base branch (default: the repository's default branch)")
    prebuild.add_argument("--server", metavar="URL", help="the Jupyter server's URL (default: found as the client does)")
    prebuild.add_argument("--token", metavar="T", help="its token (default: the one recorded for that server)")
    prebuild.add_argument("--no-wait", action="store_true", help="start the build and return at once")
    prebuild.add_argument("--poll-interval-s", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return run_prebuild(args, sys.stdout, sys.stderr)


def repo_argument(repo: str) -> str:
    """A path that exists here is sent absolute (the server refuses relative ones); anything
    else (a URL, user@host:path) as given."""
    return os.path.abspath(repo) if os.path.exists(repo) else repo


def run_prebuild(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        server = find_server(args.server, args.token)
    except (ServerNotFound, ValueError) as exc:
        print(f"{exc}\nOr name the server: jupyter cloudws prebuild REPO --server URL --token TOKEN", file=err)
        return EXIT_REFUSED
    headers = {"Authorization": f"token {server.token}"} if server.token else {}
    with httpx.Client(base_url=server.url + "cloudws/api/", headers=headers, timeout=REQUEST_TIMEOUT_S) as http:
        try:
            response = http.post("prebuilds", json={"repo": repo_argument(args.repo), "branch": args.branch})
        except httpx.HTTPError as exc:
            print(f"error: {server.url} did not answer: {exc}", file=err)
            return EXIT_REFUSED
        if response.status_code != 202:
            print(f"error: the server refused the prebuild: {_message(response)}", file=err)
            return EXIT_REFUSED
        build = response.json()
        branch = build["branch"] or "the default branch"
        started = "already building" if build.get("already_running") else "building"
        print(f"{started} {build['repo']} at {branch} on {server.url} (prebuild {build['id']})", file=out, flush=True)
        if args.no_wait:
            return EXIT_READY
        return _follow(http, build["id"], args.poll_interval_s, out, err)


def _follow(http: httpx.Client, build_id: str, poll_interval_s: float, out: TextIO, err: TextIO) -> int:
    shown = 0
    while True:
        try:
            response = http.get(f"prebuilds/{build_id}")
        except httpx.HTTPError as exc:
            print(f"error: lost the server while following the build ({exc}); it goes on there", file=err)
            return EXIT_REFUSED
        if response.status_code != 200:
            print(f"error: {_message(response)}", file=err)
            return EXIT_REFUSED
        build = response.json()
        # Only the last steps are kept on the server: follow them by number, not by position.
        for step in build["steps"]:
            if int(step.get("n", 0)) > shown:
                print(format_step(step), file=out, flush=True)
        shown = max([shown, *(int(step.get("n", 0)) for step in build["steps"])])
        if build["status"] == "ready":
            print(f"ready: image {build['image_id']} in {build['duration_s']:.1f} s ({build['detail']})", file=out)
            return EXIT_READY
        if build["status"] == "failed":
            print(f"failed: {build['detail']}", file=err)
            return EXIT_FAILED
        time.sleep(poll_interval_s)


def format_step(step: dict[str, Any]) -> str:
    elapsed = f" {step['elapsed_ms'] / 1000:.1f} s" if step["state"] != "running" and step["elapsed_ms"] else ""
    line = f"  {step['step']:<7} {step['state']}{elapsed}" + (f": {step['detail']}" if step["detail"] else "")
    if step["output"]:  # the setup script's output as it streams, and its tail when it failed
        line += "\n" + "\n".join("    | " + s for s in step["output"].splitlines()[-20:])
    return line


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"{body['message']} (HTTP {response.status_code}, {body['code']})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


if __name__ == "__main__":
    sys.exit(main())
