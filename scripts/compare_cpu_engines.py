"""Choosing the CPU runtime: ONNX Runtime against OpenVINO on the same exported graphs, and int8
quantization of the encoder (BENCHMARKS.md, "Choosing the CPU runtime").

Times, in turns on the same inputs (median wall and process CPU time of each call):
  * the encoder graph in ONNX Runtime and in OpenVINO (fp32), and in ONNX Runtime after int8
    quantization: dynamic (MatMul weights) and static QDQ (Conv + MatMul, MinMax calibration on
    `--calibration` slices drawn from train_pool), with the embedding's relative error;
  * the SAM and SegMoTE decoder graphs in both (OpenVINO with the point count fixed: its CPU plugin
    does not compile these graphs with a dynamic one, which the script reports).

    PYTHONPATH=. .venv/bin/python scripts/compare_cpu_engines.py --threads 2 [--train-pool ../shared/data/train_pool]

Needs onnxruntime and openvino (`pip install openvino`); the graphs come from the user cache (the
predictor exports them on first use).
"""

from __future__ import annotations

import argparse
import glob
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(calls: dict, repeats: int) -> dict:
    for call in calls.values():
        call()
    wall = {name: [] for name in calls}
    cpu = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            call()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in calls}


def _ort(path: Path, threads: int):
    import onnxruntime as ort

    from SegMoTELib.cpu_runtime.onnx_model import session_options

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def _openvino(path: Path, threads: int, shapes: dict | None = None):
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if shapes:
        model.reshape(shapes)
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                 "INFERENCE_PRECISION_HINT": "f32"})
    return compiled.create_infer_request()


def _calibration_inputs(train_pool: str, count: int, seed: int = 0) -> list[np.ndarray]:
    import torch
    from PIL import Image

    from SegMoTELib.backbones import load_backbone
    from SegMoTELib.preprocessing import as_model_uint8, to_model_input

    files = sorted(glob.glob(f"{train_pool}/*/images/*.png"))
    random.Random(seed).shuffle(files)
    backbone = load_backbone("litemedsam")
    return [to_model_input(as_model_uint8(np.array(Image.open(f))), backbone, torch.device("cpu"))[0].numpy()
            for f in files[:count]]


