"""`segmote` command line: one sub-command per module in `SegMoTELib.commands`.

Each command module defines `HELP` (one line), `configure(parser)` and `run(args) -> int`; every
command that writes files takes its output as `-o/--out` (`segment`: also `--output`). User
mistakes (`SegMoTEError`) print one clear line and exit with status 2, never a traceback; so do
failures of the environment (`OSError`: a full disk, a permission) that no command turned into one.
"""

from __future__ import annotations

import argparse
import importlib
import re
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


# a comma-separated list of numbers (a stroke's vertices, e.g. --ras-scribble -40,12,-310,...)
_NUMBER_LIST = re.compile(r"^-[\d.]+(?:[eE][-+]?\d+)?(?:,\s*-?[\d.]+(?:[eE][-+]?\d+)?)+$")


def attach_number_lists(argv: list[str]) -> list[str]:
    """`--option -40,12,...` → `--option=-40,12,...`: argparse would take a value that starts with
    a minus sign and is not a plain number for an option of its own."""
    joined: list[str] = []
    for token in argv:
        if joined and joined[-1].startswith("--") and "=" not in joined[-1] and _NUMBER_LIST.match(token):
            joined[-1] = f"{joined[-1]}={token}"
        else:
            joined.append(token)
    return joined


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(attach_number_lists(list(sys.argv[1:] if argv is None else argv)))
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
