"""`segmote serve`: the engine as an HTTP service (FastAPI + uvicorn) for Slicer and the CLI.

Contract (scripts rely on it): the token comes from the SEGMOTE_TOKEN environment variable or
`--token-file F`, never from the command line (other users can read a process's arguments);
`listening on http://H:P` is printed once the server accepts requests (with `--port 0`, P is the
port the system picked), after a banner on stderr (model, adapter, device, data roots, limits);
then one access line per request on stderr (`--no-access-log` turns it off). It binds to 127.0.0.1
unless told otherwise; for a remote server put a TLS reverse proxy in front (docs/SERVICE.md).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import threading
import time
from pathlib import Path

from ..errors import InputError
from .model_options import add_model_arguments, adapter_choice, predictor_from_args

HELP = "run the engine as an HTTP service (FastAPI) for Slicer, the CLI (--server) and remote clients"
TOKEN_ENV = "SEGMOTE_TOKEN"
MIB = 1024 * 1024


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    # No abbreviations: "--token SECRET" must be refused, not read as "--token-file SECRET".
    parser.allow_abbrev = False
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free port, printed)")
    parser.add_argument("--token-file", default=None,
                        help=f"file holding the bearer token (default: the {TOKEN_ENV} environment variable)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started this one ends (POSIX)")
    parser.add_argument("--exit-on-stdin-close", action="store_true",
                        help="stop within seconds once standard input reaches end of file (Slicer's local engine: "
                             "it keeps the pipe open, and the system closes it however Slicer ends)")
    parser.add_argument("--no-access-log", action="store_true", help="no line per request on stderr")
    parser.add_argument("--data-root", action="append", default=[], metavar="DIR",
                        help="a folder whose volumes clients may open by path (repeatable; default: none)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-upload-mb", type=_positive_number, default=1024,
                        help="voxels uploaded to one session, compressed (1024)")
    limits.add_argument("--max-voxels", type=_positive_number, default=512 * 512 * 1024,
                        help="voxels of one volume (268435456)")
    limits.add_argument("--no-size-limits", action="store_true",
                        help="no --max-upload-mb and no --max-voxels: a local engine for one user (Slicer's)")
    limits.add_argument("--max-request-kb", type=_positive_number, default=1024,
                        help="a request body other than a voxel upload (1024)")
    limits.add_argument("--max-points", type=int, default=128, help="prompt points of one request (128)")
    limits.add_argument("--request-budget", type=_positive_number, default=300.0,
                        help="seconds one request may take, waiting for the device included; a propagation "
                             "stops at its next slice past it (300)")
    limits.add_argument("--max-sessions", type=int, default=16, help="open sessions at once (16)")
    limits.add_argument("--idle-timeout", type=_positive_number, default=1800.0,
                        help="seconds before an untouched session is closed (1800)")
    limits.add_argument("--cache-mb", type=_positive_number, default=2048,
                        help="embedding cache of all sessions together, LRU (2048)")
    model = parser.add_argument_group("model")
    add_model_arguments(model)


def read_token(token_file: str | None) -> str:
    """The token from --token-file or SEGMOTE_TOKEN; an InputError naming what to do otherwise."""
    from ..service.tokens import token_problem

    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise InputError(f"--token-file: cannot read {path} ({error.strerror})") from None
        if os.name == "posix" and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            print(f"segmote serve: warning: {path} is readable by other users; chmod 600 it", file=sys.stderr)
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not token:
            raise InputError(f"token: set the {TOKEN_ENV} environment variable or give --token-file F "
                             f"(e.g. python -c \"import secrets; print(secrets.token_urlsafe(32))\" > F)")
    problem = token_problem(token)
    if problem:  # refused here, so no server waits for a token its clients can never send
        raise InputError(f"token: {problem}; e.g. python -c \"import secrets; print(secrets.token_urlsafe(32))\"")
    return token


def run(args) -> int:
    from ..service.lifetime import LifetimeWatch
    from ..service.limits import ServiceLimits

    watch = LifetimeWatch()  # first of all: a starter that ends while the model loads is noticed too
    if args.exit_on_stdin_close:
        watch.watch_stdin()
    if args.exit_with_parent:
        watch.watch_parent()
    token = read_token(args.token_file)
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port: expected 0..65535, got {args.port}")
    roots = [Path(root) for root in args.data_root]
    for root in roots:
        if not root.is_dir():
            raise InputError(f"--data-root: {root} is not a folder")
    unlimited = args.no_size_limits
    limits = ServiceLimits(max_upload_bytes=None if unlimited else int(args.max_upload_mb * MIB),
                           max_voxels=None if unlimited else int(args.max_voxels),
                           max_sessions=args.max_sessions, idle_seconds=args.idle_timeout,
                           embedding_cache_bytes=int(args.cache_mb * MIB),
                           max_request_bytes=int(args.max_request_kb * 1024), max_points=args.max_points,
                           request_seconds=args.request_budget)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"segmote serve: note: listening on {args.host} without TLS; put a TLS reverse proxy in front "
              f"(docs/SERVICE.md) before exposing it to a network", file=sys.stderr)
    _check_address(args.host, args.port)  # before the model loads: a taken port fails at once
    predictor = predictor_from_args(args, cache_size=64)
    if predictor.notice:
        print(f"note: {predictor.notice}", file=sys.stderr)
    description = engine_description(predictor, args)
    print(banner(description, roots, limits), file=sys.stderr, flush=True)
    app = build_app(predictor, limits, token, roots, description, access_log=not args.no_access_log)
    serve(app, args.host, args.port, watch=watch)
    return 0


def banner(description: dict, roots, limits) -> str:
    """What this server is, in a few lines: model, adapter, device, data roots, limits."""
    def cap(value, unit=""):
        return "none" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    lines = [f"segmote serve {description['segmote']}: model {description['backbone']}, adapter {description['adapter']}"
             f"{'' if description['uses_adapter'] else ' (base decoder)'}, device {description['device']}"
             f"{', fast' if description['fast'] else ''} (torch {description['torch']})",
             f"  data roots: {', '.join(str(Path(root).resolve()) for root in roots) or 'none (uploads only)'}",
             f"  limits: upload {cap(None if limits.max_upload_bytes is None else limits.max_upload_bytes // MIB, ' MiB')}, "
             f"volume {cap(limits.max_voxels, ' voxels')}, {limits.max_sessions} sessions, "
             f"idle {limits.idle_seconds:g} s, embedding cache {limits.embedding_cache_bytes // MIB} MiB, "
             f"request body {limits.max_request_bytes // 1024} KiB, {limits.max_points} points, "
             f"budget {limits.request_seconds:g} s per request"]
    if description.get("notice"):
        lines.append(f"  note: {description['notice']}")
    return "\n".join(lines)


def _check_address(host: str, port: int) -> None:
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InputError(f"--host: {host!r} is not an address of this machine") from None
    family, kind, protocol, _name, address = infos[0]
    with socket.socket(family, kind, protocol) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            raise InputError(f"--host/--port: cannot listen on {host}:{port} ({error.strerror})") from None


def engine_description(predictor, args) -> dict:
    from importlib import metadata

    import torch

    from .. import __version__

    return {"segmote": __version__, "torch": torch.__version__, "fastapi": metadata.version("fastapi"),
            "device": str(predictor.device), "backbone": predictor.backbone_name,
            "adapter": "none" if adapter_choice(args) is None else str(args.adapter),
            "uses_adapter": bool(predictor.uses_adapter), "fast": bool(args.fast),
            "precision": predictor.precision, "runtime": predictor.runtime_name,
            "runtime_detail": predictor.runtime_description, "notice": predictor.notice,
            "walk": _walk_description(predictor)}


def _walk_description(predictor) -> dict:
    """How this engine's walks decide where a structure ends (the learned head and its thresholds, or
    the hand rules)."""
    from ..walk_rules import adapter_metadata, has_presence_head

    walk = adapter_metadata(predictor).get("walk", {})
    return {"decision": "learned" if has_presence_head(predictor) else "rules",
            "presence_thresholds": walk.get("presence_thresholds"),
            "presence_thresholds_box": walk.get("presence_thresholds_box")}


def build_app(predictor, limits, token: str, data_roots, description: dict, access_log: bool = True):
    from ..service.app import create_app
    from ..service.host import EngineHost
    from ..service.store import SessionStore

    store = SessionStore(EngineHost(predictor, limits.embedding_cache_bytes), limits, data_roots)
    return create_app(store, token, description, access_log=access_log)


def serve(app, host: str, port: int, watch=None) -> None:
    """Run uvicorn; print `listening on http://H:P` once the socket accepts connections. `watch`:
    the LifetimeWatch that stops this server when its starter goes away."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2))
    if watch is not None:
        watch.serving(server)

    def announce():
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.01)
        bound = server.servers[0].sockets[0].getsockname()
        shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        print(f"listening on http://{shown}:{bound[1]}", flush=True)

    threading.Thread(target=announce, name="segmote announce", daemon=True).start()
    try:
        server.run()
    except SystemExit:  # uvicorn exits when it cannot bind; say why in one line
        pass
    if not server.started:
        raise InputError(f"--host/--port: could not listen on {host}:{port} (in use, or not an address of this machine)")
