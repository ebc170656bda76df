"""Instruction-data selection: which 5% of an Alpaca pool trains the SmolLM2-135M LoRA student best?

Pool: a seeded sample of Stanford Alpaca 52K (../shared/datasets/stanford_alpaca_52k); 500 other
Alpaca rows are held out. The untrained student scores the (scored part of the) pool without any
teacher call (engine/students/causal.py): IFD, its own greedy draft's token entropy, and instruction
embeddings. Each strategy picks `--fraction` of the scored pool; a fresh LoRA student trains on the
pick with the same step budget; then:
- eval NLL: mean response-token NLL of the reference answers of Self-Instruct's 252 user-oriented
  tasks (self_instruct_user_oriented) and of the held-out Alpaca rows (subsets, see --eval-*);
- judge win rate against the random subset of the same seed: the base SmolLM2 compares two answers
  to a Self-Instruct task through P("A") vs P("B") as its whole answer, both orders averaged to cancel
  position bias. Its agreement with the references (how often it prefers the reference answer over the
  random-subset student's answer) says how far to trust it.
"all" trains on the whole scored pool with the same step budget (more diverse data, same compute).

    nice -n 10 python bench/instruction_selection.py [--pool 10000 --scored 1000 --steps 30 --seeds 0 1 2]

Every condition is written to the JSON as it finishes; --resume skips those already there.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from _checkout import REPO  # noqa: E402  (this checkout's quarry_al, not an installed one)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from quarry_al.engine.config import StudentConfig  # noqa: E402
from quarry_al.engine.instructions import InstructionRecord, read_instruction_records  # noqa: E402
from quarry_al.engine.students.causal import CausalStudent, GenerationScores, user_turn  # noqa: E402
from quarry_al.strategies import SelectionState, make_strategy  # noqa: E402
from quarry_al.strategies.ifd import misaligned  # noqa: E402

DATA = REPO.parent / "shared" / "datasets"
RESULTS = REPO / "bench" / "results"
SUMMARY = REPO / "bench" / "results_summary" / "instruction_selection.md"
STRATEGIES = {  # display name -> (registry name, params)
    "random": ("random", {}),
    "ifd": ("ifd", {"exclude_flagged": True}),
    "superfilter": ("superfilter", {"fraction": 0.2, "exclude_flagged": True}),
    "token_entropy": ("token_entropy", {}),
    "kmeans": ("kmeans", {}),
}
JUDGE_PROMPT = ("Which response follows the instruction better? Answer with A or B.\n\n"
                "Instruction: {instruction}\n\nResponse A: {a}\n\nResponse B: {b}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pool", type=int, default=10000, help="seeded Alpaca pool")
    parser.add_argument("--scored", type=int, default=10000, help="pool items scored and selected from (first of the shuffled pool)")
    parser.add_argument("--fraction", type=float, default=0.05)
    parser.add_argument("--heldout", type=int, default=500, help="Alpaca rows held out of the pool")
    parser.add_argument("--eval-refs", type=int, default=252, help="Self-Instruct references evaluated (seeded subset)")
    parser.add_argument("--eval-heldout", type=int, default=500, help="held-out Alpaca rows evaluated (seeded subset)")
    parser.add_argument("--judge-n", type=int, default=252, help="Self-Instruct tasks the judge compares answers on")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--all-seeds", type=int, nargs="*", default=None, help="seeds of the all-pool condition (default: --seeds)")
    parser.add_argument("--steps", type=int, default=150, help="training steps of every condition")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="drafts for token entropy and the judged answers")
    parser.add_argument("--score-batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 was 4x faster than 2 on the shared 2 cores)")
    parser.add_argument("--throughput-n", type=int, default=64, help="pairs timed for IFD throughput at 1 and 2 threads")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "instruction_selection.json"))
    parser.add_argument("--summary", default=str(SUMMARY), help="the markdown summary")
    parser.add_argument("--resume", action="store_true")
    return parser.parse_args()


def sample(records: list, n: int, seed: int) -> list:
    order = np.random.default_rng(seed).permutation(len(records))[:n]
    return [records[i] for i in sorted(order)]


def load_data(args: argparse.Namespace) -> dict[str, list[InstructionRecord]]:
    skipped: list[str] = []  # 28 Alpaca rows have an empty output
    alpaca = read_instruction_records(str(DATA / "stanford_alpaca_52k" / "train.jsonl"), require_output=True,
                                      on_bad_row="skip", skipped=skipped)
    print(f"Alpaca: {len(alpaca)} rows with an output, {len(skipped)} without (skipped)", flush=True)
    order = np.random.default_rng(args.data_seed).permutation(len(alpaca))
    pool = [alpaca[i] for i in order[:args.pool]]
    heldout = [alpaca[i] for i in order[args.pool:args.pool + args.heldout]]
    refs = read_instruction_records(str(DATA / "self_instruct_user_oriented" / "train.jsonl"), require_output=True)
    return {"pool": pool, "scored": pool[:args.scored], "heldout": sample(heldout, args.eval_heldout, args.data_seed),
            "refs": sample(refs, args.eval_refs, args.data_seed), "judge": sample(refs, args.judge_n, args.data_seed + 1)}


def ifd_throughput(student: CausalStudent, pairs: list, threads: list[int]) -> dict[str, float]:
    """Pairs per second of IFD scoring (conditional and unconditional passes) at each thread count."""
    rates, before = {}, torch.get_num_threads()
    student.ifd(pairs[:2])  # warm-up
    for count in threads:
        torch.set_num_threads(count)
        clock = Clock()
        student.ifd(pairs)
        clock.lap("ifd")
        rates[f"{count}_threads"] = round(len(pairs) / clock.times["ifd_s"], 3)
        rates[f"{count}_threads_per_cpu_s"] = round(len(pairs) / clock.times["ifd_cpu_s"], 3)
    torch.set_num_threads(before)
    return rates


def judge_preference(judge: CausalStudent, tasks: list, first: list[str], second: list[str]) -> np.ndarray:
    """(n,) the judge's P(first answer is better), averaged over both orders (A/B swapped)."""
    def prompts(a: list[str], b: list[str]) -> list[str]:
        return [JUDGE_PROMPT.format(instruction=user_turn(t), a=x or "(no answer)", b=y or "(no answer)")
                for t, x, y in zip(tasks, a, b)]
    as_a = judge.label_probs(prompts(first, second), ["A", "B"], "{text}")[:, 0]
    as_b = judge.label_probs(prompts(second, first), ["A", "B"], "{text}")[:, 1]
    return (as_a + as_b) / 2


