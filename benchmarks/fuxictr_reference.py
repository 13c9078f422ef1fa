"""FuxiCTR reference figures on the fixed frappe, avazu and criteo splits (embsearch issue 19).

Trains one model from FuxiCTR's own model zoo, with FuxiCTR's own data pipeline
(``FeatureProcessor`` + ``build_dataset`` -> parquet, ``RankDataLoader`` -> Ray-backed
``ParquetDataLoader``) and its own ``BaseModel.fit`` loop (early stopping on validation AUC,
patience 2, learning rate x0.1 on every plateau), then evaluates the best checkpoint on the
test split. The hyperparameters are the BARS ``<Model>_frappe_x1`` tuned configs
(github.com/reczoo/BARS, ranking/ctr/<Model>/<Model>_frappe_x1/README.md), except
``embedding_dim`` (16 instead of 10, as in the split's SOURCE.md reference) and at most 30
epochs instead of 100.

Each run appends one JSON line to ``<out>/frappe.jsonl``: the config used, validation and test
AUC / logloss, epochs run, best epoch, the per-epoch validation AUC and learning rate, and the
training time split into training and validation evaluation.

It needs a Python environment with ``fuxictr==2.3.10``, ``polars<2`` and ``torch`` (not
embsearch's), and a FuxiCTR source checkout for ``model_zoo/`` (not part of the wheel)::

    /path/to/venv-with-fuxictr/bin/python benchmarks/fuxictr_reference.py \\
        --data ../shared/data/frappe-split --model DeepFM --seed 2021 \\
        --out benchmarks/results/fuxictr/ [--model-zoo /tmp/fuxi_repo/model_zoo]

Models with a transcribed BARS config: frappe DeepFM, DNN, FM, DCNv2, WideDeep; avazu and
criteo (``--dataset``) DeepFM and DNN, from ``<Model>_avazu_x1`` / ``<Model>_criteo_x1``. FuxiCTR
reads plain CSV only, so the frappe ``.csv.gz`` split files are decompressed into ``--work-dir``
first; the encoded parquet dataset is cached there and shared by all models of a dataset (delete
it to rebuild).

The avazu and criteo splits (10k-row smoke samples in ``../shared/data``) are made once, by the
same rule as the frappe split (``numpy.random.default_rng(2026).permutation``, cut 80/10/10),
as ``{train,valid,test}.csv`` with a header and a ``label`` column; any Python runs it::

    python benchmarks/fuxictr_reference.py --dataset avazu --make-split \
        ../shared/data/avazu-sample10k/avazu_sample.csv.gz --data /tmp/small_split/avazu

avazu keeps its 22 columns after ``id`` (``click`` becomes ``label``), criteo its 39
(``I1..I13`` raw, empty when missing; FuxiCTR buckets them as its criteo_x4 configs do:
``fill_na`` 0, then ``convert_to_bucket``, floor(log(v)^2) for v > 2, categorical).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

FRAPPE_FIELDS = [
    "user",
    "item",
    "daytime",
    "weekday",
    "isweekend",
    "homework",
    "cost",
    "weather",
    "country",
    "city",
]
AVAZU_FIELDS = [
    "hour",
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
    "device_type",
    "device_conn_type",
    *(f"C{i}" for i in range(14, 22)),
]
CRITEO_INT = [f"I{i}" for i in range(1, 14)]
CRITEO_CAT = [f"C{i}" for i in range(1, 27)]
# per dataset: the feature columns, FuxiCTR's feature_cols, and the description in the record
DATASETS = {
    "frappe": {
        "fields": FRAPPE_FIELDS,
        "feature_cols": [
            {"name": FRAPPE_FIELDS, "active": True, "dtype": "str", "type": "categorical"}
        ],
        "about": "frappe-split (SOURCE.md: 69,265 / 8,658 / 8,659 rows)",
    },
    "avazu": {
        "fields": AVAZU_FIELDS,
        "feature_cols": [
            {"name": AVAZU_FIELDS, "active": True, "dtype": "str", "type": "categorical"}
        ],
        "about": "avazu-sample10k, rng(2026) 80/10/10 split (7,999 / 999 / 1,001 rows)",
    },
    "criteo": {
        "fields": CRITEO_INT + CRITEO_CAT,
        "feature_cols": [
            # FuxiCTR's criteo_x4 treatment (BARS criteo_x1 ships I1..I13 pre-normalized)
            {
                "name": CRITEO_INT,
                "active": True,
                "dtype": "float",
                "fill_na": 0,
                "preprocess": "convert_to_bucket",
                "type": "categorical",
            },
            {"name": CRITEO_CAT, "active": True, "dtype": "str", "type": "categorical"},
        ],
        "about": "criteo-kaggle-head10k, rng(2026) 80/10/10 split (8,000 / 1,000 / 1,000 rows)",
    },
}
SPLITS = ("train", "valid", "test")
# params keys that are paths or plumbing rather than model/training config
NOT_CONFIG = {"train_data", "valid_data", "test_data", "data_root", "model_root", "verbose", "gpu"}

# Settings shared by every BARS frappe_x1 config (FuxiCTR v1.1.0 names in comments where the
# 2.x name differs).
COMMON = {
    "optimizer": "adam",
    "loss": "binary_crossentropy",
    "task": "binary_classification",
    "metrics": ["AUC", "logloss"],
    "monitor": "AUC",
    "monitor_mode": "max",
    "early_stop_patience": 2,  # BARS: "patience": 2
    "reduce_lr_on_plateau": True,  # FuxiCTR default; BARS logs show x0.1 per plateau
    "save_best_only": True,
    "min_categr_count": 1,
    "batch_size": 4096,
    "learning_rate": 1e-3,
    "shuffle": True,
    "max_gradient_norm": 10.0,  # FuxiCTR BaseModel.fit default (clip_grad_norm_)
}

# Model-specific hyperparameters, transcribed from the BARS README logs (embedding_dim there
# is 10 for all; it is overridden by --embedding-dim).
BARS_FRAPPE = {
    "DeepFM": {
        "bars_expid": "DeepFM_frappe_x1_001_4ae3a56e",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.2,
        "batch_norm": True,
        "embedding_regularizer": 0.05,
        "net_regularizer": 0,
    },
    "DNN": {
        "bars_expid": "DNN_frappe_x1_001_ad0f0fce",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.2,
        "batch_norm": True,
        "embedding_regularizer": 0.05,
        "net_regularizer": 0,
    },
    "FM": {
        "bars_expid": "FM_frappe_x1_001_b16e1650",
        # FM takes one "regularizer" used for both the embeddings and the rest (LR bias).
        "regularizer": 5e-06,
    },
    "DCNv2": {
        "bars_expid": "DCNv2_frappe_x1_007_c207b717",
        "model_structure": "parallel",
        "use_low_rank_mixture": False,
        "low_rank": 32,
        "num_experts": 4,
        "num_cross_layers": 4,
        "parallel_dnn_hidden_units": [400, 400, 400],
        "stacked_dnn_hidden_units": [500, 500, 500],  # unused with model_structure=parallel
        "dnn_activations": "relu",
        "net_dropout": 0.4,
        "batch_norm": True,
        "embedding_regularizer": 0.05,
        "net_regularizer": 0,
    },
    "WideDeep": {
        "bars_expid": "WideDeep_frappe_x1_030_af559975",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.6,
        "batch_norm": True,
        "embedding_regularizer": 0.1,
        "net_regularizer": 0,
    },
}
BARS_AVAZU = {
    "DeepFM": {
        "bars_expid": "DeepFM_avazu_x1_004_514a2b87",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.3,
        "batch_norm": True,
        "embedding_regularizer": 0.1,
        "net_regularizer": 0,
    },
    "DNN": {
        "bars_expid": "DNN_avazu_x1_001_3da2d674",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.1,
        "batch_norm": False,
        "embedding_regularizer": 0.01,
        "net_regularizer": 0,
    },
}
BARS_CRITEO = {
    "DeepFM": {
        "bars_expid": "DeepFM_criteo_x1_001_4b788fed",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.1,
        "batch_norm": True,
        "embedding_regularizer": 1e-05,
        "net_regularizer": 0,
    },
    "DNN": {
        "bars_expid": "DNN_criteo_x1_001_be50edb0",
        "hidden_units": [400, 400, 400],
        "hidden_activations": "relu",
        "net_dropout": 0.1,
        "batch_norm": False,
        "embedding_regularizer": 1e-05,
        "net_regularizer": 0,
    },
}
BARS = {"frappe": BARS_FRAPPE, "avazu": BARS_AVAZU, "criteo": BARS_CRITEO}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="dir with frappe_{split}.csv.gz (frappe) or {split}.csv (avazu, criteo)",
    )
    p.add_argument("--dataset", choices=sorted(DATASETS), default="frappe")
    p.add_argument(
        "--make-split",
        type=Path,
        metavar="RAW",
        help="write the 80/10/10 split of RAW (the avazu or criteo sample) into --data and exit",
    )
    p.add_argument("--model", choices=sorted(BARS_FRAPPE))
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/fuxictr"))
    p.add_argument("--model-zoo", type=Path, default=Path("/tmp/fuxi_repo/model_zoo"))
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/fuxi_work"))
    p.add_argument("--embedding-dim", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument(
        "--patience", type=int, default=2, help="early_stop_patience (BARS: 2); a deviation"
    )
    p.add_argument(
        "--no-lr-plateau",
        action="store_true",
        help="keep the learning rate on a plateau (BARS: x0.1); a deviation",
    )
    p.add_argument("--batch-size", type=int, default=4096, help="BARS: 4096; a deviation")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--ray-cpus", type=int, default=1, help="num_cpus given to ray.init")
    args = p.parse_args()
    if args.make_split is None:
        if args.model is None:
            p.error("--model is required")
        if args.model not in BARS[args.dataset]:
            p.error(
                f"no BARS config for {args.model} on {args.dataset}: {sorted(BARS[args.dataset])}"
            )
    return args


def make_split(dataset: str, raw: Path, out_dir: Path) -> None:
    """The avazu/criteo sample as train/valid/test CSV: rng(2026) permutation, cut 80/10/10."""
    import csv

    import numpy as np

    with gzip.open(raw, "rt", newline="") as f:
        if dataset == "avazu":
            reader = csv.reader(f)
            header = next(reader)
            label, first = header.index("click"), header.index("id")
            rows = [
                [r[label]] + [v for i, v in enumerate(r) if i not in (label, first)] for r in reader
            ]
            header = ["label"] + [h for i, h in enumerate(header) if i not in (label, first)]
        elif dataset == "criteo":
            rows = [line.rstrip("\n").split("\t") for line in f]
            header = ["label", *CRITEO_INT, *CRITEO_CAT]
        else:
            raise SystemExit(f"--make-split is for avazu and criteo, not {dataset}")
    assert header[1:] == DATASETS[dataset]["fields"], header
    assert all(len(r) == len(header) for r in rows)
    order = np.random.default_rng(2026).permutation(len(rows))
    n_train, n_valid = int(0.8 * len(rows)), int(0.1 * len(rows))
    cuts = {
        "train": order[:n_train],
        "valid": order[n_train : n_train + n_valid],
        "test": order[n_train + n_valid :],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, idx in cuts.items():
        with open(out_dir / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows[i] for i in idx)
        pos = sum(int(rows[i][0]) for i in idx) / len(idx)
        print(f"{split}: {len(idx)} rows, positive rate {pos:.3f}")


def decompress(data_dir: Path, csv_dir: Path) -> dict[str, str]:
    csv_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        dst = csv_dir / f"{split}.csv"
        if not dst.exists():
            tmp = dst.with_suffix(".tmp")
            with gzip.open(data_dir / f"frappe_{split}.csv.gz", "rb") as src, open(tmp, "wb") as f:
                shutil.copyfileobj(src, f)
            tmp.rename(dst)
        paths[split] = str(dst)
    return paths


def load_model_class(model_zoo: Path, name: str):
    """Import ``<zoo>/<name>/[<name>_torch/]src`` under a unique package name."""
    for src in (model_zoo / name / f"{name}_torch" / "src", model_zoo / name / "src"):
        if (src / "__init__.py").exists():
            pkg = f"fuxictr_zoo_{name}"
            spec = importlib.util.spec_from_file_location(
                pkg, src / "__init__.py", submodule_search_locations=[str(src)]
            )
            module = importlib.util.module_from_spec(spec)
            sys.modules[pkg] = module
            spec.loader.exec_module(module)
            return getattr(module, name), str(src)
    raise FileNotFoundError(f"no torch src for {name} under {model_zoo}")


class EpochTimer:
    """Wraps a FuxiCTR model's train_epoch/eval_step to time them and log each validation."""

    def __init__(self, model):
        self.model = model
        self.epoch_seconds: list[float] = []
        self.eval_seconds: list[float] = []
        self.val_auc: list[float] = []
        self.lr_after: list[float] = []
        self.best_epoch: int | None = None
        self._train_epoch = model.train_epoch
        self._eval_step = model.eval_step
        model.train_epoch = self.train_epoch
        model.eval_step = self.eval_step

    def train_epoch(self, data_generator):
        t0 = time.perf_counter()
        self._train_epoch(data_generator)
        self.epoch_seconds.append(time.perf_counter() - t0)

    def eval_step(self):
        m = self.model
        t0 = time.perf_counter()
        val_logs = m.evaluate(m.valid_gen, metrics=m._monitor.get_metrics())
        self.eval_seconds.append(time.perf_counter() - t0)
        m.checkpoint_and_earlystop(val_logs)
        m.train()
        self.val_auc.append(float(val_logs["AUC"]))
        self.lr_after.append(float(m.optimizer.param_groups[0]["lr"]))
        if m._stopping_steps == 0:  # this evaluation became the new best checkpoint
            self.best_epoch = m._epoch_index + 1


