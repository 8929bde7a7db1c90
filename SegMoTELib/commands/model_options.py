"""The model options shared by the commands that segment (segment, serve, batch, demo, evaluate,
evaluate-3d): the arguments, their checks before any long work, and the `ModelSpec` they make."""

from __future__ import annotations


def add_model_arguments(parser) -> None:
    """--backbone, --checkpoint, --adapter, --device on a parser or argument group."""
    parser.add_argument("--backbone", default="litemedsam", help="backbone name (default: litemedsam)")
    parser.add_argument("--checkpoint", default=None, help="backbone checkpoint file (SAM/MedSAM backbones)")
    parser.add_argument("--adapter", default="default",
                        help="adapter file, 'default' (the shipped one, if any) or 'none' (base decoder)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--fast", action="store_true",
                        help="the speed options for the device: faster equivalent modules; on CUDA also an fp16 "
                             "encoder and CUDA graphs (masks within Dice 0.99 of the default; BENCHMARKS.md)")
    add_runtime_argument(parser)


def add_runtime_argument(parser) -> None:
    from ..cpu_runtime import RUNTIMES

    parser.add_argument("--runtime", default="auto", type=str.lower, choices=RUNTIMES,
                        help="what runs the model: 'onnx' (ONNX Runtime, the optimized CPU runtime; exported once "
                             "into a user cache), 'torch' (PyTorch, any device) or 'auto' (default: onnx on a CPU "
                             "device when installed, else torch)")


def adapter_choice(args):
    """The predictor's `adapter` argument for --adapter: None for 'none', else the value."""
    return model_spec(args).adapter_choice


def model_spec(args, modality: str | None = None):
    """The `ModelSpec` of the parsed model options."""
    from ..model_spec import ModelSpec

    return ModelSpec(backbone=args.backbone, checkpoint=args.checkpoint, adapter=args.adapter, device=args.device,
                     fast=bool(getattr(args, "fast", False)), runtime=getattr(args, "runtime", "auto"),
                     modality=modality)


def check_model_arguments(args) -> None:
    """What can be checked about the model without loading it (the manifest, the backbone name,
    the checkpoint file, the adapter file's header, the device name): called before any long work
    starts, e.g. before a volume is read."""
    from ..backbones import backbone_spec
    from ..backbones.checkpoints import verify_checkpoint
    from ..device import DEVICE_CHOICES
    from ..errors import InputError

    backbone_spec(args.backbone)
    if args.checkpoint:
        verify_checkpoint(args.checkpoint, None, f"{args.backbone} checkpoint", argument="--checkpoint")
    adapter = adapter_choice(args)
    if adapter is not None and str(adapter) != "default":
        from ..modeling.adapter_io import read_adapter

        verify_checkpoint(adapter, None, "adapter", argument="--adapter")
        read_adapter(adapter, expected_backbone=args.backbone)  # a few MB: corrupt or foreign files fail now
    if str(args.device).lower().split(":")[0] not in DEVICE_CHOICES:
        raise InputError(f"--device: unknown device {args.device!r}; expected one of {', '.join(DEVICE_CHOICES)}")
    check_runtime_argument(args)


def check_runtime_argument(args) -> None:
    """--runtime onnx with a GPU device or another backbone fails now, before any long work."""
    from ..cpu_runtime import choose_runtime
    from ..device import select_device
    from ..errors import InputError

    runtime = getattr(args, "runtime", "auto")
    if runtime == "onnx":
        device = select_device(args.device)
        try:
            choose_runtime(runtime, device, args.backbone)
        except InputError as error:
            raise InputError(f"--runtime: {str(error).removeprefix('runtime: ')}") from None


def predictor_from_args(args, cache_size: int = 8):
    return model_spec(args).build_predictor(cache_size=cache_size)
