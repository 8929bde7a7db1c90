"""The options of the commands that can run on Ray (curate, batch): where Ray is, and their checks."""

from __future__ import annotations

import argparse

from ..errors import InputError


def whole_number(text: str) -> int:
    """argparse type: an int, or a one-line usage error naming the text."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def add_ray_arguments(group) -> None:
    group.add_argument("--address", default=None,
                       help="with --engine ray: join this running Ray cluster (HOST:6379, ray://HOST:10001 or auto); "
                            "default: start a local Ray for this run")
    group.add_argument("--num-cpus", type=whole_number, default=None,
                       help="with --engine ray and no --address: CPUs of the local Ray (default 2)")


def check_ray_arguments(args) -> None:
    """Before any work: the Ray options only with --engine ray, and a cluster's CPUs are its own."""
    if args.engine != "ray" and (args.address or args.num_cpus):
        raise InputError("--address/--num-cpus: only with --engine ray")
    if args.address and args.num_cpus:
        raise InputError("--num-cpus: a joined cluster (--address) brings its own CPUs; give one or the other")
