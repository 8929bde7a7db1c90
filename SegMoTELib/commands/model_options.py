"""The model options shared by the commands that segment (segment, demo, evaluate)."""

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


def adapter_choice(args):
    """The predictor's `adapter` argument for --adapter: None for 'none', else the value."""
    return None if str(args.adapter).lower() == "none" else args.adapter


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


def predictor_from_args(args, cache_size: int = 8):
    from ..modeling.speed import fast_options
    from ..predictor import SegMoTEPredictor

    speed = fast_options(args.device) if args.fast else {}
    return SegMoTEPredictor(backbone=args.backbone, checkpoint=args.checkpoint, adapter=adapter_choice(args),
                            device=args.device, cache_size=cache_size, **speed)
