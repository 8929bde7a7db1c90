"""`segmote export-cpu`: export the model to ONNX for the optimized CPU runtime, and check it.

The predictor does the same on first use with `--runtime onnx|auto` on a CPU; this command does it
ahead of time (e.g. while installing) and compares the graphs' masks with PyTorch's on a slice of
the procedural phantom, so a user can see the runtime is right on their machine.
"""

from __future__ import annotations

import argparse
import json
import time

CHECK_MIN_DICE = 0.99

HELP = "export the model to ONNX for the optimized CPU runtime (cached per adapter) and check it against PyTorch"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", default="litemedsam", help="backbone name (default: litemedsam)")
    parser.add_argument("--checkpoint", default=None, help="backbone checkpoint file (a fine-tuned LiteMedSAM)")
    parser.add_argument("--adapter", default="default",
                        help="adapter file, 'default' (the shipped one, if any) or 'none' (base decoder)")
    parser.add_argument("--force", action="store_true", help="export again even if the cache holds these graphs")
    parser.add_argument("--no-check", action="store_true", help="skip the comparison with PyTorch")


def run(args) -> int:
    from ..cpu_runtime import onnx_unavailable
    from ..cpu_runtime.export import folder_for, graph_names
    from ..errors import InputError
    from ..model_spec import ModelSpec

    problem = onnx_unavailable()
    if problem is not None:
        raise InputError(f"runtime: {problem}; pip install 'onnxruntime>=1.17,<2' 'onnx>=1.16,<2'")
    spec = ModelSpec(backbone=args.backbone, checkpoint=args.checkpoint, adapter=args.adapter, device="cpu",
                     runtime="torch")
    reference = spec.build_predictor(cache_size=2)
    if args.force:
        import shutil

        folder, _ = folder_for(reference.model, reference.uses_adapter, reference.adapter_path)
        shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    onnx = ModelSpec(backbone=args.backbone, checkpoint=args.checkpoint, adapter=args.adapter, device="cpu",
                     runtime="onnx").build_predictor(cache_size=2)
    if onnx.onnx is None:
        raise InputError(onnx.notice or "runtime: the ONNX runtime could not start")
    metadata = onnx.onnx.metadata
    print(f"graphs: {onnx.onnx.folder} ({', '.join(graph_names(onnx.model, onnx.uses_adapter))}; "
          f"ready in {time.perf_counter() - started:.0f} s)")
    print(f"exporter: {json.dumps(metadata.get('exporter', {}))}; adapter: {json.dumps(metadata.get('adapter'))}")
    print(f"runtime: {onnx.runtime_description}")
    if args.no_check:
        return 0
    lines, worst = compare_on_phantom(reference, onnx)
    for line in lines:
        print(line)
    if worst < CHECK_MIN_DICE:
        print(f"the ONNX masks differ from PyTorch's (Dice {worst:.4f} < {CHECK_MIN_DICE}): use --runtime torch "
              f"and report this machine's CPU and the versions above")
        return 1
    return 0


def compare_on_phantom(reference, candidate) -> tuple[list[str], float]:
    """One line per prompt kind (the mask Dice and the largest logit difference of `candidate`
    against `reference` on the phantom's axial slice with the most liver: box, click, prompt-free)
    and the lowest Dice."""
    import numpy as np

    from ..intensity import IntensityMapping, to_uint8
    from ..phantom import make_phantom

    phantom = make_phantom(seed=0)
    liver = phantom.mask("liver")
    index = int(np.argmax(liver.sum(axis=(1, 2))))
    image = to_uint8(phantom.image.array[index], IntensityMapping(modality="CT", preset="abdomen"))
    liver = liver[index]
    ys, xs = np.nonzero(liver)
    prompts = {"box": {"box": np.array([xs.min(), ys.min(), xs.max(), ys.max()], dtype=np.float64)},
               "click": {"points": np.array([[np.median(xs), np.median(ys)]]), "labels": np.array([1])}}
    for predictor in (reference, candidate):
        predictor.set_image(image)
    pairs = [(name, reference.predict(**prompt), candidate.predict(**prompt)) for name, prompt in prompts.items()]
    if reference.uses_adapter and reference.model.uses_experts:
        pairs.append(("prompt-free", reference.predict_auto(), candidate.predict_auto()))
    compared = [_compare(*pair) for pair in pairs]
    return [line for line, _ in compared], min(dice for _, dice in compared)


def _compare(name: str, expected, actual) -> tuple[str, float]:
    import numpy as np

    a, b = np.asarray(expected.masks, bool), np.asarray(actual.masks, bool)
    total = int(a.sum()) + int(b.sum())
    dice = 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total
    difference = float(np.abs(expected.low_res_logits - actual.low_res_logits).max())
    return f"check {name}: mask Dice vs PyTorch {dice:.4f}, largest logit difference {difference:.2e}", dice
