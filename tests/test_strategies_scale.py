"""Selection at scale: sharded embeddings, the exact shard merge, the faiss back end and its parity
with the numpy implementations. Real faiss (the `ray` extra, in the test extra), small pools."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from quarry_al.strategies import Scores, SelectionState, StrategyError, StrategyParamError, make_strategy
from quarry_al.strategies.ann import AUTO_MIN_ROWS, Index, Plan, kmeans, plan
from quarry_al.strategies.neighbourhood import k_center
from quarry_al.strategies.shards import Shards, blocks, merge_top_k, top_k_smallest
from quarry_al.strategies.subsample import nearest_unlabeled

faiss = pytest.importorskip("faiss")
REPO = Path(__file__).resolve().parents[1]


def clustered(n: int, d: int = 16, clusters: int = 8, seed: int = 0, spread: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((clusters, d))
    return (centres[rng.integers(clusters, size=n)] + spread * rng.standard_normal((n, d))).astype(np.float32)


def pool(n: int = 3000, labeled: int = 60, seed: int = 0, d: int = 16) -> tuple[Scores, SelectionState, np.ndarray]:
    rng = np.random.default_rng(seed)
    emb = clustered(n, d, seed=seed)
    logits = emb @ rng.standard_normal((d, 4))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=labeled, replace=False)] = True
    return Scores(probs=probs, embeddings=emb), SelectionState(labeled=mask, round=1), emb


def float16_shards(emb: np.ndarray, folder: Path, cuts: list[int]) -> Shards:
    """The pool as float16 np.memmap files, cut at `cuts`."""
    parts = []
    for i, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, len(emb)])):
        part = np.memmap(folder / f"shard-{i}.f16", dtype=np.float16, mode="w+", shape=(hi - lo, emb.shape[1]))
        part[:] = emb[lo:hi]
        part.flush()
        parts.append(np.memmap(folder / f"shard-{i}.f16", dtype=np.float16, mode="r", shape=(hi - lo, emb.shape[1])))
    return Shards(parts)


# --- shards and the exact merge -------------------------------------------------------------------

def test_shards_read_like_the_concatenated_array(tmp_path):
    emb = clustered(1000)
    shards = float16_shards(emb, tmp_path, [137, 600])
    as16 = emb.astype(np.float16)
    rows = np.array([999, 0, 136, 137, 599, 600, 5])
    np.testing.assert_array_equal(shards[rows], as16[rows].astype(np.float32))
    np.testing.assert_array_equal(shards[np.arange(1000) % 3 == 0], as16[::3].astype(np.float32))
    read = np.concatenate([block for _, block in blocks(shards, size=100)])
    starts = [start for start, _ in blocks(shards, size=100)]
    np.testing.assert_array_equal(read, as16.astype(np.float32))
    assert starts[:3] == [0, 100, 137] and shards.shape == (1000, 16) and len(shards) == 1000


def rss_file_kb() -> int:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("RssFile:"))
    return int(line.split()[1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")
def test_reading_a_memmapped_shard_maps_none_of_its_pages(tmp_path):
    """Blocks and gathers are file reads: the file's pages never join the process's resident set,
    where plain memmap indexing maps every page it touches (and its neighbours)."""
    rows = np.random.default_rng(0).choice(40_000, size=2_000, replace=False)
    np.memmap(tmp_path / "pool.f16", dtype=np.float16, mode="w+", shape=(40_000, 384)).flush()  # 30 MB
    shards = Shards([np.memmap(tmp_path / "pool.f16", dtype=np.float16, mode="r", shape=(40_000, 384))])
    before = rss_file_kb()
    shards[rows]
    for _ in blocks(shards):
        pass
    assert rss_file_kb() - before < 2_000
    mapped = np.memmap(tmp_path / "pool.f16", dtype=np.float16, mode="r", shape=(40_000, 384))
    mapped[np.sort(rows)].astype(np.float32)
    assert rss_file_kb() - before > 5_000


def test_top_k_smallest_breaks_ties_by_position():
    d = np.array([[3.0, 1.0, 1.0, 2.0, 1.0, 0.0], [5.0, 5.0, 5.0, 5.0, 5.0, 5.0]])
    values, positions = top_k_smallest(d, 3)
    assert positions.tolist() == [[5, 1, 2], [0, 1, 2]] and values[0].tolist() == [0.0, 1.0, 1.0]


def test_merge_top_k_is_exact_with_ties_and_missing_entries():
    a_d, a_r = np.array([[1.0, 2.0, np.inf]]), np.array([[10, 4, -1]])
    b_d, b_r = np.array([[2.0, 0.5]]), np.array([[3, 99]])
    d, r = merge_top_k([a_d, b_d], [a_r, b_r], 4)
    assert r.tolist() == [[99, 10, 3, 4]] and d.tolist() == [[0.5, 1.0, 2.0, 2.0]]


def test_sharded_neighbour_search_equals_the_concatenated_array(tmp_path):
    """Per-shard top-k and the global merge give exactly the neighbours found over one array,
    duplicate rows (equal distances) included."""
    emb = clustered(4000, seed=1)
    emb[2500:2600] = emb[100:200]  # duplicates across shards: ties only the row order can break
    as16 = emb.astype(np.float16)
    shards = float16_shards(emb, tmp_path, [700, 2501, 2550])
    labeled = np.zeros(4000, dtype=bool)
    labeled[np.random.default_rng(0).choice(4000, 200, replace=False)] = True
    queries = np.flatnonzero(labeled)[:30]
    one = nearest_unlabeled(as16, labeled, queries, 25)
    assert nearest_unlabeled(shards, labeled, queries, 25).tolist() == one.tolist()
    assert len(one) == 30 * 25 and not labeled[one].any()


SCALING = [("kmeans", {}), ("kmeans", {"pick": "uncertain"}), ("coreset", {}), ("coreset", {"nprobe": 2}),
           ("density", {}), ("density", {"neighbours": 5}), ("density", {"neighbours": 5, "nprobe": 2}),
           ("cal", {}), ("cal", {"nprobe": 2}),
           ("margin", {"subsample": 500, "subsample_method": "seals", "subsample_neighbours": 20}),
           ("coreset", {"subsample": 500, "subsample_method": "seals", "subsample_nprobe": 3})]


@pytest.mark.parametrize("name,params", SCALING, ids=[f"{n}{p}" for n, p in SCALING])
def test_selection_over_float16_shards_equals_the_concatenated_array(tmp_path, name, params):
    scores, state, emb = pool()
    as16 = emb.astype(np.float16)
    shards = float16_shards(emb, tmp_path, [1000, 1001, 2200])
    if name != "margin":
        params = {**params, "backend": "faiss"}
    strategy = make_strategy(name, params)
    over_array = strategy.select(Scores(scores.probs, as16), state, 20, np.random.default_rng(3))
    over_shards = strategy.select(Scores(scores.probs, shards), state, 20, np.random.default_rng(3))
    assert over_shards.tolist() == over_array.tolist()
    assert len(set(over_array.tolist())) == 20 and not state.labeled[over_array].any()


# --- the faiss back end against numpy -------------------------------------------------------------

def test_coreset_faiss_exact_chooses_what_numpy_chooses():
    for seed, labeled in ((0, 60), (1, 0), (2, 5)):
        scores, state, _ = pool(2000, labeled, seed)
        numpy_pick = make_strategy("coreset", {"backend": "numpy"}).select(scores, state, 15, np.random.default_rng(seed))
        faiss_pick = make_strategy("coreset", {"backend": "faiss"}).select(scores, state, 15, np.random.default_rng(seed))
        assert faiss_pick.tolist() == numpy_pick.tolist()


def test_lazy_k_center_takes_the_eager_greedy_choices_from_ivf_bounds():
    """With approximate (IVF) distances to the labeled rows, the lazy steps still take exactly what
    updating every row at every step takes, from the same starting bounds."""
    scores, state, emb = pool(3000, 200, seed=4)
    search = Plan("faiss", nprobe=1)
    chosen = k_center(emb, state.labeled, ~state.labeled, 25, search, np.random.default_rng(0))
    seed = int(np.random.default_rng(0).integers(2**31 - 1))  # what k_center draws for the IVF cells
    bound = Index(emb[state.labeled], search, seed=seed).search(emb, 1)[0][:, 0]
    exact = Index(emb[state.labeled], Plan("numpy")).search(emb, 1)[0][:, 0]
    assert np.all(bound >= exact - 1e-3) and np.any(bound > exact + 1e-3)  # upper bounds, not exact
    bound[state.labeled] = -1.0
    norms = np.einsum("ij,ij->i", emb, emb, dtype=np.float64)
    eager = []
    for _ in range(25):
        i = int(np.argmax(bound))
        eager.append(i)
        bound = np.minimum(bound, np.maximum(norms + norms[i] - 2.0 * (emb @ emb[i]), 0.0))
        bound[eager] = -1.0
    assert chosen.tolist() == eager


def test_faiss_kmeans_clusters_as_well_as_scikit_learn():
    from sklearn.cluster import KMeans

    x = clustered(4000, clusters=10, seed=5)
    centres = kmeans(x, 10, seed=0, iterations=25)
    reference = KMeans(n_clusters=10, n_init=1, random_state=0).fit(x)
    inertia = Index(centres, Plan("numpy")).search(x, 1)[0].sum()
    assert inertia <= 1.1 * reference.inertia_


def test_kmeans_backends_both_take_one_item_per_blob():
    rng = np.random.default_rng(0)
    centres = 10.0 * np.eye(8, 16)
    emb = np.concatenate([c + 0.1 * rng.standard_normal((300, 16)) for c in centres]).astype(np.float32)
    scores, state = Scores(np.full((2400, 2), 0.5), emb), SelectionState(labeled=np.zeros(2400, dtype=bool))
    for backend in ("numpy", "faiss"):
        chosen = make_strategy("kmeans", {"backend": backend}).select(scores, state, 8, np.random.default_rng(1))
        assert sorted(chosen // 300) == list(range(8)), backend


@pytest.mark.parametrize("name,params", [("cal", {}), ("density", {"neighbours": 7})])
def test_utilities_match_between_numpy_and_faiss_exact_search(name, params):
    scores, state, _ = pool(1500, 80, seed=6)
    numpy_u = make_strategy(name, {**params, "backend": "numpy"}).utility(scores, state)
    faiss_u = make_strategy(name, {**params, "backend": "faiss"}).utility(scores, state)
    np.testing.assert_allclose(faiss_u, numpy_u, rtol=1e-4, atol=1e-6)


def test_ivf_probing_every_cell_is_exact():
    scores, state, emb = pool(2000, 100, seed=8)
    exact = make_strategy("cal", {"backend": "faiss"}).utility(scores, state)
    everything = make_strategy("cal", {"backend": "faiss", "nprobe": 1000}).utility(scores, state)
    np.testing.assert_allclose(everything, exact, rtol=1e-5, atol=1e-7)


def test_mean_cosine_density_streams_to_the_closed_form(tmp_path):
    scores, state, emb = pool(1200)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    expected = np.clip(unit @ unit.mean(axis=0), 0, None)
    got = make_strategy("density").density(Scores(scores.probs, float16_shards(emb, tmp_path, [500])))
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_faiss_selection_replays_per_generator_and_differs_across_seeds():
    scores, state, _ = pool(3000, 0)
    strategy = make_strategy("kmeans", {"backend": "faiss"})
    first = strategy.select(scores, state, 12, np.random.default_rng(0))
    assert strategy.select(scores, state, 12, np.random.default_rng(0)).tolist() == first.tolist()
    assert strategy.select(scores, state, 12, np.random.default_rng(1)).tolist() != first.tolist()


# --- choosing, checking and importing the back end ------------------------------------------------

def test_auto_chooses_by_pool_size():
    assert plan("auto", None, AUTO_MIN_ROWS - 1, 10) == Plan("numpy")
    assert plan("auto", None, AUTO_MIN_ROWS, 10) == Plan("faiss", None)
    assert plan("auto", None, 1_000_000, 1000) == Plan("faiss", 1)  # exact would compare 1e9 pairs
    assert plan("faiss", None, 1_000_000, 1000) == Plan("faiss", None)
    assert plan("numpy", None, 10**7, 10**4) == Plan("numpy")


@pytest.mark.parametrize("name,params,key", [
    ("coreset", {"backend": "gpu"}, "backend"), ("cal", {"backend": "numpy", "nprobe": 4}, "nprobe"),
    ("density", {"nprobe": 0}, "nprobe"), ("density", {"neighbours": 0}, "neighbours"),
    ("kmeans", {"backend": None}, "backend"),
    ("margin", {"subsample": 100, "subsample_nprobe": 4}, "subsample_nprobe")])
def test_bad_backend_params_name_the_param(name, params, key):
    with pytest.raises(StrategyParamError) as caught:
        make_strategy(name, params)
    assert caught.value.param == key


def test_without_faiss_auto_falls_back_to_numpy_and_faiss_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # `import faiss` raises ImportError, find_spec finds nothing
    assert plan("auto", None, 10**7, 10**4) == Plan("numpy")
    scores, state, _ = pool(500, 20)
    assert len(make_strategy("coreset").select(scores, state, 5, np.random.default_rng(0))) == 5
    with pytest.raises(StrategyError, match=r"quarry-al\[ray\]"):
        make_strategy("coreset", {"backend": "faiss"}).select(scores, state, 5, np.random.default_rng(0))


def test_faiss_is_imported_only_when_a_strategy_uses_it():
    """In a fresh interpreter: the numpy paths (and `auto` on a small pool) never import faiss."""
    script = f"""
import sys, types
import numpy as np
package = types.ModuleType("quarry_al"); package.__path__ = [{str(REPO)!r}]; sys.modules["quarry_al"] = package
from quarry_al.strategies import Scores, SelectionState, make_strategy
rng = np.random.default_rng(0)
scores = Scores(rng.dirichlet(np.ones(3), 400), rng.standard_normal((400, 8)).astype(np.float32))
state = SelectionState(labeled=np.arange(400) < 20)
for name, params in [("kmeans", {{}}), ("coreset", {{}}), ("cal", {{}}), ("density", {{"neighbours": 3}}),
                     ("adaptive", {{}}), ("margin", {{"subsample": 50, "subsample_method": "seals"}})]:
    make_strategy(name, params).select(scores, state, 5, rng)
print("before", "faiss" in sys.modules)
make_strategy("coreset", {{"backend": "faiss"}}).select(scores, state, 5, rng)
print("after", "faiss" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["before", "False", "after", "True"]
