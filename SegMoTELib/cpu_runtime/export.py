"""Exporting the model to ONNX graphs, once, into a user cache keyed by the weights.

The graphs are made here from the weights the user has (the bundled LiteMedSAM, the shipped or
given adapter): nothing is downloaded. A folder per model under the cache root
(`SEGMOTE_CACHE_DIR`, else the platform's user cache: `~/.cache/segmote`,
`%LOCALAPPDATA%\\segmote\\Cache`, `~/Library/Caches/segmote`), named after the adapter and the
weights' fingerprint, holds the `.onnx` files and `graphs.json`: the fingerprint, the adapter
file's sha256, the exporter's versions (torch, onnx, opset, graph version) and each graph's
sha256, checked on every load (a changed or damaged file is exported again). A folder is written
under a temporary name and renamed into place, so a reader never sees half a model and two
processes exporting at once both end with one complete folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ..errors import InputError, one_line

GRAPH_VERSION = 6   # bump whenever graphs.py changes what an exported graph computes
OPSET = 17
METADATA = "graphs.json"
CACHE_VARIABLE = "SEGMOTE_CACHE_DIR"

# graph name → ONNX input names (the order the runtime passes them)
PROMPT_INPUTS = ("coords", "labels", "mask_input", "has_mask_input")
INPUTS = {
    "encoder": ("images",),
    "base": ("embedding", *PROMPT_INPUTS),
    "tuned": ("embedding", *PROMPT_INPUTS),
    "segmote": ("embedding", "image_terms", *PROMPT_INPUTS),
    "segmote_all": ("embedding", "image_terms", *PROMPT_INPUTS),
    "auto": ("embedding", "image_terms"),
}


STROKE_INPUTS = ("stroke_maps", "has_strokes")  # the SegMoTE graphs of an adapter with a stroke encoder


def graph_inputs(name: str, model) -> tuple[str, ...]:
    """The input names of graph `name` for this model: INPUTS, and the stroke maps where the SegMoTE
    decoder reads them (`SegMoTEModel.reads_stroke_maps`)."""
    if name in ("segmote", "segmote_all") and model.reads_stroke_maps:
        return INPUTS[name] + STROKE_INPUTS
    return INPUTS[name]


def cache_root() -> Path:
    """Where exported graphs are kept: $SEGMOTE_CACHE_DIR, else the platform's user cache."""
    override = os.environ.get(CACHE_VARIABLE)
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "segmote" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "segmote"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segmote"


def graph_names(model, uses_adapter: bool) -> tuple[str, ...]:
    """The graphs a predictor needs: the encoder and SAM's decoder always; with an adapter, the
    SegMoTE decoder and its prompt-free form, or the fine-tuned SAM decoder ('decoder' mode)."""
    if not uses_adapter:
        return ("encoder", "base")
    if model.uses_experts:
        return ("encoder", "base", "segmote", "segmote_all", "auto")
    return ("encoder", "base", "tuned")