class Clock:
    """Wall and CPU seconds of each phase: on a shared machine only CPU seconds say what a step costs."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, name: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.times[f"{name}_s"], self.times[f"{name}_cpu_s"] = round(wall - self._wall, 1), round(cpu - self._cpu, 1)
        self._wall, self._cpu = wall, cpu


def run_condition(learner: CausalStudent, train: list, seed: int, data: dict) -> dict:
    clock = Clock()
    stats = learner.fit(train, seed=seed, progress=True)
    clock.lap("train")
    refs_nll, heldout_nll = learner.response_nll(data["refs"]), learner.response_nll(data["heldout"])
    clock.lap("eval")
    answers = learner.drafts(data["judge"])[3]
    clock.lap("answer")
    return {"train_pairs": len(train), "steps": stats.steps, "final_loss": stats.final_loss,
            "eval_nll_refs": float(np.mean(refs_nll)), "eval_nll_heldout": float(np.mean(heldout_nll)),
            "answers": answers, **clock.times}


def subset_stats(learner: CausalStudent, scores, rows: np.ndarray, pairs: list) -> dict:
    return {"mean_ifd": float(np.nanmean(scores.ifd[rows])), "flagged": int(misaligned(scores.ifd)[rows].sum()),
            "mean_token_entropy": float(np.nanmean(scores.token_entropy[rows])),
            "mean_response_tokens": float(np.mean([len(learner.encode(pairs[i])[1]) for i in rows]))}


def summarise(results: dict, args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in [*STRATEGIES, "all"]:
        runs = [results["conditions"][key] for key in results["conditions"] if key.split("/")[1] == name]
        if not runs:
            continue
        wins = [r["judge_vs_random"] for r in runs if "judge_vs_random" in r]
        rows.append({
            "condition": name, "seeds": len(runs), "train_pairs": runs[0]["train_pairs"],
            "eval_nll_refs": float(np.mean([r["eval_nll_refs"] for r in runs])),
            "eval_nll_refs_sd": float(np.std([r["eval_nll_refs"] for r in runs])),
            "eval_nll_heldout": float(np.mean([r["eval_nll_heldout"] for r in runs])),
            "eval_nll_heldout_sd": float(np.std([r["eval_nll_heldout"] for r in runs])),
            "win_rate_vs_random": float(np.mean([w["win_rate"] for w in wins])) if wins else None,
            "mean_preference_vs_random": float(np.mean([w["mean_preference"] for w in wins])) if wins else None,
            "mean_ifd": runs[0].get("subset", {}).get("mean_ifd"),
            "mean_response_tokens": runs[0].get("subset", {}).get("mean_response_tokens")})
    return rows


def table(rows: list[dict], base: dict) -> list[str]:
    def fmt(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"
    lines = ["| condition | seeds | train pairs | eval NLL, Self-Instruct refs | eval NLL, held-out Alpaca | "
             "judge win rate vs random | mean P(better) vs random | subset mean IFD | subset mean response tokens |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| base model (untrained) | - | 0 | {fmt(base['eval_nll_refs'])} | {fmt(base['eval_nll_heldout'])} | - | - | - | - |"]
    for r in rows:
        lines.append(f"| {r['condition']} | {r['seeds']} | {r['train_pairs']} | {fmt(r['eval_nll_refs'])} ± "
                     f"{fmt(r['eval_nll_refs_sd'])} | {fmt(r['eval_nll_heldout'])} ± {fmt(r['eval_nll_heldout_sd'])} | "
                     f"{fmt(r['win_rate_vs_random'])} | {fmt(r['mean_preference_vs_random'])} | {fmt(r['mean_ifd'])} | "
                     f"{fmt(r['mean_response_tokens'], 1)} |")
    return lines


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "summary", "resume")}
    results = json.loads(out.read_text()) if args.resume and out.is_file() else {}
    if results.get("settings") != settings:
        results = {"settings": settings, "conditions": {}, "timings": {}}
    save = lambda: out.write_text(json.dumps(results, indent=1))  # noqa: E731
    started = Clock()
    data = load_data(args)
    print({name: len(rows) for name, rows in data.items()}, flush=True)
    config = StudentConfig(kind="causal", max_length=args.max_length, batch_size=args.batch_size,
                           min_steps=args.steps, max_steps=args.steps, learning_rate=args.learning_rate,
                           score_batch_size=args.score_batch_size, causal={"max_new_tokens": args.max_new_tokens})
    base, learner = CausalStudent(config), CausalStudent(config)
    if "throughput" not in results:
        results["throughput"] = {"ifd_pairs_per_s": ifd_throughput(base, data["scored"][:args.throughput_n], [1, 2]),
                                 "pairs": args.throughput_n, "load_average": os.getloadavg()}
        save()
    scores_path = out.with_suffix(".scores.npz")
    if args.resume and scores_path.is_file():  # kept even when the run stopped before saving its timing
        saved = np.load(scores_path)
        scores = GenerationScores(**{k: saved[k] for k in saved.files}, drafts=())
        results.setdefault("pool_scores", {"flagged_share": float(misaligned(scores.ifd).mean()),
                                           "mean_ifd": float(np.nanmean(scores.ifd)),
                                           "mean_token_entropy": float(np.nanmean(scores.token_entropy))})
    else:
        clock = Clock()
        scores = base.score(data["scored"], progress=True, drafts=True)
        clock.lap("scoring")
        results["timings"].update(clock.times)
        np.savez(scores_path, **{k: getattr(scores, k) for k in ("token_entropy", "draft_nll", "ifd", "cond_nll",
                                                                  "uncond_nll", "embeddings")})
        results["pool_scores"] = {"flagged_share": float(misaligned(scores.ifd).mean()), "mean_ifd": float(np.nanmean(scores.ifd)),
                                  "mean_token_entropy": float(np.nanmean(scores.token_entropy))}
        save()
    if "base" not in results:
        clock = Clock()
        results["base"] = {"eval_nll_refs": float(np.mean(base.response_nll(data["refs"]))),
                           "eval_nll_heldout": float(np.mean(base.response_nll(data["heldout"])))}
        clock.lap("base_eval")
        results["timings"].update(clock.times)
        save()
    k = int(round(args.fraction * len(data["scored"])))
    state = SelectionState(labeled=np.zeros(len(data["scored"]), dtype=bool))
    all_seeds = args.seeds if args.all_seeds is None else args.all_seeds
    for seed in args.seeds:  # seed by seed, judged as it goes: a run stopped early still has whole seeds
        for name in [*STRATEGIES, *(["all"] if seed in all_seeds else [])]:
            key = f"seed{seed}/{name}"
            if key in results["conditions"]:
                continue
            clock = Clock()
            if name == "all":
                rows = np.arange(len(data["scored"]))
            else:
                registry, params = STRATEGIES[name]
                rows = make_strategy(registry, params).select(scores.as_scores(), state, k, np.random.default_rng(seed))
            clock.lap("select")
            condition = {**run_condition(learner, [data["scored"][i] for i in rows], seed, data), **clock.times}
            condition["subset"] = subset_stats(learner, scores, rows, data["scored"])
            results["conditions"][key] = condition
            save()
            print(f"{key}: refs NLL {condition['eval_nll_refs']:.3f}, held-out NLL "
                  f"{condition['eval_nll_heldout']:.3f} ({condition['train_s']:.0f} s training)", flush=True)
        clock = Clock()
        judge_all(base, data, results, args)
        clock.lap(f"judge_seed{seed}")
        results["timings"].update(clock.times)
        save()
    started.lap("this_run")
    results["timings"].update(started.times)
    rows = summarise(results, args)
    results["summary"] = rows
    save()
    report(results, rows, args)


def win_rate(preference: np.ndarray, same: np.ndarray) -> float:
    """Share of tasks won (P(better) > 0.5); identical answers are ties and count a half."""
    return float(np.where(same, 0.5, (preference > 0.5).astype(float)).mean())


def judge_all(base: CausalStudent, data: dict, results: dict, args: argparse.Namespace) -> None:
    """Each condition's answers against the random subset's (same seed); the judge's agreement with references."""
    conditions = results["conditions"]
    for key, condition in conditions.items():
        seed, name = key.split("/")
        baseline = conditions.get(f"{seed}/random") or conditions.get(f"seed{args.seeds[0]}/random")
        if name == "random" or baseline is None or "judge_vs_random" in condition:
            continue
        preference = judge_preference(base, data["judge"], condition["answers"], baseline["answers"])
        same = np.array([a == b for a, b in zip(condition["answers"], baseline["answers"])])
        condition["judge_vs_random"] = {"win_rate": win_rate(preference, same), "mean_preference": float(preference.mean()),
                                        "identical_answers": int(same.sum())}
    randoms = [c for key, c in conditions.items() if key.endswith("/random")]
    if randoms and "judge_agreement" not in results:
        references = [task.output for task in data["judge"]]
        preference = judge_preference(base, data["judge"], references, randoms[0]["answers"])
        results["judge_agreement"] = {"prefers_reference": float((preference > 0.5).mean()),
                                      "mean_preference_for_reference": float(preference.mean()),
                                      "tasks": len(references)}


