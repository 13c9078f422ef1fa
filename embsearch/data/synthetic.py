"""The built-in synthetic dataset (``--data synthetic``): a planted problem with a known answer.

Fields have very different cardinalities and long-tailed (Zipf) id frequencies. The label
comes from a known subset of *informative* fields only: a first-order effect per id plus
low-rank pairwise interactions between the informative fields (so that they need real
embedding width); the remaining fields are pure noise. ``schema.meta["informative"]``
names the informative fields, so tests and benchmarks can check what a search found.
"""

from __future__ import annotations

import numpy as np

from embsearch.data.dataset import Dataset, Split
from embsearch.data.encode import apply_ranking, frequency_ranking
from embsearch.data.schema import FieldSpec, Schema

DEFAULT_CARDINALITIES = (40, 400, 3000, 120, 1500, 60, 800, 5000, 200, 2500, 30, 1000)
DEFAULT_INFORMATIVE = (1, 2, 4, 6, 9)

# A planted variant where embedding width pays once trained to convergence: four of the
# five informative fields have 30-60 ids (each seen 400-1,300 times in training; the fifth
# keeps 800), flatter frequencies, stronger rank-8 interactions and a weaker first-order
# part. With the defaults the informative fields have 60-3,000 ids, too many to learn
# their interactions from 48k training rows, so a dim-1 table converges as high as the
# dim-16 one (`git show 964ade3:BENCHMARKS.md`). Used by the benchmarks (``bench_protocol.py --datasets
# synthetic-wide``).
WIDE_PRESET: dict = {
    "cardinalities": (40, 30, 50, 120, 40, 60, 800, 5000, 25, 60, 30, 1000),
    "zipf": 0.5,
    "first_order": 0.4,
    "interaction": 2.0,
}


def make_synthetic(
    rows: int = 60_000,
    cardinalities: tuple[int, ...] = DEFAULT_CARDINALITIES,
    informative: tuple[int, ...] = DEFAULT_INFORMATIVE,
    rank: int = 8,
    zipf: float = 1.1,
    first_order: float = 0.6,
    interaction: float = 0.9,
    split: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Dataset:
    """Generate the planted dataset. Deterministic for a given ``seed``. The logit is
    ``-0.3 + sum_f N(0, first_order)[id_f] + interaction * sum_{f<g} <u_f[id_f], u_g[id_g]>``
    over the informative fields, with rank-``rank`` factors ``u ~ N(0, 1/rank)``."""
    rng = np.random.default_rng(seed)
    n_fields = len(cardinalities)
    raw = np.empty((rows, n_fields), dtype=np.int64)
    for j, card in enumerate(cardinalities):
        p = 1.0 / np.arange(1, card + 1) ** zipf
        raw[:, j] = rng.choice(card, size=rows, p=p / p.sum())
        raw[:, j] = rng.permutation(card)[raw[:, j]]  # raw codes carry no frequency order

    logit = np.full(rows, -0.3)
    factors = {}
    for j in informative:
        card = cardinalities[j]
        logit += rng.normal(0.0, first_order, card)[raw[:, j]]
        factors[j] = rng.normal(0.0, 1.0 / np.sqrt(rank), (card, rank))
    inf = list(informative)
    for a in range(len(inf)):
        for b in range(a + 1, len(inf)):
            fa, fb = inf[a], inf[b]
            logit += interaction * np.einsum(
                "nk,nk->n", factors[fa][raw[:, fa]], factors[fb][raw[:, fb]]
            )
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)

    perm = rng.permutation(rows)
    n_tr, n_va = int(split[0] * rows), int(split[1] * rows)
    idx = {"train": perm[:n_tr], "val": perm[n_tr : n_tr + n_va], "test": perm[n_tr + n_va :]}
    x = {name: np.empty((len(ix), n_fields), dtype=np.int32) for name, ix in idx.items()}
    fields = []
    for j, card in enumerate(cardinalities):
        remap, counts = frequency_ranking(raw[idx["train"], j], card, min_count=1)
        for name, ix in idx.items():
            x[name][:, j] = apply_ranking(raw[ix, j], remap)
        fields.append(FieldSpec(f"f{j:02d}", len(counts), counts))
    names = [f.name for f in fields]
    schema = Schema(
        fields,
        label="label",
        source="synthetic",
        meta={
            "informative": [names[j] for j in informative],
            "noise": [names[j] for j in range(n_fields) if j not in informative],
            "seed": seed,
            "rows": rows,
        },
    )
    return Dataset(schema, *(Split(x[s], y[idx[s]]) for s in ("train", "val", "test")))
