"""Evaluators: what the shared search loop calls to score a candidate (higher is better).

:class:`InheritedWeightEvaluator` scores candidates with a trained supernet's shared
weights, without retraining (the "inherit weights from the supernet" step of OptEmbed,
RULE, AutoIAS, ...). It works with any supernet whose embedding module follows the
masked-table protocol of ``embeddings/supernets_evo`` (``lookup``, ``slots``, ``dims_of``,
``column_mask``): a candidate only changes which leading columns of each (field, group)
block are kept, so the split's full-width embeddings and the slot of every id are computed
once, and each candidate costs one mask, one backbone pass in big batches and one AUC.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from embsearch.data.batches import DeviceSplit
from embsearch.search_spaces.base import Candidate
from embsearch.train.metrics import log_loss, roc_auc


@runtime_checkable
class Evaluator(Protocol):
    """``evaluator(candidate) -> score`` (higher is better). ``name`` goes into every
    recorded evaluation; optional ``last_metrics`` (a dict) is recorded alongside."""

    name: str

    def __call__(self, candidate: Candidate) -> float: ...


class InheritedWeightEvaluator:
    """Validation AUC of a candidate played by a trained supernet (no retraining).

    ``model`` is a ``CTRModel`` whose ``embedding`` is a masked supernet table. Caches the
    split's embeddings (after candidate-independent row transforms such as OptEmbed's
    pruning) when they take at most ``cache_bytes``; otherwise looks them up per batch.
    ``max_rows`` evaluates on the first rows of the split only (faster, noisier).
    """

    name = "inherited"

    def __init__(
        self,
        model: nn.Module,
        split: DeviceSplit,
        batch_size: int = 65536,
        max_rows: int | None = None,
        cache_bytes: int = 512 * 2**20,
    ) -> None:
        self.model = model
        self.embedding = model.embedding
        self.backbone = model.backbone
        n = len(split) if max_rows is None else min(int(max_rows), len(split))
        self.x = split.x[:n]
        self.y = split.y[:n].cpu().numpy()
        self.batch_size = int(batch_size)
        self.last_metrics: dict[str, float] = {}
        model.eval()
        width = int(self.embedding.width)
        with torch.no_grad():
            self.slots = self.embedding.slots(self.x)
            fits = self.x.numel() * width * 4 <= cache_bytes
            self.cached = self.embedding.lookup(self.x) if fits else None

    @torch.no_grad()
    def predict(self, candidate: Candidate) -> np.ndarray:
        """Click probabilities of every evaluated row under ``candidate``."""
        self.model.eval()
        dims = self.embedding.dims_of(candidate)
        out = []
        for start in range(0, len(self.x), self.batch_size):
            stop = start + self.batch_size
            e = (
                self.cached[start:stop]
                if self.cached is not None
                else self.embedding.lookup(self.x[start:stop])
            )
            e = e * self.embedding.column_mask(dims[self.slots[start:stop]])
            out.append(torch.sigmoid(self.backbone(e).float()))
        return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)

    def metrics(self, candidate: Candidate) -> dict[str, float]:
        p = self.predict(candidate)
        return {"auc": roc_auc(self.y, p), "logloss": log_loss(self.y, p)}

    def __call__(self, candidate: Candidate) -> float:
        m = self.metrics(candidate)
        self.last_metrics = {"logloss": m["logloss"]}
        return m["auc"]
