"""`segmote train CONFIG`: train a SegMoTE adapter (CPU, one GPU, or torchrun for several)."""

from __future__ import annotations

HELP = "train a SegMoTE adapter from a JSON configuration"


def configure(parser) -> None:
    parser.add_argument("config", help="JSON training configuration (see configs/)")
    parser.add_argument("-o", "--out", help="output folder (overrides out_dir)")
    parser.add_argument("--steps", type=int, help="number of steps (overrides the configuration)")
    parser.add_argument("--no-resume", action="store_true", help="start afresh even if a checkpoint exists")


def run(args) -> int:
    from ..training.config import TrainConfig
    from ..training.trainer import Trainer

    config = TrainConfig.from_file(args.config)
    if args.out:
        config.out_dir = args.out
    if args.steps:
        config.steps = args.steps
    summary = Trainer(config).run(resume=not args.no_resume)
    print(f"trained {summary['steps']} steps on {summary['device']} ×{summary['world_size']}: "
          f"{summary['samples_per_second']:.1f} samples/s; adapter written to {config.out_dir}/adapter.pt")
    return 0
