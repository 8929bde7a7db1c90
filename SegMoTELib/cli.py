"""`segmote` command line: one sub-command per module in `SegMoTELib.commands`.

Each command module defines `HELP` (one line), `configure(parser)` and `run(args) -> int`. User
mistakes (`SegMoTEError`) print one clear line and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SegMoTEError

COMMANDS = ("info", "segment", "demo", "curate", "train", "evaluate", "evaluate-3d", "bench")


def _available_commands():
    for name in COMMANDS:
        module = f"SegMoTELib.commands.{name.replace('-', '')}"  # evaluate-3d -> commands/evaluate3d.py
        spec = importlib.util.find_spec(module)
        if spec is not None:
            yield name, importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="segmote", description="SegMoTE medical image segmentation")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in _available_commands():
        command_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SegMoTEError as error:
        print(f"segmote {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"segmote {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