def fingerprint(model, uses_adapter: bool) -> str:
    """sha256 over every weight that goes into the graphs, the adapter's settings and what shapes
    the export (graph version, opset, torch version): equal fingerprints, equal graphs."""
    import torch

    digest = hashlib.sha256()
    parts = [("backbone", model.backbone)]
    if uses_adapter:
        parts.append(("decoder", model.decoder))  # the SegMoTE adapter and the SAM decoder it uses
        digest.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for prefix, module in parts:
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{prefix}.{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
            digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
    digest.update(f"graphs {GRAPH_VERSION} opset {OPSET} torch {torch.__version__} "
                  f"size {model.backbone.input_size}".encode())
    return digest.hexdigest()


def folder_for(model, uses_adapter: bool, adapter_path: Path | None, root: Path | None = None) -> tuple[Path, str]:
    key = fingerprint(model, uses_adapter)
    stem = Path(adapter_path).stem if adapter_path else ("custom-adapter" if uses_adapter else "no-adapter")
    return (root or cache_root()) / "onnx" / f"{model.backbone.name}-{stem}-{key[:16]}", key


def read_valid(folder: Path, key: str, names: tuple[str, ...]) -> dict | None:
    """The folder's metadata if it holds these graphs for this fingerprint, intact; else None."""
    from ..backbones.checkpoints import file_sha256

    try:
        metadata = json.loads((folder / METADATA).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    files = metadata.get("files", {})
    if metadata.get("fingerprint") != key or any(f"{name}.onnx" not in files for name in names):
        return None
    for name in names:
        path = folder / f"{name}.onnx"
        if not path.is_file() or file_sha256(path) != files[f"{name}.onnx"]:
            return None
    return metadata


def load_or_export(model, uses_adapter: bool, adapter_path: Path | None,
                   log: Callable[[str], None] | None = None, root: Path | None = None) -> tuple[Path, dict]:
    """The folder of this model's graphs and their metadata, exporting them first if needed."""
    names = graph_names(model, uses_adapter)
    folder, key = folder_for(model, uses_adapter, adapter_path, root)
    metadata = read_valid(folder, key, names)
    if metadata is not None:
        return folder, metadata
    if log is not None:
        log(f"exporting the model to ONNX once (about a minute on 2 cores) into {folder}")
    return export_to(folder, model, uses_adapter, adapter_path, key, names), read_valid(folder, key, names) or {}


def export_to(folder: Path, model, uses_adapter: bool, adapter_path: Path | None, key: str,
              names: tuple[str, ...]) -> Path:
    from ..backbones.checkpoints import file_sha256

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=folder.parent))
    except OSError as error:
        raise InputError(f"runtime: cannot write the ONNX cache in {folder.parent} ({one_line(error, 200)}); "
                         f"set {CACHE_VARIABLE} to a writable folder") from None
    try:
        started = time.perf_counter()
        export_graphs(model, uses_adapter, staging, names)
        metadata = {
            "format": 1, "fingerprint": key, "graph_version": GRAPH_VERSION, "backbone": model.backbone.name,
            "adapter": None if adapter_path is None else {"file": Path(adapter_path).name,
                                                          "sha256": file_sha256(adapter_path)},
            "exporter": exporter_versions(), "export_seconds": round(time.perf_counter() - started, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": {f"{name}.onnx": file_sha256(staging / f"{name}.onnx") for name in names},
        }
        (staging / METADATA).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
        _publish(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_superseded(folder)
    return folder


def _remove_superseded(folder: Path) -> None:
    """Delete this model's folders made by an older graph version or another torch (they would
    never be read again); folders of other adapters and weights are kept."""
    import torch

    prefix = folder.name[: folder.name.rindex("-") + 1]
    for sibling in folder.parent.glob(prefix + "*"):
        if sibling == folder or not sibling.is_dir() or sibling.name.startswith("."):
            continue
        try:
            metadata = json.loads((sibling / METADATA).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if metadata.get("graph_version") != GRAPH_VERSION or metadata.get("exporter", {}).get("torch") != torch.__version__:
            shutil.rmtree(sibling, ignore_errors=True)


def _publish(staging: Path, folder: Path) -> None:
    """Rename the finished folder into place; a stale one is moved aside first. If another process
    published meanwhile, its complete folder is kept."""
    if folder.exists():
        stale = folder.with_name(folder.name + f".stale-{os.getpid()}")
        with contextlib.suppress(OSError):
            folder.rename(stale)
            shutil.rmtree(stale, ignore_errors=True)
    with contextlib.suppress(OSError):  # a concurrent exporter won: its folder is equally valid
        staging.rename(folder)


def exporter_versions() -> dict:
    import onnx
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET,
            "method": "torch.onnx.export (TorchScript tracer)"}


def export_graphs(model, uses_adapter: bool, folder: Path, names: tuple[str, ...]) -> None:
    """Write `<name>.onnx` for each graph into `folder` (CPU, fp32)."""
    import torch

    from .graphs import AutoGraph, BasePromptGraph, EncoderGraph, SegMoTEPromptGraph

    model = model.to("cpu").eval()
    size = model.backbone.input_size
    with torch.no_grad():
        encoder = EncoderGraph(model, with_image_terms="segmote" in names).eval()
        images = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
        encoded = encoder(images)
        embedding, terms = encoded if isinstance(encoded, tuple) else (encoded, None)
        low_res = embedding.shape[-1] * 4
        prompt = (torch.tensor([[[40.0, 50.0], [0.0, 0.0]]]), torch.tensor([[1.0, -1.0]]),
                  torch.zeros(1, 1, low_res, low_res), torch.zeros(1))
        graphs = {"encoder": (encoder, (images,), ("embedding", "image_terms") if terms is not None else ("embedding",))}
        graphs["base"] = (BasePromptGraph(model, model.backbone.mask_decoder), (embedding, *prompt), ("masks", "iou"))
        if "tuned" in names:
            graphs["tuned"] = (BasePromptGraph(model, model.decoder.sam), (embedding, *prompt), ("masks", "iou"))
        if "segmote" in names:
            segmote = SegMoTEPromptGraph(model)
            outputs = ("masks", "iou", "confidence") + (("presence",) if model.adapter.presence is not None else ())
            strokes = (torch.zeros(1, 4, low_res, low_res), torch.ones(1)) if model.reads_stroke_maps else ()
            graphs["segmote"] = (segmote, (embedding, terms, *prompt, *strokes), outputs)
            graphs["segmote_all"] = (SegMoTEPromptGraph(model, all_experts=True), (embedding, terms, *prompt, *strokes),
                                     outputs)
            graphs["auto"] = (AutoGraph(segmote), (embedding, terms), outputs)
        for name in names:
            module, arguments, outputs = graphs[name]
            _export(module.eval(), arguments, folder / f"{name}.onnx", graph_inputs(name, model), outputs)


def _dynamic_axes(inputs: tuple[str, ...], outputs: tuple[str, ...]) -> dict:
    # The encoder takes one image: TinyViT reads its batch size with len(), which the tracer records
    # as a constant (a batch of 4 would be folded into the channels); the runtime loops instead.
    axes = {"coords": {0: "batch", 1: "points"}, "labels": {0: "batch", 1: "points"}, "mask_input": {0: "batch"},
            "stroke_maps": {0: "batch"}}
    dynamic = {name: axes[name] for name in inputs if name in axes}
    if "coords" in inputs:
        dynamic.update({name: {0: "batch"} for name in outputs})
    return dynamic


def _export(module, arguments, path: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> None:
    import torch

    # The tracer's warnings (shapes read as Python numbers: the image size is fixed by design) and
    # its console output are not the user's concern.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, arguments, str(path), input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes=_dynamic_axes(inputs, outputs), opset_version=OPSET, dynamo=False,
                          do_constant_folding=True)
