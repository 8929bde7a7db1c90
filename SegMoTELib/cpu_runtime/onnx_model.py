"""The model's graphs in ONNX Runtime on the CPU: what `SegMoTEPredictor(runtime="onnx")` calls.

`OnnxModel.encode(images)` gives what the predictor caches per slice (the embedding and, with a
SegMoTE adapter, the image terms of its fused features, in the cache's `early` slot), and
`OnnxModel(call, *tensors)` answers a prompt call with the contract of `prompt_path.EagerPrompts`
(masks at the image's size, low-res logits, scores, presence or None, as torch tensors), so the rest of the
predictor — validation, caching, the upscaling to the image, `Prediction` — is shared with torch.
"""

from __future__ import annotations

import numpy as np

from ..modeling.prompt_path import PromptCall
from .graphs import BOX_BOTTOM_RIGHT, BOX_TOP_LEFT, PADDING


def session_options(threads: int, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initialisers etc. are not the user's concern
    if not spinning:  # idle worker threads sleep instead of spinning (a background session)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class OnnxModel:
    """ONNX Runtime sessions over an exported folder (see `export.load_or_export`)."""

    name = "onnx"

    def __init__(self, folder, metadata: dict, threads: int, low_res: int):
        import onnxruntime as ort

        self.folder, self.metadata, self.threads, self.low_res = folder, metadata, int(threads), int(low_res)
        self.version = ort.__version__
        names = [name[:-len(".onnx")] for name in metadata["files"]]
        options = session_options(threads)
        self.sessions = {name: ort.InferenceSession(str(folder / f"{name}.onnx"), options,
                                                    providers=["CPUExecutionProvider"]) for name in names}
        self.image_terms = "segmote" in self.sessions
        # what each graph takes (the SegMoTE graphs of an adapter with a stroke encoder take the stroke maps too)
        self.inputs = {name: tuple(item.name for item in session.get_inputs()) for name, session in self.sessions.items()}
        self._background = None

    def describe(self) -> str:
        return f"ONNX Runtime {self.version}, CPU, {self.threads} thread{'s' if self.threads != 1 else ''}, fp32"

    # --- images ---------------------------------------------------------------------------------
    def encode(self, images):
        """(B, 3, S, S) normalised torch images → (embedding, image terms or None) as torch tensors."""
        return self._encode_with(self.sessions["encoder"], images)

    def encode_in_background(self, images):
        """`encode` on a one-thread session of its own (a background thread calls it while the main
        session answers prompts)."""
        if self._background is None:
            import onnxruntime as ort

            self._background = ort.InferenceSession(str(self.folder / "encoder.onnx"), session_options(1, spinning=False),
                                                    providers=["CPUExecutionProvider"])
        return self._encode_with(self._background, images)

    def _encode_with(self, session, images):
        """One image at a time (the graph's batch is 1: see export._dynamic_axes); on a CPU a batch
        would gain little anyway."""
        import torch

        pixels = np.ascontiguousarray(images.detach().cpu().numpy(), dtype=np.float32)
        outputs = [session.run(None, {"images": pixels[index:index + 1]}) for index in range(len(pixels))]
        parts = [np.concatenate([output[slot] for output in outputs]) if len(outputs) > 1 else outputs[0][slot]
                 for slot in range(len(outputs[0]))]
        embedding = torch.from_numpy(parts[0])
        return embedding, (torch.from_numpy(parts[1]) if len(parts) > 1 else None)

    # --- prompts ----------------------------------------------------------------------------------
    def __call__(self, call: PromptCall, *tensors):
        import torch

        rest = iter(tensors)
        embedding = next(rest)
        terms = next(rest) if call.needs_early_features else None
        points = (next(rest), next(rest)) if call.points else None
        boxes = next(rest) if call.boxes else None
        masks = next(rest) if call.masks else None
        strokes = next(rest) if getattr(call, "strokes", False) else None
        feeds = {"embedding": _numpy(embedding)}
        if call.needs_early_features:
            feeds["image_terms"] = _numpy(terms)
        if call.prompt_free:
            outputs = self.sessions["auto"].run(None, feeds)
        else:
            coords, labels = point_list(points, boxes)
            batch = coords.shape[0]
            feeds.update(coords=coords, labels=labels)
            if masks is not None:
                feeds.update(mask_input=_numpy(masks), has_mask_input=np.ones(1, np.float32))
            else:
                feeds.update(mask_input=np.zeros((batch, 1, self.low_res, self.low_res), np.float32),
                             has_mask_input=np.zeros(1, np.float32))
            graph = "segmote_all" if call.decoder == "segmote" and call.multimask else call.decoder
            if "stroke_maps" in self.inputs[graph]:  # (the predictor passes maps only to such graphs)
                if strokes is not None:
                    feeds.update(stroke_maps=_numpy(strokes), has_strokes=np.ones(1, np.float32))
                else:
                    feeds.update(stroke_maps=np.zeros((batch, 4, self.low_res, self.low_res), np.float32),
                                 has_strokes=np.zeros(1, np.float32))
            outputs = self.sessions[graph].run(None, {name: feeds[name] for name in self.inputs[graph]})
        low_res, scores, presence = select_outputs(call, outputs)
        low_res, scores = torch.from_numpy(low_res), torch.from_numpy(scores)
        presence = None if presence is None else torch.from_numpy(presence)
        return call.transform.logits_to_image(low_res) > 0, low_res, scores, presence


def _numpy(tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().numpy(), dtype=np.float32)


def point_list(points, boxes) -> tuple[np.ndarray, np.ndarray]:
    """(coords (B, N, 2), labels (B, N)) float32 in the order SAM's prompt encoder builds its
    tokens: the clicks, then a padding point when there is no box, then the box's two corners
    (labels 2, 3); no points and no box (a mask alone) gives N = 0."""
    parts_xy, parts_label = [], []
    if points is not None:
        coords, labels = _numpy(points[0]), _numpy(points[1])
        parts_xy.append(coords)
        parts_label.append(labels)
        if boxes is None:
            parts_xy.append(np.zeros((coords.shape[0], 1, 2), np.float32))
            parts_label.append(np.full((coords.shape[0], 1), PADDING, np.float32))
    if boxes is not None:
        corners = _numpy(boxes).reshape(-1, 2, 2)
        if parts_xy and parts_xy[0].shape[0] != corners.shape[0]:
            parts_xy = [np.broadcast_to(part, (corners.shape[0], *part.shape[1:])) for part in parts_xy]
            parts_label = [np.broadcast_to(part, (corners.shape[0], *part.shape[1:])) for part in parts_label]
        parts_xy.append(corners)
        parts_label.append(np.tile(np.array([[BOX_TOP_LEFT, BOX_BOTTOM_RIGHT]], np.float32), (corners.shape[0], 1)))
    if not parts_xy:
        return np.zeros((1, 0, 2), np.float32), np.zeros((1, 0), np.float32)
    return (np.ascontiguousarray(np.concatenate(parts_xy, axis=1), dtype=np.float32),
            np.ascontiguousarray(np.concatenate(parts_label, axis=1), dtype=np.float32))


def select_outputs(call: PromptCall, outputs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(low-res logits (B, K, s, s), scores (B, K), presence (B, K) or None) as the torch path picks
    them: SAM's decoders give mask token 0, or tokens 1-3 with `multimask`; the SegMoTE decoder the
    most confident expert, or every expert most confident first (`prompt_path.adapter_outputs`),
    with the walk's presence probability when the adapter has a presence head."""
    if call.decoder in ("base", "tuned"):
        masks, iou = outputs
        chosen = slice(1, None) if call.multimask else slice(0, 1)
        return np.ascontiguousarray(masks[:, chosen]), np.ascontiguousarray(iou[:, chosen]), None
    masks, iou, confidence = outputs[:3]
    presence = outputs[3] if len(outputs) > 3 else None
    if not call.multimask:  # the graph made the chosen expert's mask only
        return masks, iou, presence
    # torch's argsort(descending=True) is not stable; a stable descending sort agrees on ties of
    # distinct values, and equal confidences do not occur between trained expert routers
    order = np.argsort(-confidence, axis=1, kind="stable")
    rows = np.arange(masks.shape[0])[:, None]
    return (np.ascontiguousarray(masks[rows, order]), np.ascontiguousarray(iou[rows, order]),
            None if presence is None else np.ascontiguousarray(presence[rows, order]))
