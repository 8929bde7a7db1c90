#!/usr/bin/env bash
# The walk head's refit and per-family calibration for an adapter already trained (the last step of
# scripts/gpu_train.sh, on its own: for a candidate whose training call ended before it), on a GPU
# machine. Expects .whl/, .devdata/site/, .devdata/lite_medsam_fp16.pth.xz and .devdata/walks (as
# gpu_train.sh). Environment: ADAPTER (the adapter file), WALK_STUDIES (default 80), WALK_SECONDS
# (recording time, default 150). Writes $OUT/adapter_walk_fp16.pt and the calibration's log.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site_head .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site_head:$PWD/.devdata/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
xz -dc .devdata/lite_medsam_fp16.pth.xz > /tmp/lite_medsam_head.pth
python3 -m SegMoTELib.training.walk_head --adapter "$ADAPTER" --walks .devdata/walks --out /tmp/adapter_walk.pt \
    --checkpoint /tmp/lite_medsam_head.pth --device cuda --max-studies "${WALK_STUDIES:-80}" \
    --max-seconds "${WALK_SECONDS:-150}" --box-walks 2>&1 | grep -v FutureWarning | tail -n 60 | tee "$OUT/walk_head.txt"
python3 - "$OUT" <<'PY'
import sys
from SegMoTELib.modeling.adapter_io import read_adapter, save_adapter
payload = read_adapter("/tmp/adapter_walk.pt")
save_adapter(f"{sys.argv[1]}/adapter_walk_fp16.pt", payload["adapter"], payload["config"], payload["backbone"],
             decoder_state=payload["decoder"], metadata=payload["metadata"], half=True)
PY
ls -la "$OUT"
