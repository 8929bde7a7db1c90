"""All open sessions of a server: creation within the limits, lookup, idle closing.

A session closed for idleness (or by its client) is remembered for a while, so the next call on
it says what happened (410) instead of a bare "unknown session".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import AccessError, InputError
from .limits import ServiceLimits
from .refusal import Refusal
from .session import Session, check_volume_shape
from .upload import PendingVolume, VoxelUpload

log = logging.getLogger("segmote.service")
REMEMBERED_CLOSED = 1000


class SessionStore:
    def __init__(self, host, limits: ServiceLimits, data_roots: list[Path] | None = None):
        self.host = host
        self.limits = limits
        self.data_roots = [Path(root).resolve() for root in (data_roots or [])]
        self._sessions: dict[str, Session] = {}
        self._pending: dict[str, PendingVolume] = {}  # sessions awaiting (some of) their voxels
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # --- opening -------------------------------------------------------------------------------
    def create(self, request) -> Session:
        from ..intensity import IntensityMapping, normalise_modality

        mapping_fields = request.mapping.model_dump()
        normalise_modality(mapping_fields["modality"])  # an unknown name fails before any upload
        mapping = IntensityMapping(**mapping_fields)
        volume = None
        if request.path is not None:
            volume = self._read_path(request.path)
            shape = list(volume.array.shape)
            check_volume_shape(shape, volume.rgb, self.limits.max_voxels, self.limits.refusal_hint("max_voxels"))
        else:
            shape = list(request.volume.shape)
            check_volume_shape(shape, request.volume.rgb, self.limits.max_voxels, self.limits.refusal_hint("max_voxels"))
            _check_geometry(request.volume)  # before the client spends time on the upload
        with self._lock:
            if len(self._sessions) >= self.limits.max_sessions:
                raise Refusal(429, f"sessions: this server already holds its limit of {self.limits.max_sessions} "
                                   f"open sessions; close one (DELETE /v1/sessions/{{id}}) or try later")
            session = Session(self.host, shape, mapping, self.limits.results_per_session, self.limits.request_seconds)
            self._sessions[session.id] = session
            if volume is None:
                self._pending[session.id] = PendingVolume(request.volume, self.limits.max_upload_bytes,
                                                          self.limits.refusal_hint("max_upload_bytes"))
        if volume is not None:
            self._attach(session, volume)
        return session

    def _read_path(self, path: str):
        from ..io import read_volume

        if not self.data_roots:
            raise Refusal(403, "path: this server reads no files for clients (start it with --data-root DIR); "
                               "upload the volume instead")
        try:
            Path(path).resolve()
        except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
            raise InputError("path: not a usable file name on this server") from None
        try:  # the file and any data file its header names, resolved, under a root
            return read_volume(path, confine_to=self.data_roots)
        except AccessError as error:
            raise Refusal(403, f"path: {error}") from None

    # --- voxel uploads -------------------------------------------------------------------------
    def begin_upload(self, session: Session, first_slice: int | None) -> VoxelUpload:
        """Start taking voxels for `session` (all of them, or a slab from `first_slice` on)."""
        pending = self._pending.get(session.id)
        if pending is None:
            raise Refusal(409, f"session {session.id}: its voxels were uploaded already")
        return pending.begin(first_slice, session.id)

    def finish_upload(self, session: Session, upload: VoxelUpload) -> None:
        """End an upload (runs in a worker thread: it may build the volume); once every slice has
        arrived, the session is ready."""
        from ..volume import Volume

        upload.finish()
        pending = upload.pending
        if not pending.complete or self._pending.get(session.id) is not pending:
            return
        spec = pending.spec
        volume = Volume(pending.array, np.asarray(spec.origin_lps), np.asarray(spec.spacing),
                        np.asarray(spec.direction_lps), modality=spec.modality, rgb=spec.rgb)
        self._attach(session, volume)
        self._pending.pop(session.id, None)

    def pending_progress(self, session: Session) -> str | None:
        pending = self._pending.get(session.id)
        return None if pending is None else pending.describe_progress()

    def _attach(self, session: Session, volume) -> None:
        try:
            session.attach(volume)
        except InputError:
            self.close(session.id, "its volume was refused")
            raise

    # --- lookup and closing --------------------------------------------------------------------
    def get(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
            reason = self._closed.get(session_id)
        if session is None:
            if reason is not None:
                raise Refusal(410, f"session {session_id}: {reason}; open a new session")
            raise Refusal(404, f"session {session_id}: no such session on this server")
        session.touch()
        return session

    def close(self, session_id: str, reason: str = "closed by its client") -> None:
        with self._lock:
            session = self._sessions.pop(session_id, None)
            self._pending.pop(session_id, None)
            if session is None:
                return
            self._closed[session_id] = f"was {reason}" if not reason.startswith("was ") else reason
            while len(self._closed) > REMEMBERED_CLOSED:
                self._closed.popitem(last=False)
            still_used = set().union(*(other.keys for other in self._sessions.values()))
        session.close()
        self.host.forget(session.keys, still_used)

    def close_idle(self) -> list[str]:
        """Close the sessions untouched for longer than the idle limit (a running job counts as use)."""
        now = time.monotonic()
        limit = self.limits.idle_seconds
        with self._lock:
            idle = [s for s in self._sessions.values() if now - s.last_used > limit and not s.busy]
        for session in idle:
            self.close(session.id, f"closed after {limit:g} s without a call (the server's idle limit)")
            log.info("session %s closed after %g s idle", session.id, limit)
        return [session.id for session in idle]

    def start_reaper(self) -> None:
        interval = min(5.0, max(0.2, self.limits.idle_seconds / 4))

        def reap():
            while not self._stop.wait(interval):
                try:
                    self.close_idle()
                except Exception:  # the reaper must outlive one bad close
                    log.exception("closing idle sessions failed")

        threading.Thread(target=reap, name="segmote idle sessions", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for session_id in list(self._sessions):
            self.close(session_id, "closed because the server stopped")

    @property
    def count(self) -> int:
        return len(self._sessions)


def _check_geometry(spec) -> None:
    from ..volume import Volume

    Volume(np.zeros((1, 1, 1), dtype=np.uint8), np.asarray(spec.origin_lps), np.asarray(spec.spacing),
           np.asarray(spec.direction_lps))
