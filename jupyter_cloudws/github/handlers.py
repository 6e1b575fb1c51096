"""REST routes for the git host: the repository picker's lists, a session's pull request and its
artifacts. Like every cloudws route they need an authenticated user and the authorizer's
``read`` (GET) or ``write`` (POST) on ``cloudws``; a session is checked against its owner by the
hub, so another user's session is as unknown as one that never existed."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers import CloudwsAPIHandler, hub_errors


class GitHubReposHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self) -> None:
        await self.requester()
        self.finish(await self.hub.pull_requests.list_repos(self.get_query_argument("q", None)))


class GitHubBranchesHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, owner: str, repo: str) -> None:
        await self.requester()
        self.finish(await self.hub.pull_requests.list_branches(owner, repo))


class PullRequestHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("write")
    @hub_errors
    async def post(self, session_id: str) -> None:
        who = await self.requester()
        self.hub.get_session(session_id, who)  # an unknown session is a 404 whatever the body
        pull, created = await self.hub.pull_requests.create(session_id, who, self.json_object(), self.author())
        self.set_status(201 if created else 200)
        self.finish({"pull_request": pull, "created": created})


class PullRequestDraftHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, session_id: str) -> None:
        self.finish(self.hub.pull_requests.draft(session_id, await self.requester()))


class ArtifactsHandler(CloudwsAPIHandler):
    @web.authenticated
    @authorized("read")
    @hub_errors
    async def get(self, session_id: str) -> None:
        self.finish({"artifacts": await self.hub.pull_requests.artifacts(session_id, await self.requester())})
