"""What a controller is given: data, space, budgets, backbone, training options, device.

Controllers read everything from here and hold no global state (Optuna's sampler/study
split). ``build_model`` and ``train_plan`` are the shared "retrain the found architecture"
step of every method.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embsearch.backbones import (
    ARCHITECTURE_KEY,
    CTRModel,
    backbone_params,
    make_backbone,
    plan_backbone_params,
)
from embsearch.backbones.params import BUILTIN_KEYS, split_params
from embsearch.backbones.regularize import combine, penalty
from embsearch.data.dataset import Dataset
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.embeddings.rows import set_column_qat
from embsearch.plan import Plan
from embsearch.search_spaces.base import SearchSpace
from embsearch.train.device import seed_everything
from embsearch.train.trainer import DeviceData, TrainConfig, TrainResult, train_model
from embsearch.trial_store import TrialStore


@dataclass
class SearchContext:
    """Everything a search may use. ``budgets`` are exact byte counts, ascending."""

    dataset: Dataset
    space: SearchSpace
    budgets: list[int]
    backbone: str = "deepfm"
    backbone_params: dict = field(default_factory=dict)  # checked: backbones.backbone_params
    train: TrainConfig = field(default_factory=TrainConfig)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    out_dir: Path | None = None
    max_seconds: float | None = None
    # ``--stream``: the train split is read once in its recorded time order, unshuffled (the
    # streaming setting of ESAPN's paper; only a controller with ``streams = True`` takes it)
    stream: bool = False
    store: TrialStore | None = None  # the run's Optuna storage (embsearch.trial_store)
    executor: Any = None  # runs trials elsewhere (search_loop.TrialExecutor); None: in process
    log: Callable[[str], None] = print
    history: list[dict] = field(default_factory=list)
    _data: DeviceData | None = field(default=None, repr=False)

    def record(self, **event: object) -> None:
        """Append one event (an evaluation, an epoch of a supernet, ...) to ``search.json``'s history."""
        self.history.append(dict(event))

    @property
    def budget(self) -> int:
        """The (first) budget; single-budget controllers use this."""
        return self.budgets[0]

    def with_budget(self, budget: int) -> SearchContext:
        return replace(self, budgets=[budget])

    def with_backbone(self, overrides: Mapping[str, Any]) -> SearchContext:
        """This context with backbone parameters ``overrides`` laid over the run's (a
        controller's ``search_backbone``: the settings its supernet trains with). Keys the
        run's backbone does not take (a custom backbone without ``batch_norm``, say) are
        left out, an unknown one is refused; the data on the device, the budgets and the
        history are shared."""
        if not overrides:
            return self
        complete = backbone_params(self.backbone, self.backbone_params)
        given = {k: v for k, v in overrides.items() if k in complete or k not in BUILTIN_KEYS}
        params = backbone_params(self.backbone, {**self.backbone_params, **given})
        plateau = split_params(params)[1]["lr_plateau_factor"]
        _ = self.data  # moved to the device once, shared by both contexts
        return replace(
            self, backbone_params=params, train=replace(self.train, lr_plateau_factor=plateau)
        )

    @property
    def data(self) -> DeviceData:
        """Splits resident on ``device``, moved once and shared by every training run."""
        if self._data is None:
            self._data = DeviceData(self.dataset, self.device)
        return self._data

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])

    def make_backbone(self, width: int | None = None) -> torch.nn.Module:
        return self.start_bias(
            make_backbone(
                self.backbone,
                self.space.num_fields,
                width or self.space.width,
                params=self.backbone_params,
            )
        )

    def positive_rate(self) -> float:
        """The training split's share of positive labels."""
        return float(self.dataset.split("train").y.mean())

    def start_bias(self, backbone: torch.nn.Module) -> torch.nn.Module:
        """The recipe's ``base_rate_bias`` (an extension): where the rarer class is below
        that share of the training labels, a backbone with an ``output_bias()`` (every
        built-in; a custom one may add it) starts its bias at the labels' log-odds, so that its
        first steps learn the ranking, not the base rate. From a zero start on talkingdata's
        0.2% positives, the validation AUC of batch-normed networks sat below 0.5 for the
        first epochs and early stopping ended at epoch 3 (test AUC 0.33; 0.970 with it)."""
        share = float(backbone_params(self.backbone, self.backbone_params)["base_rate_bias"])
        get = getattr(backbone, "output_bias", None)
        if share > 0 and callable(get):
            p = self.positive_rate()
            if min(p, 1 - p) < share:
                p = min(max(p, 1e-6), 1 - 1e-6)
                with torch.no_grad():
                    get().fill_(math.log(p / (1 - p)))
        return backbone

    def plan_backbone(self, plan: Plan) -> torch.nn.Module:
        """A fresh backbone for ``plan``: the run's, with the network the plan records when
        its controller searched one (``plan.extra["architecture"]``, AutoIAS)."""
        params = plan_backbone_params(
            self.backbone, self.backbone_params, plan.extra.get(ARCHITECTURE_KEY)
        )
        return self.start_bias(
            make_backbone(self.backbone, len(plan.fields), plan.width, plan.live_inputs, params)
        )

    def build_model(self, plan: Plan) -> CTRModel:
        """The plan's mixed-dimension table in front of a fresh backbone, on ``device``; its
        int8c/int4c tables train quantisation-aware unless ``train.column_qat`` is off."""
        emb = MixedDimEmbedding(plan)
        set_column_qat(emb, self.train.column_qat)
        return CTRModel(emb, self.plan_backbone(plan)).to(self.device)

    def penalty(
        self, own: Callable[[torch.nn.Module], torch.Tensor] | None = None
    ) -> Callable[[torch.nn.Module], torch.Tensor] | None:
        """The backbone's training penalties (weight decay, embedding regularizer), plus a
        controller's ``own`` regulariser: the ``extra_loss`` of every training of the run,
        supernets included, so searches train with the recipe their plans are retrained with."""
        params = backbone_params(self.backbone, self.backbone_params)  # complete: its defaults
        return combine(own, penalty(split_params(params)[1]))

    def train_plan(self, plan: Plan, desc: str = "retrain") -> tuple[CTRModel, TrainResult]:
        """Train the plan's model from scratch (seeded) with early stopping on validation AUC,
        adding the backbone's training penalties (weight decay, embedding regularizer) if set."""
        generator = seed_everything(self.seed)
        model = self.build_model(plan)
        result = train_model(
            model,
            self.data,
            self.train,
            generator=generator,
            desc=desc,
            extra_loss=self.penalty(),
        )
        return model, result
