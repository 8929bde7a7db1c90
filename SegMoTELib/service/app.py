"""The FastAPI application of `segmote serve`: routes, error mapping, upload limits.

Most routes are plain `def` functions (FastAPI runs them in its thread pool); prompts await the
device thread directly. Nothing that waits for the device holds up the event loop, and the device
queue (one thread) decides who computes next.
Errors: a user mistake the engine finds → 400 with the engine's own message; a malformed body →
422 naming the field; a refusal (limits, unknown or closed session) → its 4xx with one line.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import SegMoTEError, first_line
from .auth import BearerTokenMiddleware
from .device_queue import INTERACTIVE
from .refusal import Refusal
from .schemas import (
    AutoPrompt,
    Box3DRequest,
    CorrectRequest,
    JobResponse,
    PrefetchRequest,
    PropagateRequest,
    SessionCreate,
    SessionInfo,
    SlicePrompt,
    SliceResponse,
)

log = logging.getLogger("segmote.service")
API_VERSION = "1"
MAX_JOB_WAIT_S = 10.0


def create_app(store, token: str, info: dict) -> FastAPI:
    """`store`: the SessionStore (its host holds the predictor); `info`: what /v1/info reports."""
    prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmote prefetch")

    @asynccontextmanager
    async def lifespan(_app):
        store.start_reaper()
        yield
        prefetcher.shutdown(wait=False, cancel_futures=True)
        store.stop()
        store.host.close()

    app = FastAPI(title="SegMoTE engine", version=API_VERSION, lifespan=lifespan,
                  description="Interactive 3D segmentation with SegMoTE. Every call needs "
                              "'Authorization: Bearer <token>'. Coordinates are RAS millimetres.")
    limits = store.limits
    device = store.host.device_queue
    _install_error_handlers(app)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/info")
    def engine_info() -> dict:
        return {**info, "api_version": API_VERSION, "limits": limits.describe(), "sessions_open": store.count,
                "embedding_cache_bytes_used": store.host.cached_bytes}

    @app.post("/v1/sessions", status_code=201, response_model=SessionInfo)
    def open_session(request: SessionCreate) -> dict:
        return store.create(request).describe(limits.idle_seconds)

    @app.put("/v1/sessions/{session_id}/voxels", response_model=SessionInfo,
             openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {
                 "type": "string", "format": "binary",
                 "description": "zlib of the voxels' C-order bytes, as announced in the session's volume"}}}}})
    async def upload_voxels(session_id: str, request: Request) -> dict:
        session = store.get(session_id)
        payload = await _read_capped(request, limits.max_upload_bytes)
        await run_in_threadpool(store.load_voxels, session, payload)
        return session.describe(limits.idle_seconds)

    @app.delete("/v1/sessions/{session_id}", status_code=204)
    def close_session(session_id: str) -> None:
        store.get(session_id)
        store.close(session_id)

    # A prompt goes from the event loop straight to the device thread and back: no pool thread
    # in between, whose hand-overs (and GIL waits beside a running propagation) a click would pay.
    @app.post("/v1/sessions/{session_id}/slice", response_model=SliceResponse)
    async def segment_slice(session_id: str, prompt: SlicePrompt) -> dict:
        session = store.get(session_id)
        return await device.run_async(INTERACTIVE, lambda: session.segment_slice(prompt))

    @app.post("/v1/sessions/{session_id}/auto", response_model=SliceResponse)
    async def segment_auto(session_id: str, request: AutoPrompt) -> dict:
        session = store.get(session_id)
        return await device.run_async(INTERACTIVE, lambda: session.segment_auto(request))

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

    app.add_middleware(BearerTokenMiddleware, token=token)
    return app


async def _read_capped(request: Request, cap: int) -> bytes:
    too_large = Refusal(413, f"upload: larger than this server's limit of {cap} bytes "
                             f"(compressed voxels); crop or downsample the volume")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _field_message(error: dict) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request, error: RequestValidationError):
        errors = error.errors()
        detail = _field_message(errors[0]) if errors else "invalid request"
        return JSONResponse({"detail": detail, "errors": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(Refusal)
    async def refused(_request, error: Refusal):
        return JSONResponse({"detail": error.message}, status_code=error.status)

    @app.exception_handler(SegMoTEError)
    async def user_mistake(_request, error: SegMoTEError):
        return JSONResponse({"detail": str(error)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal(request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {first_line(error)}"}, status_code=500)
