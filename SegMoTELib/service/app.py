"""The FastAPI application of `segmote serve`: routes, error mapping, upload limits.

Most routes are plain `def` functions (FastAPI runs them in its thread pool); prompts await the
device thread directly. Nothing that waits for the device holds up the event loop, and the device
queue (one thread) decides who computes next.
Errors: a user mistake the engine finds → 400 with the engine's own message; a malformed body →
422 naming the field (the values sent are never echoed back); a refusal (limits, unknown or
closed session) → its 4xx with one line; a path that is no route → 404 saying so. `/docs` is
Swagger UI served from the `fastapi-offline` package's files (no CDN), with an *Authorize* button
for the bearer token (`securitySchemes`).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import SegMoTEError, first_line
from .auth import BearerTokenMiddleware
from .device_queue import INTERACTIVE
from .middleware import BodyCap, StampAndLog, stderr_line
from .refusal import Refusal
from .schemas import (
    AutoPrompt,
    Box3DRequest,
    CorrectRequest,
    JobResponse,
    PrefetchRequest,
    PropagateRequest,
    SeedRequest,
    SessionCreate,
    SessionInfo,
    SliceRequest,
    SliceResponse,
)

log = logging.getLogger("segmote.service")
API_VERSION = "1"
MAX_JOB_WAIT_S = 10.0
INFLATE_CHUNK_BYTES = 4 * 1024 * 1024  # compressed bytes handed to a worker thread to inflate at once
DOCS_ASSETS = "/docs/assets"


def create_app(store, token: str, info: dict, access_log: bool = True) -> FastAPI:
    """`store`: the SessionStore (its host holds the predictor); `info`: what /v1/info reports;
    `access_log`: one line per request on stderr."""
    prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmote prefetch")

    @asynccontextmanager
    async def lifespan(_app):
        store.start_reaper()
        yield
        prefetcher.shutdown(wait=False, cancel_futures=True)
        store.stop()
        store.host.close()

    app = FastAPI(title="SegMoTE engine", version=API_VERSION, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Interactive 3D segmentation with SegMoTE. Every call needs "
                              "'Authorization: Bearer <token>' (*Authorize* above). Coordinates are RAS "
                              "millimetres. Worked examples: docs/SERVICE.md.")
    limits = store.limits
    device = store.host.device_queue
    _install_error_handlers(app)
    _install_docs(app)

    def deadline() -> float:
        return time.monotonic() + limits.request_seconds

    def check_points(count: int) -> None:
        if count > limits.max_points:
            raise Refusal(422, f"points: {count} points; at most {limits.max_points} per request on this "
                               f"server (--max-points)")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/info")
    def engine_info() -> dict:
        return {**info, "api_version": API_VERSION, "limits": limits.describe(), "sessions_open": store.count,
                "embedding_cache_bytes_used": store.host.cached_bytes}

    @app.post("/v1/sessions", status_code=201, response_model=SessionInfo)
    def open_session(request: SessionCreate) -> dict:
        session = store.create(request)
        return session.describe(limits.idle_seconds, store.pending_progress(session))

    @app.put("/v1/sessions/{session_id}/voxels", response_model=SessionInfo,
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {
                 "type": "string", "format": "binary",
                 "description": "zlib of the voxels' C-order bytes, as announced in the session's volume"}}}}})
    async def upload_voxels(session_id: str, request: Request,
                            first_slice: int | None = Query(None, ge=0, description=(
                                "send the volume in slabs: this body holds whole slices from this one on "
                                "(without it, the body is the whole volume)"))) -> dict:
        session = store.get(session_id)
        upload = store.begin_upload(session, first_slice)
        try:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit():
                upload.count(0)
                room = upload.pending.room_left()
                if room is not None and int(declared) > room:
                    raise upload.too_large()
            buffered, size = [], 0
            async for chunk in request.stream():
                upload.count(len(chunk))
                buffered.append(chunk)
                size += len(chunk)
                if size >= INFLATE_CHUNK_BYTES:
                    await run_in_threadpool(upload.feed, b"".join(buffered))
                    buffered, size = [], 0
            if buffered:
                await run_in_threadpool(upload.feed, b"".join(buffered))
        except BaseException:
            upload.release()
            raise
        await run_in_threadpool(store.finish_upload, session, upload)
        return session.describe(limits.idle_seconds, store.pending_progress(session))

    @app.delete("/v1/sessions/{session_id}", status_code=204)
    def close_session(session_id: str) -> None:
        store.get(session_id)
        store.close(session_id)

    # A prompt goes from the event loop straight to the device thread and back: no pool thread
    # in between, whose hand-overs (and GIL waits beside a running propagation) a click would pay.
    @app.post("/v1/sessions/{session_id}/slice", response_model=SliceResponse)
    async def segment_slice(session_id: str, prompt: SliceRequest) -> dict:
        session = store.get(session_id)
        check_points(len(prompt.points) + len(prompt.box or ()))  # strokes: bounded by the prompt value
        return await device.run_async(INTERACTIVE, lambda: session.segment_slice(prompt), deadline())

    @app.post("/v1/sessions/{session_id}/auto", response_model=SliceResponse)
    async def segment_auto(session_id: str, request: AutoPrompt) -> dict:
        session = store.get(session_id)
        return await device.run_async(INTERACTIVE, lambda: session.segment_auto(request), deadline())

    @app.post("/v1/sessions/{session_id}/results", status_code=201, response_model=SliceResponse)
    def seed_result(session_id: str, request: SeedRequest) -> dict:
        """A slice result from a mask (a result the server forgot, or a segment drawn by another tool):
        refine it with `previous_result`, or propagate it."""
        return store.get(session_id).seed(request)

    @app.post("/v1/sessions/{session_id}/prefetch", status_code=202)
    def prefetch(session_id: str, request: PrefetchRequest) -> dict:
        store.get(session_id).prefetch(request, prefetcher)
        return {"queued": True}

    @app.post("/v1/sessions/{session_id}/propagate", status_code=202, response_model=JobResponse)
    def propagate(session_id: str, request: PropagateRequest) -> dict:
        return store.get(session_id).propagate(request)

    @app.post("/v1/sessions/{session_id}/box3d", status_code=202, response_model=JobResponse)
    def segment_box3d(session_id: str, request: Box3DRequest) -> dict:
        return store.get(session_id).segment_box3d(request)

    @app.post("/v1/sessions/{session_id}/correct", status_code=202, response_model=JobResponse,
              description="Correct one slice of a segment (clicks or a box) and re-walk outward until the new "
                          "masks agree with the old ones; the job's mask is the whole corrected segment.")
    def correct(session_id: str, request: CorrectRequest) -> dict:
        return store.get(session_id).correct(request)

    @app.get("/v1/sessions/{session_id}/jobs/{job_id}", response_model=JobResponse)
    def job_status(session_id: str, job_id: str,
                   wait: float = Query(0.0, ge=0.0, le=MAX_JOB_WAIT_S,
                                       description="seconds to wait for the job to end")) -> dict:
        session = store.get(session_id)
        job = session.job(job_id)
        job.wait(wait)
        session.touch()
        return job.describe()

    @app.delete("/v1/sessions/{session_id}/jobs/{job_id}", response_model=JobResponse)
    def cancel_job(session_id: str, job_id: str) -> dict:
        job = store.get(session_id).job(job_id)
        job.cancel()
        job.wait(MAX_JOB_WAIT_S)  # the job stops at its next slice
        return job.describe()

    app.add_middleware(BodyCap, max_bytes=limits.max_request_bytes)       # innermost
    app.add_middleware(BearerTokenMiddleware, token=token)
    app.add_middleware(StampAndLog, api_version=API_VERSION, log=stderr_line if access_log else None)
    return app


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs from files this server holds, and the bearer scheme that gives it *Authorize*."""
    try:
        import fastapi_offline
    except ImportError:  # an install without it still serves; only the browsable page is missing
        fastapi_offline = None
    if fastapi_offline is not None:
        assets = Path(fastapi_offline.__file__).resolve().parent / "static"
        app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request):
        if fastapi_offline is None:
            return JSONResponse({"detail": "the /docs page needs the fastapi-offline package on the server "
                                           "(pip install fastapi-offline); the schema is at /openapi.json"},
                                status_code=501)
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="SegMoTE engine — API",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png")

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearerToken": {
                "type": "http", "scheme": "bearer",
                "description": "the server's token (SEGMOTE_TOKEN or --token-file of `segmote serve`)"}}
            schema["security"] = [{"bearerToken": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _field_message(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request, error: RequestValidationError):
        # Only where and what, never the value sent: it may be NaN (which JSON cannot carry back)
        # or a megabyte of points.
        errors = [{"loc": [str(part) for part in item.get("loc", ())], "msg": str(item.get("msg", "")),
                   "type": str(item.get("type", ""))} for item in error.errors()]
        detail = _field_message(errors[0]) if errors else "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def no_route(request, error: StarletteHTTPException):
        if error.status_code in (404, 405):
            what = "no route" if error.status_code == 404 else "no such method for the route"
            return JSONResponse({"detail": f"{what} {request.method} {request.url.path} on this SegMoTE engine "
                                           f"(API v{API_VERSION}; see /docs); check the server URL's path"},
                                status_code=error.status_code)
        return JSONResponse({"detail": str(error.detail)}, status_code=error.status_code)

    @app.exception_handler(Refusal)
    async def refused(_request, error: Refusal):
        answer = {"detail": error.message} if error.code is None else {"detail": error.message, "code": error.code}
        return JSONResponse(answer, status_code=error.status)

    @app.exception_handler(SegMoTEError)
    async def user_mistake(_request, error: SegMoTEError):
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal(request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {first_line(error)}"}, status_code=500)
