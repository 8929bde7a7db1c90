"""SegMoTEPredictor: the one façade the Slicer effect, the Logic, the CLI and the tests use.

`set_image` maps the image to 8-bit RGB, resizes and pads it and caches its embedding (LRU keyed
by content hash); `predict` turns points / boxes / a previous mask into masks at the image's own
resolution; `predict_auto` segments without a prompt (PPT).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .intensity import IntensityMapping
from .modeling.prompt_path import PromptCall
from .preprocessing import ImageTransform, as_model_uint8, to_model_input, to_model_inputs
from .slice_prompt import SlicePrompt

LOW_RES = 256
# a lasso's second decode: the found mask's box grown by this fraction of the image's longest side
# (3 px on a 512-px image; measured in MODEL_CARD, "Scribbles and lassos")
LASSO_BOX_GROWTH = 0.006


@dataclass
class Prediction:
    masks: np.ndarray            # bool (K, H, W), or (B, K, H, W) for a batch of boxes
    scores: np.ndarray           # predicted IoU, (K,) or (B, K)
    low_res_logits: np.ndarray   # float32 (K, 256, 256) or (B, K, 256, 256), for refinement
    decoder: str                 # "segmote" or "base"
    presence: np.ndarray | None = None  # the walk's continuation probability, like `scores`; None without a presence head


@dataclass
class _Embedding:
    embedding: object   # torch.Tensor (1, 256, 64, 64)
    early: object       # torch.Tensor (1, C, h, w)
    transform: ImageTransform
    ready: object = None  # torch.cuda.Event of a background embedding not yet waited for


def _parallel_map(function, items: list) -> list:
    """`function` over `items` in threads when there are many (hashing releases the GIL)."""
    if len(items) < 16:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return list(pool.map(function, items))


def resolve_walk_head(backbone: str, adapter_path=None) -> Path | None:
    """The walk-head add-on the manifest lists for the shipped adapter at `adapter_path` (default: the
    default adapter of `backbone`), sha256 checked; None when it lists none."""
    from .backbones.checkpoints import verify_checkpoint
    from .resources import load_manifest, resources_dir

    for name, entry in load_manifest().get("adapters", {}).items():
        head = entry.get("walk_head")
        if entry.get("backbone") != backbone or not head:
            continue
        listed = resources_dir() / entry["file"]
        if entry.get("default") if adapter_path is None else _same_file(listed, adapter_path):
            return verify_checkpoint(resources_dir() / head["file"], head["sha256"], f"walk head of {name}")
    return None


def _same_file(a, b) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


def resolve_default_adapter(backbone: str) -> Path | None:
    """The shipped adapter for `backbone` from the manifest, verified by sha256, or None."""
    from .backbones.checkpoints import verify_checkpoint
    from .resources import load_manifest, resources_dir

    for name, entry in load_manifest().get("adapters", {}).items():
        if entry.get("backbone") == backbone and entry.get("default"):
            return verify_checkpoint(resources_dir() / entry["file"], entry["sha256"], f"shipped adapter {name}")
    return None


class SegMoTEPredictor:
    def __init__(self, backbone: str = "litemedsam", checkpoint: str | Path | None = None,
                 adapter: str | Path | None = "default", device: str = "auto", cache_size: int = 8,
                 model=None, *, runtime: str = "auto", precision: str = "fp32", optimize: bool = False,
                 cuda_graphs: bool = False, compile_encoder: bool = False):
        """Speed options (defaults change nothing): `precision` "fp16"/"bf16" runs the image encoder
        in that precision (the decoder stays fp32); on GPUs use fp16: bf16's coarser mantissa
        changes SegMoTE's expert choice on some images (BENCHMARKS.md); `optimize` swaps in faster modules with the
        same weights and maths (float rounding aside: masks checked equal by Dice on real images;
        with `model=` the predictor then works on a copy of it); `cuda_graphs` replays prompt → mask
        calls from CUDA graphs; `compile_encoder` compiles the encoder for batches of slices
        (`embed_images`, propagation; the first batch waits 20–50 s for the compilation). The last
        two need a CUDA device.

        `runtime`: "torch" (PyTorch, every device), "onnx" (the model's graphs in ONNX Runtime on
        the CPU, exported once into a user cache: `cpu_runtime`), or "auto" (ONNX Runtime on a CPU
        device when it is installed, for a model loaded from files; else PyTorch). A runtime that cannot run here falls back to
        PyTorch and `notice` says why in one line; `runtime_name` is the one in use."""
        import torch

        from .backbones import load_backbone
        from .device import select_device
        from .modeling import SegMoTEModel

        if cache_size < 1:
            raise InputError(f"cache_size: must be at least 1, got {cache_size}")
        self.device = select_device(device)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, _Embedding] = OrderedDict()
        self._current: _Embedding | None = None
        self._background_stream = None  # the side CUDA stream of embed_images(background=True), made on first use
        # Called again and again while set_image waits for a background embedding still on the GPU
        # (the engine service runs its queued clicks there); None: the GPU stream waits instead.
        self.while_embedding_pending: Callable[[], None] | None = None
        self.notice: str | None = None
        self.box_decoder = "base"
        self.guard_negative_clicks = True  # drop negative clicks far from the mask (negative_clicks.py)
        self.dropped_negatives = 0         # how many the last predict() dropped
        if model is not None:  # an in-memory model (training-time evaluation)
            self.model, self.uses_adapter = model, True
            self.box_decoder = "segmote"
        else:
            base = load_backbone(backbone, checkpoint)
            adapter_path = resolve_default_adapter(backbone) if adapter == "default" else adapter
            if adapter_path is None:
                self.model, self.uses_adapter = SegMoTEModel(base), False
                self.notice = (
                    "no trained SegMoTE adapter is available for this backbone: using the base decoder "
                    "(boxes work; single clicks and prompt-free masks need the adapter)"
                    if adapter == "default" else None
                )
            else:
                self.model = SegMoTEModel.from_adapter(base, adapter_path)
                self.uses_adapter = True
                if self.model.adapter.presence is None:  # a shipped adapter with a walk-head add-on
                    self._attach_walk_head(backbone, adapter_path)
                self.box_decoder = "segmote" if self.model.metadata.get("use_for_boxes", False) else "base"
        self.adapter_path = None if model is not None or not self.uses_adapter else Path(adapter_path)
        self.model.to(self.device).eval()
        self._configure_speed(precision, optimize, cuda_graphs, compile_encoder, copy_model=model is not None)
        self.input_size = self.model.backbone.input_size
        self.backbone_name = self.model.backbone.name
        self._torch = torch
        self.onnx = None
        self._background = None  # the background encoder thread (ONNX runtime), made on first use
        # An in-memory model (training-time evaluation) changes with every step: "auto" keeps it on
        # torch rather than export each version; runtime="onnx" exports it anyway.
        self._configure_runtime("torch" if model is not None and runtime == "auto" else runtime)

    def _configure_runtime(self, runtime: str) -> None:
        """Run the encoder and the decoders in ONNX Runtime when `runtime` asks for it and it can."""
        import logging

        from .cpu_runtime import choose_runtime, load_onnx_model

        name, notice = choose_runtime(runtime, self.device, self.backbone_name)
        if name == "onnx":
            try:
                self.onnx = load_onnx_model(self.model, self.uses_adapter, self.adapter_path,
                                            self._torch.get_num_threads(), LOW_RES,
                                            log=logging.getLogger("segmote.runtime").warning)
                self._prompts = self.onnx
            except Exception as error:  # noqa: BLE001 — the torch path still works; say why it is used
                from .errors import one_line

                name, notice = "torch", f"runtime: the ONNX runtime could not start ({one_line(error, 200)}), " \
                                        f"so the model runs on PyTorch"
        self.runtime_name = name
        if notice:
            self.notice = notice if not self.notice else f"{self.notice}; {notice}"

    @property
    def runtime_description(self) -> str:
        """The runtime in use in words, e.g. "ONNX Runtime 1.32.0, CPU, 2 threads, fp32"."""
        if self.onnx is not None:
            return self.onnx.describe()
        threads = f", {self._torch.get_num_threads()} threads" if self.device.type == "cpu" else ""
        return f"PyTorch {self._torch.__version__}, {self.device}{threads}, {self.precision}"

    def _attach_walk_head(self, backbone: str, adapter_path) -> None:
        from .modeling.adapter_io import read_walk_head

        head = resolve_walk_head(backbone, adapter_path)
        if head is not None:
            self.model.attach_walk_head(read_walk_head(head, adapter_path))

    def _configure_speed(self, precision: str, optimize: bool, cuda_graphs: bool, compile_encoder: bool,
                         copy_model: bool) -> None:
        import copy

        from .modeling.prompt_path import EagerPrompts, GraphedPrompts
        from .modeling.speed import CompiledEncoder, accelerate_model, check_speed_options

        self.precision = check_speed_options(self.device, precision, cuda_graphs, compile_encoder)
        self.optimize = bool(optimize)
        if self.optimize:
            if copy_model:
                self.model = copy.deepcopy(self.model)
            accelerate_model(self.model, self.device)
        self.compiled_encoder = CompiledEncoder(self.model) if compile_encoder else None
        # prompt → mask calls are replayed from CUDA graphs or run directly
        self.decoder_graphs = GraphedPrompts(self.model) if cuda_graphs else None
        self._prompts = self.decoder_graphs or EagerPrompts(self.model)

    # --- images ---------------------------------------------------------------------------
    @staticmethod
    def _key(pixels: np.ndarray) -> str:
        # hashlib reads the array's buffer (no copy) and releases the GIL, so keys hash in parallel
        return hashlib.sha1(np.ascontiguousarray(pixels).data).hexdigest() + str(pixels.shape)

    def set_image(self, image: np.ndarray, modality: str = "auto", mapping: IntensityMapping | None = None) -> None:
        pixels = as_model_uint8(image, modality, mapping)
        key = self._key(pixels)
        if key not in self._cache and self._background is not None:
            embedded = self._background.take(key)  # embedded while the user looked at a neighbour
            if embedded is not None:
                self._store(key, *embedded)
        if key in self._cache:
            entry = self._claim(self._cache[key])  # while_embedding_pending may use the cache meanwhile
            self._cache[key] = entry
            self._cache.move_to_end(key)
        else:
            embedding, early, transforms = self._embed([pixels])
            self._store(key, embedding, early, transforms[0])
            entry = self._cache[key]
        self._current = entry

    def _claim(self, entry: _Embedding) -> _Embedding:
        """Make a background embedding usable on the current stream: the GPU waits for it (Python
        does not), and its memory is marked as in use there."""
        if entry.ready is not None:
            while self.while_embedding_pending is not None and not entry.ready.query():
                self.while_embedding_pending()
            stream = self._torch.cuda.current_stream(self.device)
            stream.wait_event(entry.ready)
            entry.embedding.record_stream(stream)
            entry.early.record_stream(stream)
            entry.ready = None
        return entry

    def clear_cache(self) -> None:
        """Forget every cached embedding (the current image too)."""
        self._cache.clear()
        self._current = None

    def embed_images(self, images: list[np.ndarray], modality: str = "auto", mapping: IntensityMapping | None = None,
                     batch_size: int = 16, background: bool = False) -> list[str]:
        """Embed several images in batches (worth it on a GPU) and keep them in the cache; returns
        their cache keys (the service keeps them per session).

        `background` (CUDA devices; ignored elsewhere): queue the work on a side stream and return
        at once, so that it runs while the caller keeps the GPU busy with prompts (propagation);
        `set_image` of one of these images makes the GPU wait for its batch. The cache then also
        keeps room for as many earlier embeddings (the ones in use meanwhile)."""
        import contextlib

        rgbs = [as_model_uint8(image, modality, mapping) for image in images]
        stream = self._side_stream() if background and self.device.type == "cuda" else None
        self.cache_size = max(self.cache_size, len(rgbs) * (2 if stream is not None else 1))
        keys = _parallel_map(self._key, rgbs)
        pending = [(key, rgb) for key, rgb in zip(keys, rgbs) if key not in self._cache]
        for start in range(0, len(pending), batch_size):
            chunk = pending[start:start + batch_size]
            ready = None
            with self._torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                embeddings, earlies, transforms = self._embed([rgb for _, rgb in chunk])
                if stream is not None:
                    ready = self._torch.cuda.Event()
                    ready.record(stream)
            for index, (key, _) in enumerate(chunk):
                early = None if earlies is None else earlies[index:index + 1]  # (the ONNX runtime without an adapter)
                self._store(key, embeddings[index:index + 1], early, transforms[index], ready)
        return list(keys)

    def embed_in_background(self, images: list[np.ndarray], modality: str = "auto",
                            mapping: IntensityMapping | None = None) -> list[str]:
        """Embed `images` on a background thread at the lowest OS priority (the ONNX runtime: its
        own one-thread session), so that a `set_image` of one of them later costs no embedding
        while prompts meanwhile run at full speed; a newer call replaces the images not started yet.
        Returns the cache keys queued. Other runtimes queue nothing (on CUDA see `embed_images`
        with `background=True`)."""
        if self.onnx is None:
            return []
        if self._background is None:
            from .cpu_runtime.background import BackgroundEncoder

            self._background = BackgroundEncoder(self.onnx.encode_in_background)
        items = []
        for image in images:
            pixels = as_model_uint8(image, modality, mapping)
            key = self._key(pixels)
            if key in self._cache:
                continue
            inputs, transform = to_model_input(pixels, self.model.backbone, self.device)
            items.append((key, inputs, transform))
        self._background.submit(items)
        return [key for key, _, _ in items]

    def _side_stream(self):
        if self._background_stream is None:
            self._background_stream = self._torch.cuda.Stream(self.device)
        return self._background_stream

    def _embed(self, rgbs: list[np.ndarray]):
        from .modeling.speed import encode

        torch = self._torch
        if all(rgb.shape == rgbs[0].shape for rgb in rgbs):  # one upload and resize for the batch
            inputs, transforms = to_model_inputs(rgbs, self.model.backbone, self.device)
        else:
            inputs, transforms = zip(*(to_model_input(rgb, self.model.backbone, self.device) for rgb in rgbs))
            inputs = torch.cat(inputs)
        if self.onnx is not None:  # `early` holds what the ONNX decoders read: the fused features' image terms
            embedding, early = self.onnx.encode(inputs)
            return embedding, early, list(transforms)
        with torch.inference_mode():
            encoder = self.compiled_encoder or self.model.encode
            embedding, early = encode(encoder, inputs, self.device, self.precision, channels_last=self.optimize)
        return embedding, early, list(transforms)

    def _store(self, key: str, embedding, early, transform: ImageTransform, ready=None) -> None:
        self._cache[key] = _Embedding(embedding, early, transform, ready)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    @property
    def image_size(self) -> tuple[int, int]:
        return self._require_image().transform.original_hw

    def _require_image(self) -> _Embedding:
        if self._current is None:
            raise InputError("image: no image is set; call set_image(image) before predict()")
        return self._current

    # --- prompts --------------------------------------------------------------------------
    def predict(self, prompt: SlicePrompt | None = None, *, points=None, labels=None, box=None, mask_input=None,
                multimask: bool = False, decoder: str | None = None, seed_mask=None) -> Prediction:
        """Masks for a pixel-frame `SlicePrompt` (clicks, box, scribbles, lassos, earlier logits or a
        seed mask); or, without one, for its parts given as keywords: points (N, 2), labels (N,), box
        (4,) or a batch of boxes (B, 4), mask_input (256, 256), seed_mask (H, W) (a mask made
        elsewhere, refined as an earlier result's logits would be).

        `decoder` None follows the predictor's policy (the adapter for clicks and strokes, for boxes
        only where it beat the base decoder on validation); "base" or "segmote" forces one (for
        comparisons)."""
        from .lasso_bounds import bound_by_lassos
        from .prompt_encoding import encode_prompts

        current = self._require_image()
        prompts, batched = self._prompt_batch(prompt, points, labels, box, mask_input, seed_mask)
        height, width = current.transform.original_hw
        for one in prompts:
            one.check_inside(height, width)
        if prompts[0].empty:
            raise InputError("prompt: give at least one of points, box, a scribble, a lasso, mask_input or a seed mask")
        self.dropped_negatives = 0
        if self.guard_negative_clicks and not batched and 0 in prompts[0].labels:
            prompts = [self._without_far_negatives(prompts[0], decoder)]
        has_box = prompts[0].box is not None or any(stroke.positive for stroke in prompts[0].lassos)
        use_adapter = self._use_adapter(decoder, has_box, bool(prompts[0].scribbles or prompts[0].lassos))
        torch = self._torch
        with torch.inference_mode():
            inputs = encode_prompts(prompts, current.transform, LOW_RES,
                                    use_adapter and self.model.reads_stroke_maps, self.device)
            tensors = [t for t in (inputs.points, inputs.labels, inputs.boxes, inputs.masks, inputs.strokes)
                       if t is not None]
            kind = ("segmote" if self.model.uses_experts else "tuned") if use_adapter else "base"
            call = PromptCall(points=inputs.points is not None, boxes=inputs.boxes is not None,
                              masks=inputs.masks is not None, decoder=kind, multimask=bool(multimask),
                              transform=current.transform, strokes=inputs.strokes is not None)
            outputs = self._run(call, current, tensors)
        prediction = self._finish(*outputs, batched, "segmote" if use_adapter else "base")
        if not batched and prompts[0].lassos:
            prediction.masks = bound_by_lassos(prediction.masks, prompts[0])
            if not multimask:
                prediction = self._tightened_to_lasso(prompts[0], prediction)
        return prediction

    def _tightened_to_lasso(self, prompt: SlicePrompt, prediction: Prediction) -> Prediction:
        """A positive lasso stands for its bounding box, which is looser than a drawn box (the loop runs
        around the structure, with a margin). Decode once more with the box of the mask found inside
        the lasso (grown by `LASSO_BOX_GROWTH`) and that mask's logits, the other prompts kept, bound
        the result by the lassos again, and keep the answer with the higher predicted IoU. One round:
        a second one measured lower (MODEL_CARD)."""
        from .lasso_bounds import bound_by_lassos

        if prompt.box is not None or not any(stroke.positive for stroke in prompt.lassos):
            return prediction  # a drawn box already says where; a negative lasso adds no box
        from .walk_rules import mask_box

        mask = np.asarray(prediction.masks)[0]
        found = mask_box(mask)
        if found is None:
            return prediction
        x0, y0, x1, y1 = found
        grow = LASSO_BOX_GROWTH * max(mask.shape)
        low = (max(x0 - grow, 0.0), max(y0 - grow, 0.0))
        high = (min(x1 + grow, mask.shape[1] - 1.0), min(y1 + grow, mask.shape[0] - 1.0))
        tighter = prompt.with_(box=(tuple(map(float, low)), tuple(map(float, high))),
                               lassos=tuple(stroke for stroke in prompt.lassos if not stroke.positive),
                               mask_input=prediction.low_res_logits[0], seed_mask=None)
        refined = self.predict(tighter, decoder=prediction.decoder)  # the decoder that read the lasso
        refined.masks = bound_by_lassos(refined.masks, prompt)
        # kept only where the model rates it higher: the box of a poor first mask (a small structure
        # half found) would lose the rest
        return refined if float(refined.scores[0]) > float(prediction.scores[0]) else prediction

    @staticmethod
    def _prompt_batch(prompt, points, labels, box, mask_input, seed_mask=None) -> tuple[list[SlicePrompt], bool]:
        """The prompts of one call and whether they are a batch (a (B, 4) array of boxes)."""
        if prompt is not None:
            if not isinstance(prompt, SlicePrompt):
                raise InputError(f"prompt: expected a SlicePrompt, got {type(prompt).__name__}")
            if any(v is not None for v in (points, labels, box, mask_input, seed_mask)):
                raise InputError("prompt: give a SlicePrompt or points/labels/box/mask_input/seed_mask, not both")
            if prompt.frame != "pixel":
                raise InputError(f"prompt: the predictor takes pixel coordinates; map a {prompt.frame} prompt to its "
                                 "slice first (geometry.prompt_on_slice, or VolumeSegmenter.segment_slice)")
            return [prompt], False
        boxes = None if box is None else np.asarray(box, dtype=np.float64)
        if boxes is None or boxes.ndim != 2:
            return [SlicePrompt.build(points=points, labels=labels, box=boxes, mask_input=mask_input,
                                      seed_mask=seed_mask)], False
        if len(boxes) == 0 or boxes.shape[1:] != (4,):
            raise InputError(f"box: expected (4,) x0, y0, x1, y1 or (B, 4), got shape {boxes.shape}")
        if seed_mask is not None:
            raise InputError("seed_mask: a seed mask cannot go with a batch of boxes")
        if points is not None and len(boxes) > 1:
            raise InputError("points: points cannot be combined with a batch of several boxes")
        logits = None if mask_input is None else np.asarray(mask_input, dtype=np.float32)
        if logits is not None and logits.ndim == 3 and logits.shape[0] == len(boxes) and len(boxes) > 1:
            per_box = list(logits)
        elif logits is not None and logits.ndim == 3 and logits.shape[0] != 1:
            raise InputError(f"mask_input: {logits.shape[0]} masks for {len(boxes)} prompts")
        else:
            per_box = [logits] * len(boxes)
        return [SlicePrompt.build(points=points, labels=labels, box=row, mask_input=mask)
                for row, mask in zip(boxes, per_box)], True
    def _without_far_negatives(self, prompt: SlicePrompt, decoder) -> SlicePrompt:
        """The prompt without its negative clicks far from the mask segmented without any negative click."""
        from .negative_clicks import far_negative_clicks

        labels = np.asarray(prompt.labels)
        positive = tuple(point for point, label in zip(prompt.points, prompt.labels) if label == 1)
        anchors = positive or prompt.box is not None or prompt.mask_input is not None or prompt.seed_mask is not None \
            or any(stroke.positive for stroke in (*prompt.scribbles, *prompt.lassos))
        if not anchors:
            return prompt  # negative prompts alone: nothing to compare with
        plain = self.predict(prompt.with_(points=positive, labels=(1,) * len(positive)), decoder=decoder)
        far = far_negative_clicks(np.asarray(plain.masks).reshape(-1, *plain.masks.shape[-2:])[0],
                                  prompt.points_array(), labels)
        self.dropped_negatives = int(far.sum())
        if not far.any():
            return prompt
        kept = [i for i in range(len(labels)) if not far[i]]
        return prompt.with_(points=tuple(prompt.points[i] for i in kept), labels=tuple(prompt.labels[i] for i in kept))

    def _run(self, call: PromptCall, current: _Embedding, prompt_tensors: list):
        image_tensors = [current.embedding] + ([current.early] if call.needs_early_features else [])
        return self._prompts(call, *image_tensors, *prompt_tensors)

    def _use_adapter(self, decoder: str | None, has_box: bool, has_strokes: bool = False) -> bool:
        if decoder not in (None, "base", "segmote"):
            raise InputError(f"decoder: expected None, 'base' or 'segmote', got {decoder!r}")
        if decoder == "segmote" and not self.uses_adapter:
            raise InputError("decoder: 'segmote' was requested but no SegMoTE adapter is loaded")
        if decoder is not None:
            return decoder == "segmote"
        if has_strokes and self.uses_adapter and self.model.reads_stroke_maps:
            return True  # only the adapter reads the strokes' dense channel
        return self.uses_adapter and (not has_box or self.box_decoder == "segmote")

    def predict_auto(self) -> Prediction:
        """Prompt-free segmentation of the current image (PPT tokens replace the prompt)."""
        current = self._require_image()
        if not (self.uses_adapter and self.model.uses_experts):
            raise InputError("prompt: prompt-free segmentation needs a trained SegMoTE adapter with PPT; none is loaded")
        call = PromptCall(points=False, boxes=False, masks=False, decoder="segmote", multimask=False,
                          transform=current.transform)
        with self._torch.inference_mode():
            outputs = self._run(call, current, [])
        return self._finish(*outputs, False, "segmote")

    @staticmethod
    def _finish(masks, low_res, scores, presence, batched: bool, decoder: str) -> Prediction:
        masks, low, iou = masks.cpu().numpy(), low_res.cpu().numpy(), scores.cpu().numpy()
        presence = None if presence is None else presence.float().cpu().numpy()
        if not batched:
            masks, low, iou = masks[0], low[0], iou[0]
            presence = None if presence is None else presence[0]
        return Prediction(masks=masks, scores=iou, low_res_logits=low, decoder=decoder, presence=presence)
