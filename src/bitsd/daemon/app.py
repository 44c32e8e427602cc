"""The control API of docs/control-api.md: a Starlette app over a running engine.

Rules:
- One route per engine verb. Bodies are checked by ``shapes`` before anything changes; answers
  are built by ``shapes`` and ``bitsd._wire``.
- Every non-2xx answer is ``{"error": {"hresult", "name", "message"}}``: a caller error
  (BitsError) gets ``http_status_for`` its class; an unknown route 404 and a wrong method 405
  (both E_NOTIMPL: something this daemon does not have); malformed JSON 400 (E_INVALIDARG).
  Any other exception is a bug: 500 (E_UNEXPECTED), logged with its traceback, and the daemon
  goes on serving. A client that leaves before its body has arrived is no bug: nothing is
  answered or logged but the debug ``http.request`` line (status 0); a request still waiting
  for its body when the daemon stops is answered 503 (RPC_S_SERVER_UNAVAILABLE).
- Credentials (``PUT .../credentials``) are passed to the engine and forgotten: no answer and
  no log line carries them (request logs have the method, path, status and time only).
- ``wait`` waits at most 60 s and answers at once (``timed_out``) when the daemon stops, so a
  long poll never delays a shutdown.
- The routes every job uses (the first ones of the table: create, add files, resume, wait, get,
  complete) are dispatched by ``_Guard`` itself, to the same handlers with the same error
  answers: the route Starlette's router would pick (the first that matches path and method,
  which is one of these when any of them matches), without the router's and exception
  middleware's layers (about a third of a request's framework time). Any other request goes
  through Starlette.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import time
from collections.abc import Mapping, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import bitsd
from bitsd import codes
from bitsd._engine import Engine
from bitsd._errors import BitsError
from bitsd._job import Job
from bitsd._wire import (
    API_VERSION,
    error_info_to_json,
    error_to_json,
    http_status_for,
)
from bitsd.daemon import logs, openapi
from bitsd.daemon.events import EventHub
from bitsd.daemon.shapes import (
    auth_pair,
    brief_view,
    credentials,
    download_position,
    file_index,
    file_rows_to_json,
    file_to_json,
    job_brief_to_json,
    job_changes,
    job_to_json,
    json_body,
    new_files,
    new_job,
    page_params,
    prefixes,
    reply_file_name,
    requested_ranges,
    rows_view,
    validation,
    wait_params,
)

__all__ = ["build_app"]

log = logging.getLogger("bitsd.daemon")


def build_app(engine: Engine, hub: EventHub, *, stopping: asyncio.Event) -> Starlette:
    """The control API over ``engine``, with ``hub`` serving ``/v1/events``.

    Args:
        stopping: set when the daemon stops; pending ``wait`` requests answer at once.
    """
    api = _Api(engine, stopping)
    # Starlette tries routes in this order: the calls every job makes come first, and _Guard
    # dispatches them itself.
    hot = [
        Route("/v1/jobs", api.create_job, methods=["POST"]),
        Route("/v1/jobs/{id}/files", api.add_files, methods=["POST"]),
        Route("/v1/jobs/{id}/resume", api.resume, methods=["POST"]),
        Route("/v1/jobs/{id}/wait", api.wait, methods=["GET"]),
        Route("/v1/jobs/{id}", api.get_job, methods=["GET"]),
        Route("/v1/jobs/{id}/complete", api.complete, methods=["POST"]),
    ]
    routes: list[BaseRoute] = [
        *hot,
        Route("/v1/jobs/{id}", api.patch_job, methods=["PATCH"]),
        Route("/v1/jobs/{id}/cancel", api.cancel, methods=["POST"]),
        Route("/v1/jobs/{id}/suspend", api.suspend, methods=["POST"]),
        Route("/v1/jobs/{id}/files", api.list_files, methods=["GET"]),
        Route("/v1/jobs/{id}/error", api.get_error, methods=["GET"]),
        Route("/v1/version", api.version, methods=["GET"]),
        Route("/v1/openapi.json", api.openapi, methods=["GET"]),
        Route("/v1/jobs", api.list_jobs, methods=["GET"]),
        Route("/v1/jobs/{id}/files/{index}/validation", api.set_validation, methods=["PUT"]),
        Route(
            "/v1/jobs/{id}/files/{index}/requested-ranges",
            api.request_ranges,
            methods=["POST"],
        ),
        Route(
            "/v1/jobs/{id}/files/{index}/download-position",
            api.set_download_position,
            methods=["PUT"],
        ),
        Route("/v1/jobs/{id}/replace-remote-prefix", api.replace_prefix, methods=["POST"]),
        Route("/v1/jobs/{id}/credentials", api.set_credentials, methods=["PUT"]),
        Route(
            "/v1/jobs/{id}/credentials/{target}/{scheme}",
            api.remove_credentials,
            methods=["DELETE"],
        ),
        Route("/v1/jobs/{id}/custom-headers/write-only", api.headers_write_only, methods=["POST"]),
        Route("/v1/jobs/{id}/reply", api.get_reply, methods=["GET"]),
        Route("/v1/jobs/{id}/reply/data", api.get_reply_data, methods=["GET"]),
        Route("/v1/jobs/{id}/reply/file-name", api.set_reply_file_name, methods=["PUT"]),
        WebSocketRoute("/v1/events", hub.endpoint),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, hot=hot)],
        exception_handlers={HTTPException: _http_error, BitsError: _bits_error},
    )


class _Api:
    """The HTTP endpoints, bound to one engine."""

    def __init__(self, engine: Engine, stopping: asyncio.Event) -> None:
        self._engine = engine
        self._stopping = stopping

    async def version(self, request: Request) -> Response:
        return JSONResponse(
            {
                "version": bitsd.__version__,
                "api": API_VERSION,
                "pid": os.getpid(),
                "uid": os.geteuid(),
            }
        )

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi.DOCUMENT)

    async def list_jobs(self, request: Request) -> Response:
        offset, limit, brief = page_params(request.query_params)
        jobs = await self._engine.jobs()
        end = offset + limit
        shape = job_brief_to_json if brief else job_to_json
        return JSONResponse(
            {
                "jobs": [await shape(job) for job in jobs[offset:end]],
                "total": len(jobs),
                "next_offset": end if end < len(jobs) else None,
            }
        )

    async def create_job(self, request: Request) -> Response:
        brief = brief_view(request.query_params)
        new = new_job(await _body(request))
        job = await self._engine.create_job(
            new.display_name,
            new.job_type,
            files=new.files,
            priority=new.priority,
            resume=new.resume,
        )
        # brief: what a client needs to hold the handle (a Job object costs ~4x as much).
        shape = job_brief_to_json if brief else job_to_json
        return JSONResponse(await shape(job), status_code=201)

    async def get_job(self, request: Request) -> Response:
        return JSONResponse(await job_to_json(await self._job(request)))

    async def patch_job(self, request: Request) -> Response:
        job = await self._job(request)
        body = await _body(request)
        for change in await job_changes(body, job):
            await change(job)
        return JSONResponse(await job_to_json(job))

    async def list_files(self, request: Request) -> Response:
        job = await self._job(request)
        return JSONResponse({"files": await _files_json(job)})

    async def add_files(self, request: Request) -> Response:
        job = await self._job(request)
        brief = brief_view(request.query_params)
        new = new_files(await _body(request))
        before = (await job.get_progress()).files_total
        if new.ranges is not None:
            [(remote, local)] = new.pairs
            await job.add_file_with_ranges(remote, local, new.ranges)
        elif new.sha256 is not None:
            [(remote, local)] = new.pairs
            await job.add_file(remote, local, sha256=new.sha256)
        else:
            await job.add_file_set(new.pairs)
        if brief:  # the caller only needs to know they were added
            return JSONResponse({"added": (await job.get_progress()).files_total - before})
        return JSONResponse({"files": await _files_json(job, start=before)})

    async def set_validation(self, request: Request) -> Response:
        job = await self._job(request)
        index = file_index(request.path_params["index"])
        await job.set_validation_state(index, validation(await _body(request)))
        return await _verb_result(job, codes.S_OK)

    async def request_ranges(self, request: Request) -> Response:
        job = await self._job(request)
        index = file_index(request.path_params["index"])
        await job.request_file_ranges(index, requested_ranges(await _body(request)))
        return _hresult(codes.S_OK)

    async def set_download_position(self, request: Request) -> Response:
        job = await self._job(request)
        index = file_index(request.path_params["index"])
        await job.update_download_position(index, download_position(await _body(request)))
        return _hresult(codes.S_OK)

    async def replace_prefix(self, request: Request) -> Response:
        job = await self._job(request)
        old, new = prefixes(await _body(request))
        return _hresult(await job.replace_remote_prefix(old, new))

    async def set_credentials(self, request: Request) -> Response:
        job = await self._job(request)
        given = credentials(await _body(request))
        await job.set_credentials(
            given.target,  # type: ignore[arg-type]  # a number: the engine checks it
            given.scheme,  # type: ignore[arg-type]
            given.user_name or "",  # None is "" to the engine too
            given.password or "",
        )
        return _hresult(codes.S_OK)

    async def remove_credentials(self, request: Request) -> Response:
        job = await self._job(request)
        target, scheme = auth_pair(request.path_params["target"], request.path_params["scheme"])
        return _hresult(
            await job.remove_credentials(target, scheme)  # type: ignore[arg-type]
        )

    async def headers_write_only(self, request: Request) -> Response:
        job = await self._job(request)
        await job.make_custom_headers_write_only()
        return _hresult(codes.S_OK)

    async def get_reply(self, request: Request) -> Response:
        return JSONResponse(await _reply_json(await self._job(request)))

    async def get_reply_data(self, request: Request) -> Response:
        job = await self._job(request)
        data = await job.get_reply_data()
        return JSONResponse({"data": base64.b64encode(data).decode("ascii")})

    async def set_reply_file_name(self, request: Request) -> Response:
        job = await self._job(request)
        await job.set_reply_file_name(reply_file_name(await _body(request)))
        return _hresult(codes.S_OK)

    async def resume(self, request: Request) -> Response:
        job = await self._job(request)
        await job.resume()
        return await _verb_result(job, codes.S_OK)

    async def suspend(self, request: Request) -> Response:
        job = await self._job(request)
        await job.suspend()
        return await _verb_result(job, codes.S_OK)

    async def cancel(self, request: Request) -> Response:
        job = await self._job(request)
        rows = rows_view(request.query_params)  # before the verb: a bad query ends nothing
        return await _end_result(job, await job.cancel(), rows=rows)

    async def complete(self, request: Request) -> Response:
        job = await self._job(request)
        rows = rows_view(request.query_params)
        return await _end_result(job, await job.complete(), rows=rows)

    async def get_error(self, request: Request) -> Response:
        job = await self._job(request)
        return JSONResponse(error_info_to_json(await job.get_error()))

    async def wait(self, request: Request) -> Response:
        job = await self._job(request)
        states, timeout = wait_params(request.query_params)
        state = await job.get_state()
        if state in states:  # there already: answered without a waiting task
            return JSONResponse({"state": state.name, "timed_out": False})
        waiter = asyncio.ensure_future(job.wait(states, timeout))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait((waiter, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiter, stopper):
                task.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)
        if not waiter.cancelled():
            with contextlib.suppress(TimeoutError):
                return JSONResponse({"state": waiter.result().name, "timed_out": False})
        # Timed out, or the daemon stops: the state now (a zero timeout may still find it).
        state = await job.get_state()
        return JSONResponse({"state": state.name, "timed_out": state not in states})

    async def _job(self, request: Request) -> Job:
        return await self._engine.get_job(request.path_params["id"])


async def _verb_result(job: Job, hresult: int) -> Response:
    state = await job.get_state()
    return JSONResponse({"hresult": hresult, "name": codes.name_of(hresult), "state": state.name})


async def _end_result(job: Job, hresult: int, *, rows: bool) -> Response:
    """Cancel's and Complete's answer: the verb's result and the job as it ended, with its
    files (and an upload-reply job's reply). The daemon forgets a final job; a client keeps
    this to answer getters on it, with no request before the verb. The files are File objects
    (``files``), or with ``rows`` FileRows (``file_rows``): the same values, at a fraction of
    the cost for a job of thousands of files, on the path of every Complete."""
    shown = await job_to_json(job)
    reply = await _reply_json(job) if shown["type"] == bitsd.JobType.UPLOAD_REPLY.name else None
    details = await job._file_details()
    listed: dict[str, object] = (
        {"file_rows": file_rows_to_json(details)}
        if rows
        else {"files": [file_to_json(d) for d in details]}
    )
    return JSONResponse(
        {
            "hresult": hresult,
            "name": codes.name_of(hresult),
            "state": shown["state"],
            "job": shown,
            **listed,
            "reply": reply,
        }
    )


async def _reply_json(job: Job) -> dict[str, object]:
    progress = await job.get_reply_progress()
    return {
        "file_name": await job.get_reply_file_name(),
        "progress": {
            "bytes_total": progress.bytes_total,
            "bytes_transferred": progress.bytes_transferred,
        },
    }


def _hresult(hresult: int) -> Response:
    return JSONResponse({"hresult": hresult, "name": codes.name_of(hresult)})


async def _files_json(job: Job, start: int = 0) -> list[object]:
    """The job's files from ``start`` on, each with its ranges, validation state and filled
    ranges."""
    return [file_to_json(details) for details in await job._file_details(start)]


async def _body(request: Request) -> object:
    return json_body(await request.body())


# -- errors --------------------------------------------------------------------------------


def _error_response(
    status: int, error: BitsError, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(error_to_json(error), status_code=status, headers=headers)


def _bits_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BitsError)
    return _error_response(http_status_for(exc), exc)


def _http_error(request: Request, exc: Exception) -> Response:
    """404 and 405 of the router (and any other HTTPException) as JSON errors."""
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    headers = exc.headers
    if exc.status_code == 404:
        error = BitsError(f"no route {where}", hresult=codes.E_NOTIMPL)
    elif exc.status_code == 405:
        # The router names the methods of the first route of the path only; a path has several.
        allowed = ", ".join(_methods_of(request))
        headers = {"Allow": allowed}
        error = BitsError(
            f"{where}: method not allowed (allowed: {allowed})", hresult=codes.E_NOTIMPL
        )
    else:
        hresult = codes.E_INVALIDARG if exc.status_code < 500 else codes.E_UNEXPECTED
        error = BitsError(f"{where}: {exc.detail}", hresult=hresult)
    return _error_response(exc.status_code, error, headers)


def _methods_of(request: Request) -> list[str]:
    """The methods of every route whose path matches the request's."""
    routes = request.app.routes
    path = request.url.path
    return sorted(
        {
            method
            for route in routes
            if isinstance(route, Route) and route.path_regex.match(path)
            for method in route.methods or ()
        }
    )


# What a request still waiting when the daemon stops is answered (503):
# HRESULT_FROM_WIN32(RPC_S_SERVER_UNAVAILABLE), what clients report for a daemon that is gone.
_STOPPING = codes.HRESULT_FROM_WIN32(1722)


class _Guard:
    """The app's outer middleware: an exception that escaped the routes is a bug; it is logged
    with its traceback and answered 500 (E_UNEXPECTED). Each request is logged at debug. The
    ``hot`` routes (the first of the router's, in its order) are dispatched here."""

    def __init__(self, app: ASGIApp, hot: Sequence[Route] = ()) -> None:
        self._app = app
        self._hot = [
            (route, route.path_regex, route.methods or (), route.param_convertors, route.endpoint)
            for route in hot
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 0
        started = time.monotonic()

        async def tracking_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if not await self._hot_route(scope, receive, tracking_send):
                await self._app(scope, receive, tracking_send)
        except ClientDisconnect:
            pass  # the client left before its body arrived: nobody to answer, and not a bug
        except asyncio.CancelledError:
            # The daemon stops and this request outlived its grace time (a client that never
            # sent its body): it ends here, told so in the API's error form; not a bug.
            if status == 0:
                status = 503
                stopping = BitsError("the daemon is stopping", hresult=_STOPPING)
                with contextlib.suppress(Exception):
                    await _error_response(status, stopping)(scope, receive, send)
        except Exception as exc:
            logs.event(
                log,
                "http.bug",
                level=logging.ERROR,
                exc_info=True,
                method=scope["method"],
                path=scope["path"],
            )
            if status == 0:  # else the answer has begun: the connection is cut instead
                status = 500
                bug = BitsError(
                    f"internal error of the daemon: {exc!r}", hresult=codes.E_UNEXPECTED
                )
                await _error_response(status, bug)(scope, receive, send)
        finally:
            logs.event(
                log,
                "http.request",
                level=logging.DEBUG,
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round((time.monotonic() - started) * 1000, 1),
            )

    async def _hot_route(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a request for one of the hot routes as Starlette would (its route, handler,
        exception handlers); False when none of them matches path and method."""
        if scope.get("root_path"):
            return False  # never set by the daemon's server; Starlette knows what it means
        path = scope["path"]
        method = scope["method"]
        for route, regex, methods, convertors, endpoint in self._hot:
            match = regex.match(path)
            if match is None or method not in methods:
                continue
            scope["route"] = route
            scope["endpoint"] = endpoint
            scope["path_params"] = {
                key: convertors[key].convert(value) for key, value in match.groupdict().items()
            }
            request = Request(scope, receive, send)
            started = False

            async def sending(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                response = await endpoint(request)
                await response(scope, receive, sending)
            except (BitsError, HTTPException) as exc:
                if started:
                    raise RuntimeError("a handled exception after the answer began") from exc
                if isinstance(exc, BitsError):
                    answer = _bits_error(request, exc)
                else:
                    answer = _http_error(request, exc)
                await answer(scope, receive, sending)
                exc.__traceback__ = None  # as Starlette: a reused exception keeps no traceback
            return True
        return False
