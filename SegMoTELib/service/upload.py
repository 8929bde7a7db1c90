"""A session's voxels while they arrive: whole (`PUT .../voxels`) or slab by slab (`?first_slice=k`).

The array is allocated once, at the first upload, and each upload is inflated straight into its
slices as its bytes arrive (`codec.VoxelInflater`): the server never holds the compressed upload
and the decoded volume side by side, and a client can send a large volume one slab at a time
(Slicer does, from its main thread, so the GUI stays responsive and only one compressed slab is
held there). The session becomes ready once every slice has arrived.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from ..errors import InputError
from .codec import VoxelInflater
from .refusal import Refusal


class PendingVolume:
    def __init__(self, spec, max_upload_bytes: int | None, option_hint: str):
        self.spec = spec
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        self.slice_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.received = np.zeros(self.shape[0], dtype=bool)
        self.uploaded_bytes = 0  # compressed, all uploads together
        self.max_upload_bytes = max_upload_bytes
        self.option_hint = option_hint
        self.array: np.ndarray | None = None
        self._busy = threading.Lock()

    # --- one upload ----------------------------------------------------------------------------
    def begin(self, first_slice: int | None, session_id: str) -> VoxelUpload:
        if not self._busy.acquire(blocking=False):
            raise Refusal(409, f"session {session_id}: another upload of its voxels is in progress")
        try:
            first = 0 if first_slice is None else int(first_slice)
            if not 0 <= first < self.shape[0]:
                raise InputError(f"first_slice: expected 0..{self.shape[0] - 1}, got {first}")
            if self.array is None:
                try:
                    self.array = np.empty(self.shape, dtype=self.dtype)
                except MemoryError:
                    raise Refusal(507, f"volume: not enough memory on the server for {list(self.shape)} "
                                       f"voxels of {self.dtype}") from None
            return VoxelUpload(self, first, whole=first_slice is None)
        except BaseException:
            self._busy.release()
            raise

    def room_left(self) -> int | None:
        """Compressed bytes this session may still upload (None: no cap)."""
        if self.max_upload_bytes is None:
            return None
        return self.max_upload_bytes - self.uploaded_bytes

    @property
    def complete(self) -> bool:
        return bool(self.received.all())

    def describe_progress(self) -> str:
        return f"{int(self.received.sum())} of {self.shape[0]} slices received"


class VoxelUpload:
    """One PUT's bytes, inflated into `pending.array` from `first` on."""

    def __init__(self, pending: PendingVolume, first: int, whole: bool):
        self.pending, self.first, self.whole = pending, first, whole
        self.compressed_bytes = 0
        self._inflater = VoxelInflater(pending.array, first * pending.slice_bytes)

    def too_large(self) -> Refusal:
        pending = self.pending
        return Refusal(413, f"upload: larger than {pending.option_hint} of {pending.max_upload_bytes} bytes "
                            f"(compressed voxels); crop or downsample the volume")

    def count(self, size: int) -> None:
        """Count `size` more compressed bytes against the session's upload cap (before inflating them)."""
        self.compressed_bytes += size
        room = self.pending.room_left()
        if room is not None and self.compressed_bytes > room:
            raise self.too_large()

    def feed(self, data: bytes) -> None:
        self._inflater.feed(data)

    def finish(self) -> None:
        """Check what arrived and mark its slices received; always ends the upload."""
        pending = self.pending
        try:
            inflated = self._inflater.finish()
            slices, rest = divmod(inflated, pending.slice_bytes)
            if rest or slices == 0:
                raise InputError(f"voxels: {inflated} bytes after decompression is not a whole number of slices "
                                 f"({pending.slice_bytes} bytes each, {pending.dtype} of shape {list(pending.shape)})")
            if self.whole and slices != pending.shape[0]:
                raise InputError(f"voxels: expected {pending.shape[0]} slices ({pending.shape[0] * pending.slice_bytes} "
                                 f"bytes of {pending.dtype}) after decompression, got {slices}")
            pending.received[self.first:self.first + slices] = True
            pending.uploaded_bytes += self.compressed_bytes
        finally:
            self.release()

    def release(self) -> None:
        if self.pending._busy.locked():  # noqa: SLF001  (one upload at a time, ended here)
            self.pending._busy.release()  # noqa: SLF001