def main() -> None:
    args = parse_args()
    if args.make_split is not None:
        make_split(args.dataset, args.make_split, args.data)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    import fuxictr
    import numpy as np
    import ray
    import torch
    from fuxictr.features import FeatureMap
    from fuxictr.preprocess import FeatureProcessor, build_dataset
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from fuxictr.pytorch.torch_utils import seed_everything

    torch.set_num_threads(args.threads)
    if args.dataset == "frappe":
        csv = decompress(args.data, args.work_dir / "csv")
    else:
        csv = {split: str(args.data / f"{split}.csv") for split in SPLITS}
    model_class, model_src = load_model_class(args.model_zoo, args.model)
    bars = BARS[args.dataset][args.model]
    fields = DATASETS[args.dataset]["fields"]

    dataset_id = f"{args.dataset}_split"
    data_root = str(args.work_dir / "data")
    params = {
        **COMMON,
        **{k: v for k, v in bars.items() if k != "bars_expid"},
        "model": args.model,
        "model_id": f"{args.model}_{dataset_id}_s{args.seed}",
        "dataset_id": dataset_id,
        "data_root": data_root,
        "data_format": "csv",
        "train_data": csv["train"],
        "valid_data": csv["valid"],
        "test_data": csv["test"],
        "feature_cols": DATASETS[args.dataset]["feature_cols"],
        "label_col": {"name": "label", "dtype": "float"},
        "embedding_dim": args.embedding_dim,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "early_stop_patience": args.patience,
        "reduce_lr_on_plateau": not args.no_lr_plateau,
        "seed": args.seed,
        "gpu": -1,
        "verbose": 0,
        "model_root": str(args.work_dir / "checkpoints"),
    }

    if not ray.is_initialized():
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, logging_level=logging.ERROR)
    seed_everything(seed=args.seed)
    if args.dataset == "criteo":  # its convert_to_bucket preprocess lives in this subclass
        from fuxictr.datasets.criteo import CustomizedFeatureProcessor as FeatureProcessor
    feature_encoder = FeatureProcessor(**params)
    params["train_data"], params["valid_data"], params["test_data"] = build_dataset(
        feature_encoder, **params
    )
    feature_map = FeatureMap(dataset_id, os.path.join(data_root, dataset_id))
    feature_map.load(os.path.join(data_root, dataset_id, "feature_map.json"), params)

    model = model_class(feature_map, **params)
    os.makedirs(model.model_dir, exist_ok=True)  # FuxiCTR's set_logger would create it
    num_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    train_gen, valid_gen = RankDataLoader(feature_map, stage="train", **params)
    timer = EpochTimer(model)
    t0 = time.perf_counter()
    model.fit(train_gen, validation_data=valid_gen, **params)
    fit_seconds = time.perf_counter() - t0

    valid_result = model.evaluate(valid_gen)
    test_gen = RankDataLoader(feature_map, stage="test", **params)
    test_result = model.evaluate(test_gen)

    epochs_run = len(timer.epoch_seconds)
    train_seconds = sum(timer.epoch_seconds) - sum(timer.eval_seconds)
    train_rows = train_gen.num_samples
    config = {k: params[k] for k in params if k not in NOT_CONFIG}
    config["bars_expid"] = bars["bars_expid"]
    config["bars_embedding_dim"] = 10
    config["embedding_initializer"] = "normal(std=1e-4), padding row 0 left at 0"
    config["linear_init"] = "xavier_normal_ weight, zero bias"
    deviations = [
        f"embedding_dim {args.embedding_dim} (BARS 10)",
        f"epochs {args.epochs} (BARS 100)",
    ]
    if args.dataset == "criteo":
        deviations.append("I1..I13 log^2-bucketed categorical (BARS criteo_x1: numeric)")
    if args.batch_size != 4096:
        deviations.append(f"batch_size {args.batch_size} (BARS 4096)")
    if args.patience != 2:
        deviations.append(f"early_stop_patience {args.patience} (BARS 2)")
    if args.no_lr_plateau:
        deviations.append("no lr x0.1 on plateau (BARS: x0.1)")
    record = {
        "model": args.model,
        "seed": args.seed,
        "deviations_from_bars": deviations,
        "dataset": DATASETS[args.dataset]["about"],
        "config": config,
        "num_params": num_params,
        "vocab_sizes": {f: feature_map.features[f]["vocab_size"] for f in fields},
        "val_auc": float(valid_result["AUC"]),
        "val_logloss": float(valid_result["logloss"]),
        "test_auc": float(test_result["AUC"]),
        "test_logloss": float(test_result["logloss"]),
        "epochs_run": epochs_run,
        "best_epoch": timer.best_epoch,
        "val_auc_per_epoch": [round(v, 6) for v in timer.val_auc],
        "lr_after_epoch": timer.lr_after,
        "fit_seconds": round(fit_seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "eval_seconds": round(sum(timer.eval_seconds), 2),
        "train_rows": train_rows,
        "train_samples_per_s": round(train_rows * epochs_run / train_seconds, 1),
        "throughput_note": (
            "train_rows x epochs_run / train_seconds, where train_seconds = wall time of "
            "FuxiCTR's train_epoch calls minus the per-epoch validation evaluation inside them; "
            "it includes FuxiCTR's Ray-backed parquet batch iteration (a full random_shuffle per "
            "epoch) and the regularization term over the full embedding tables each step. "
            "CPU only, torch threads as recorded, another process shares the machine: "
            "indicative only."
        ),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "ray_num_cpus": args.ray_cpus,
        "versions": {
            "fuxictr": fuxictr.__version__,
            "torch": torch.__version__,
            "ray": ray.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "model_src": model_src,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{args.dataset}.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    summary = ("model", "seed", "test_auc", "test_logloss", "epochs_run", "train_samples_per_s")
    print(json.dumps({k: record[k] for k in summary}))


if __name__ == "__main__":
    main()
