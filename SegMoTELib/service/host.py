"""The one predictor of an engine server, shared by every session through the device queue.

Each session's `VolumeSegmenter` gets a `SessionPredictor`: `set_image` only remembers the slice,
and `predict` / `predict_auto` set it on the shared predictor and decode on the device thread, as
one step, so two sessions never see each other's current image. Embeddings live in the shared
predictor's content-keyed LRU cache, capped in bytes across all sessions; a closed session's
embeddings are dropped unless a live session uses the same slice.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import InputError
from .device_queue import INTERACTIVE, DeviceQueue


PENDING_POLL_S = 0.0002


class EngineHost:
    def __init__(self, predictor, cache_bytes: int):
        self.predictor = predictor
        self.device_queue = DeviceQueue(initializer=lambda: _high_priority_stream(predictor.device))
        self.cache_bytes = int(cache_bytes)
        self._entry_bytes: int | None = None
        self._priority = INTERACTIVE  # of the call running on the device thread
        self._neighbours = None  # the thread that queues neighbour slices for background embedding
        predictor.while_embedding_pending = self._while_embedding_pending

    def session_predictor(self, keys: set, priority: int = INTERACTIVE) -> SessionPredictor:
        return SessionPredictor(self, keys, priority)

    # --- on the device thread -----------------------------------------------------------------
    def call(self, image, keys: set, priority: int, work):
        """Set `image` on the shared predictor and run `work(predictor)` on the device thread."""

        def step():
            outer, self._priority = self._priority, priority
            try:
                if image is not None:
                    self.predictor.set_image(image)
                    keys.add(self._current_key())
                result = None if work is None else work(self.predictor)
                self._cap_cache()
                return result
            finally:
                self._priority = outer

        return self.device_queue.run(priority, step)

    def embed(self, images: list, keys: set, priority: int, **options) -> None:
        def step():
            keys.update(self.predictor.embed_images(images, **options))
            self._cap_cache()

        self.device_queue.run(priority, step)

    @property
    def embeds_in_background(self) -> bool:
        """Whether the predictor embeds slices on a background thread (the ONNX CPU runtime)."""
        return getattr(self.predictor, "onnx", None) is not None

    def embed_in_background(self, images: Callable[[], list], keys: set) -> None:
        """Embed the slices `images()` returns at the lowest priority beside the device thread (the
        neighbours of the slice a user looks at); a prompt on one of them later finds its embedding
        ready. Returns at once: the slices are read and prepared on a thread of their own, after the
        answer to the prompt has gone."""
        if self._neighbours is None:
            from concurrent.futures import ThreadPoolExecutor

            self._neighbours = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segmote neighbours")

        def queue():
            keys.update(self.predictor.embed_in_background(images()))

        self._neighbours.submit(queue)

    def _while_embedding_pending(self) -> None:
        """The slice a propagation reached is still being embedded in the background (a chunk of
        slices at a time): meanwhile run the clicks queued, rather than hold the device thread idle
        for the whole chunk."""
        if not self.device_queue.run_more_urgent(self._priority):
            time.sleep(PENDING_POLL_S)

    def close(self) -> None:
        """Stop the device thread once its queued calls have run (the server is stopping)."""
        if self._neighbours is not None:
            self._neighbours.shutdown(wait=False, cancel_futures=True)
        self.device_queue.close()

    # --- cache bookkeeping (the predictor's LRU, an OrderedDict keyed by content hash) ----------
    def _cache(self):
        return self.predictor._cache  # noqa: SLF001  the service owns this predictor outright

    def _current_key(self) -> str:
        return next(reversed(self._cache()))  # set_image moves the slice it used to the end

    def _cap_cache(self) -> None:
        cache = self._cache()
        if self._entry_bytes is None and cache:
            entry = next(iter(cache.values()))
            self._entry_bytes = sum(t.element_size() * t.nelement() for t in (entry.embedding, entry.early)
                                    if t is not None)  # (the ONNX runtime without an adapter keeps no second map)
        if self._entry_bytes:
            self.predictor.cache_size = max(2, self.cache_bytes // self._entry_bytes)
            while len(cache) > self.predictor.cache_size:
                cache.popitem(last=False)

    @property
    def cached_bytes(self) -> int:
        return len(self._cache()) * (self._entry_bytes or 0)

    def forget(self, keys: set, still_used: set) -> None:
        """Drop a closed session's embeddings that no live session shares."""
        def drop():
            cache = self._cache()
            for key in keys - still_used:
                cache.pop(key, None)

        self.device_queue.run(INTERACTIVE, drop)


class SessionPredictor:
    """What a session's VolumeSegmenter calls: the predictor's interface, one slice per call."""

    def __init__(self, host: EngineHost, keys: set, priority: int):
        self._host, self._keys, self._priority = host, keys, priority
        self._image = None

    @property
    def device(self):
        return self._host.predictor.device

    # What the walk reads of the model (its declared walk prompt, its presence head and calibration):
    # the shared predictor's, read-only.
    @property
    def model(self):
        return self._host.predictor.model

    @property
    def uses_adapter(self) -> bool:
        return self._host.predictor.uses_adapter

    @property
    def input_size(self) -> int:
        return self._host.predictor.input_size

    def set_image(self, image, modality: str = "auto", mapping=None) -> None:
        if modality != "auto" or mapping is not None:
            raise InputError("set_image: the service maps intensities once per volume; give 8-bit slices")
        self._image = image

    def _require_image(self):
        if self._image is None:
            raise InputError("image: no image is set; call set_image(image) before predict()")
        return self._image

    def predict(self, prompt=None, **parts):
        return self._host.call(self._require_image(), self._keys, self._priority,
                               lambda predictor: predictor.predict(prompt, **parts))

    def predict_auto(self):
        return self._host.call(self._require_image(), self._keys, self._priority,
                               lambda predictor: predictor.predict_auto())

    def embed_images(self, images: list, **options) -> None:
        self._host.embed(images, self._keys, self._priority, **options)

    def prefetch(self, image) -> None:
        """Embed `image` now (it stays cached) without decoding anything."""
        self._host.call(image, self._keys, self._priority, None)


def _high_priority_stream(device) -> None:
    """On CUDA, the device thread's work goes to a stream of the highest priority, so a click's
    kernels get the GPU's free blocks before the embedding a propagation queued in the background
    (the predictor's side stream has the default, lowest, priority)."""
    if not str(device).startswith("cuda"):
        return
    import torch

    torch.cuda.set_stream(torch.cuda.Stream(device, priority=-(1 << 10)))  # clamped to the highest there is
