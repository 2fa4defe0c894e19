"""The dashboard's web app (Starlette): pages over the state directory, the JSON the live
views poll, the files records name (with HTTP range requests, so videos seek), and the
actions. Every request passes the token and Host checks; every action needs POST and the
CSRF token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cosmos_driver.batch_view import RecordCache, RunRow, batch_runs, find_batch, summaries
from cosmos_driver.dashboard import access
from cosmos_driver.dashboard.actions import ActionRefused, Actions
from cosmos_driver.dashboard.pages import (
    STATIC,
    batch_context,
    batch_json,
    environment,
    log_tail,
    run_context,
)
from cosmos_driver.input_view import job_inputs
from cosmos_driver.multimodal import CachedProbe
from cosmos_driver.records import ENDED_STATES, BatchRecord, RunRecord
from cosmos_driver.store import RunStore

MAX_FORM_BYTES = 16 * 1024


@dataclass
class Dashboard:
    """What the routes share: the store, the actions, the access secrets, the templates."""

    store: RunStore
    actions: Actions
    guard: access.Access
    inventory: str | None = None

    def __post_init__(self) -> None:
        self.templates = environment()
        self.probe = CachedProbe()
        self.records = RecordCache()

    async def page(self, name: str, **context: Any) -> HTMLResponse:
        """Render in a worker thread: a page of thousands of runs must not stall the loop
        that streams videos."""
        template = self.templates.get_template(name)
        html = await run_in_threadpool(template.render, csrf=self.guard.csrf, **context)
        return HTMLResponse(html)

    def batch(self, request: Request) -> BatchRecord:
        batch_id = request.path_params["batch_id"]
        valid = access.valid_id(batch_id)
        found = find_batch(self.store.list_batches(), batch_id) if valid else None
        if found is None:
            raise NotFound(f"no batch {batch_id!r}")
        return found

    def run(self, request: Request) -> RunRecord:
        run_id = request.path_params["run_id"]
        record = access.load_run(self.store, run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        return record


class NotFound(Exception):
    """A page or file the records do not name."""


class Guard(BaseHTTPMiddleware):
    """The token (header, cookie or `?token=` once), the Host and, for POST, the CSRF token."""

    def __init__(self, app: Any, guard: access.Access) -> None:
        super().__init__(app)
        self.guard = guard

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if not self.guard.host_ok(request.headers.get("host")):
            return PlainTextResponse("unknown Host header", status_code=421)
        offered = _offered_token(request)
        if not self.guard.token_ok(offered):
            return PlainTextResponse("a token is needed: open the URL `cosmos ui` printed", 401)
        if request.method not in ("GET", "HEAD") and not await self._csrf_ok(request):
            return PlainTextResponse("missing or wrong CSRF token; reload the page", 403)
        response = await call_next(request)
        if self.guard.token and request.query_params.get("token") == offered:
            response.set_cookie(access.TOKEN_COOKIE, offered, httponly=True, samesite="strict")
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("referrer-policy", "no-referrer")
        return response

    async def _csrf_ok(self, request: Request) -> bool:
        offered = request.headers.get(access.CSRF_HEADER)
        if offered is None:
            offered = (await form_fields(request)).get(access.CSRF_FIELD)
        return self.guard.csrf_ok(offered)


async def form_fields(request: Request) -> dict[str, str]:
    """A small urlencoded form (the review form), each field's first value; anything else,
    or a body past MAX_FORM_BYTES, is no form."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in fields.items()}


def _offered_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.query_params.get("token") or request.cookies.get(access.TOKEN_COOKIE)


