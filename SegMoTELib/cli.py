"""`segmote` command line: one sub-command per module in `SegMoTELib.commands`.

Each command module defines `HELP` (one line), `configure(parser)` and `run(args) -> int`; every
command that writes files takes its output as `-o/--out` (`segment`: also `--output`). User
mistakes (`SegMoTEError`) print one clear line and exit with status 2, never a traceback; so do
failures of the environment (`OSError`: a full disk, a permission) that no command turned into one.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import SegMoTEError, one_line
from .io.outputs import describe_os_error

COMMANDS = ("info", "segment", "batch", "demo", "curate", "train", "evaluate", "evaluate-3d", "bench", "serve",
            "export-cpu")


def _available_commands():
    for name in COMMANDS:
        module = f"SegMoTELib.commands.{name.replace('-', '')}"  # evaluate-3d -> commands/evaluate3d.py
        spec = importlib.util.find_spec(module)
        if spec is not None:
            yield name, importlib.import_module(module)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="segmote", description="SegMoTE medical image segmentation")
    parser.add_argument("--version", action="version", version=f"segmote {__version__}")
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
        print(f"segmote {args.command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the environment (disk full, permissions) rather than a bug: one line too
        print(f"segmote {args.command}: error: {one_line(describe_os_error(error))}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"segmote {args.command}: error: not enough memory for this input", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"segmote {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