def _quantized_encoders(encoder: Path, calibration: list[np.ndarray], folder: Path) -> dict[str, Path]:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = folder / "encoder_prepared.onnx"
    quant_pre_process(str(encoder), str(prepared))

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            item = next(self.items, None)
            return None if item is None else {"images": item}

    paths = {"int8 dynamic (MatMul)": folder / "encoder_dynamic.onnx", "int8 static QDQ": folder / "encoder_static.onnx"}
    quantize_dynamic(str(prepared), str(paths["int8 dynamic (MatMul)"]), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])
    quantize_static(str(prepared), str(paths["int8 static QDQ"]), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv", "MatMul"])
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--train-pool", default="../shared/data/train_pool")
    parser.add_argument("--calibration", type=int, default=16, help="calibration slices for static int8 (0: skip int8)")
    args = parser.parse_args(argv)
    import torch

    from SegMoTELib.predictor import SegMoTEPredictor

    torch.set_num_threads(args.threads)
    predictor = SegMoTEPredictor(device="cpu", runtime="onnx")
    if predictor.onnx is None:
        print(predictor.notice, file=sys.stderr)
        return 2
    folder = predictor.onnx.folder
    print(f"graphs: {folder}; {args.threads} threads; {args.repeats} repeats; median wall / CPU time per call\n")
    rng = np.random.default_rng(0)
    images = rng.random((1, 3, 256, 256), dtype=np.float32)
    ort_encoder, ov_encoder = _ort(folder / "encoder.onnx", args.threads), _openvino(folder / "encoder.onnx", args.threads)
    reference = ort_encoder.run(None, {"images": images})
    calls = {"encoder, ONNX Runtime fp32": lambda: ort_encoder.run(None, {"images": images}),
             "encoder, OpenVINO fp32": lambda: ov_encoder.infer({0: images})}
    errors = {"encoder, OpenVINO fp32": np.abs(ov_encoder.infer({0: images})[0] - reference[0]).mean()}
    if args.calibration:
        calibration = _calibration_inputs(args.train_pool, args.calibration)
        test = calibration[0]  # the relative error is measured on a real slice
        reference_real = ort_encoder.run(None, {"images": test})[0]
        with tempfile.TemporaryDirectory() as scratch:
            for name, path in _quantized_encoders(folder / "encoder.onnx", calibration[1:], Path(scratch)).items():
                session = _ort(path, args.threads)
                calls[f"encoder, ONNX Runtime {name}"] = lambda session=session: session.run(None, {"images": images})
                errors[f"encoder, ONNX Runtime {name}"] = (np.abs(session.run(None, {"images": test})[0] - reference_real).mean()
                                                           / np.abs(reference_real).mean())
            results = _timed(calls, args.repeats)
    else:
        results = _timed(calls, args.repeats)
    for name, (wall, cpu) in results.items():
        error = f"; embedding difference {errors[name]:.3g}" if name in errors else ""
        print(f"{name}: {wall * 1e3:.0f} / {cpu * 1e3:.0f} ms{error}")

    real = calibration[0] if args.calibration else images  # the decoders read a real slice's embedding
    embedding, terms = ort_encoder.run(None, {"images": real})
    prompt = {"coords": np.array([[[100.0, 120.0], [0.0, 0.0]]], np.float32), "labels": np.array([[1.0, -1.0]], np.float32),
              "mask_input": np.zeros((1, 1, 256, 256), np.float32), "has_mask_input": np.zeros(1, np.float32)}
    print()
    for graph in ("base", "segmote"):
        feeds = {"embedding": embedding, **({"image_terms": terms} if graph == "segmote" else {}), **prompt}
        session = _ort(folder / f"{graph}.onnx", args.threads)
        calls = {f"{graph} decoder, ONNX Runtime (any point count)": lambda s=session, f=feeds: s.run(None, f)}
        try:
            _openvino(folder / f"{graph}.onnx", args.threads)
            print(f"{graph} decoder, OpenVINO: compiled with a dynamic point count")
        except RuntimeError as error:
            print(f"{graph} decoder, OpenVINO with a dynamic point count: does not compile "
                  f"({str(error).strip().splitlines()[-1][:120]})")
        fixed = _openvino(folder / f"{graph}.onnx", args.threads,
                          {"coords": [1, 2, 2], "labels": [1, 2], "mask_input": [1, 1, 256, 256]})
        calls[f"{graph} decoder, OpenVINO (2 points, fixed)"] = lambda r=fixed, f=feeds: r.infer(f)
        with tempfile.TemporaryDirectory() as scratch:  # int8 weights of the decoder's matrix products
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantized = Path(scratch) / f"{graph}_int8.onnx"
            quantize_dynamic(str(folder / f"{graph}.onnx"), str(quantized), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul", "Gemm"])
            try:
                int8 = _ort(quantized, args.threads)
                logits, reference_logits = int8.run(None, feeds)[0], session.run(None, feeds)[0]
            except Exception as error:  # noqa: BLE001 — ONNX Runtime refuses some quantized products: say so
                print(f"{graph} decoder int8 dynamic: does not run ({str(error).strip().splitlines()[-1][-120:]})")
            else:
                calls[f"{graph} decoder, ONNX Runtime int8 dynamic"] = lambda s=int8, f=feeds: s.run(None, f)
                print(f"{graph} decoder int8: largest logit difference {np.abs(logits - reference_logits).max():.3g}, "
                      f"mask pixels changed {np.mean((logits > 0) != (reference_logits > 0)) * 100:.2f} %")
            for name, (wall, cpu) in _timed(calls, args.repeats * 4).items():
                print(f"{name}: {wall * 1e3:.1f} / {cpu * 1e3:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
