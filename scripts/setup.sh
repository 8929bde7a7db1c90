#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with SegMoTELib installed (editable) and its
# test tools. A second run with nothing changed returns in about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.segmote-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch: where this machine's pip is capped at a locally stored release (see /etc/xdg/pip), take
# exactly that one so no multi-GB download happens; elsewhere the range in pyproject.toml applies.
if [ -f /etc/xdg/pip/constraints.txt ] && grep -q '^torch<=2.14.1' /etc/xdg/pip/constraints.txt; then
    .venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "$want" > "$stamp"