class Handlers:
    """One method per route."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.d = dashboard

    async def batches(self, request: Request) -> Response:
        found = await run_in_threadpool(summaries, self.d.store, self.d.records)
        return await self.d.page("batches.html", batches=found)

    async def batches_json(self, request: Request) -> Response:
        found = await run_in_threadpool(summaries, self.d.store, self.d.records)
        return JSONResponse([s.to_json() for s in found])

    async def batch_page(self, request: Request) -> Response:
        batch = self.d.batch(request)
        context = await run_in_threadpool(batch_context, self.d.store, batch, self.d.records)
        return await self.d.page("batch.html", **context, report=False, thumb_url=thumbnail_url)

    async def batch_api(self, request: Request) -> Response:
        batch = self.d.batch(request)
        return JSONResponse(
            await run_in_threadpool(batch_json, self.d.store, batch, self.d.records)
        )

    async def inputs_page(self, request: Request) -> Response:
        batch = self.d.batch(request)
        records = batch_runs(self.d.store, batch, self.d.records)
        jobs = await run_in_threadpool(job_inputs, records, self.d.probe)
        return await self.d.page("inputs.html", batch=batch, jobs=jobs)

    async def run_page(self, request: Request) -> Response:
        context = run_context(self.d.store, self.d.run(request))
        return await self.d.page("run.html", **context)

    async def run_api(self, request: Request) -> Response:
        return JSONResponse(self.d.run(request).to_json())

    async def run_log(self, request: Request) -> Response:
        """The log tail so far, fetched from the host first while the run runs."""
        await run_in_threadpool(self.d.actions.refresh_log, self.d.run(request))
        record = self.d.run(request)
        ended = record.state in ENDED_STATES
        tail = log_tail(self.d.store, record)
        return JSONResponse({"state": record.state.value, "ended": ended, "tail": tail})

    async def run_file(self, request: Request) -> Response:
        path = access.run_file(self.d.store, self.d.run(request), request.path_params["name"])
        if path is None:
            raise NotFound("no such file of this run")
        return FileResponse(path, content_disposition_type="inline")

    async def input_file(self, request: Request) -> Response:
        path = access.input_file(self.d.run(request), request.path_params["modality"])
        if path is None:
            raise NotFound("no such input of this run")
        return FileResponse(path, content_disposition_type="inline")

    async def kill_run(self, request: Request) -> Response:
        return _accepted({"killing": self.d.actions.kill([self.d.run(request).run_id])})

    async def kill_batch(self, request: Request) -> Response:
        return _accepted({"killing": self.d.actions.kill(list(self.d.batch(request).run_ids))})

    async def rerun(self, request: Request) -> Response:
        log_path = self.d.actions.rerun_failed(self.d.batch(request), self.d.inventory)
        return _accepted({"log": str(log_path)})

    async def review(self, request: Request) -> Response:
        record = self.d.run(request)
        form = await form_fields(request)
        rating_text = form.get("rating", "").strip()
        rating = int(rating_text) if rating_text.isdigit() else None
        self.d.actions.review(record.run_id, rating, form.get("comment", ""))
        if "json" in request.headers.get("accept", ""):
            return JSONResponse({"rating": rating})
        return RedirectResponse(f"/runs/{record.run_id}", status_code=303)


def create_app(dashboard: Dashboard) -> Starlette:
    h = Handlers(dashboard)
    post = ["POST"]
    routes = [
        Route("/", h.batches),
        Route("/api/batches", h.batches_json),
        Route("/batches/{batch_id}", h.batch_page),
        Route("/api/batches/{batch_id}", h.batch_api),
        Route("/batches/{batch_id}/inputs", h.inputs_page),
        Route("/batches/{batch_id}/kill", h.kill_batch, methods=post),
        Route("/batches/{batch_id}/rerun", h.rerun, methods=post),
        Route("/runs/{run_id}", h.run_page),
        Route("/api/runs/{run_id}", h.run_api),
        Route("/api/runs/{run_id}/log", h.run_log),
        Route("/runs/{run_id}/files/{name:path}", h.run_file),
        Route("/runs/{run_id}/inputs/{modality}", h.input_file),
        Route("/runs/{run_id}/kill", h.kill_run, methods=post),
        Route("/runs/{run_id}/review", h.review, methods=post),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(Guard, guard=dashboard.guard)],
        exception_handlers={NotFound: _not_found, ActionRefused: _refused},
    )


def thumbnail_url(row: RunRow) -> str | None:
    """Where the dashboard serves a run's output thumbnail."""
    return f"/runs/{quote(row.run_id)}/files/{quote(row.thumbnail)}" if row.thumbnail else None


def _accepted(data: dict[str, Any]) -> JSONResponse:
    return JSONResponse(data, status_code=202)


async def _not_found(request: Request, exc: Exception) -> Response:
    return PlainTextResponse(str(exc), status_code=404)


async def _refused(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=409)