def report(results: dict, rows: list[dict], args: argparse.Namespace) -> None:
    lines = table(rows, results["base"])
    print("\n".join(lines))
    agreement = results.get("judge_agreement", {})
    throughput = results["throughput"]
    summary = [
        "# Instruction-data selection on Alpaca (SmolLM2-135M-Instruct LoRA student)", "",
        "`bench/instruction_selection.py`; settings: " + ", ".join(f"{k}={v}" for k, v in results["settings"].items()), "",
        *lines, "",
        f"Judge (base SmolLM2, P(A) vs P(B), both orders): prefers the reference answer over the random-subset "
        f"student's answer on {agreement.get('prefers_reference', float('nan')):.3f} of {agreement.get('tasks', 0)} "
        f"Self-Instruct tasks (mean P = {agreement.get('mean_preference_for_reference', float('nan')):.3f}).", "",
        f"IFD scoring throughput (conditional + unconditional pass, base model, max_length {args.max_length}, "
        f"{throughput['pairs']} Alpaca pairs): {throughput['ifd_pairs_per_s']} pairs/s at load average "
        f"{', '.join(f'{x:.1f}' for x in throughput['load_average'])}.", "",
        f"Pool scores: {results.get('pool_scores')}; timings: {results['timings']}.", ""]
    Path(args.summary).parent.mkdir(parents=True, exist_ok=True)
    Path(args.summary).write_text("\n".join(summary))


if __name__ == "__main__":
    main()
