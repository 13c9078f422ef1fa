"""Export a run's mixed-dimension table so plain torch can load it.

Export directory::

    plan.json             the Plan (groups: contiguous id ranges per field, with dims)
    weights.safetensors   one tensor per block ``emb.<field>.<group>`` [rows, dim] (plan/2:
                          ``emb.<field>.<group>.<part>``, see the README's table kinds) and one
                          per projection ``proj.<field>.<dim>`` [dim, width]; their bytes, in
                          their real dtypes, add up to exactly ``plan.table_bytes``
    backbone.safetensors  the trained backbone (``model.json`` names it, its parameters
                          ``backbone_params``, its bytes, the width and the field count)
    torchrec.json         with ``--format torchrec``: TorchRec ``EmbeddingBagConfig`` fields (row
                          count and dtype per table; QR and MEmCom blocks listed as unsupported)
    vocab/                the dataset's vocabularies (raw value of every id), when it has them
    plan.row_maps.safetensors  with learned ``pruned`` blocks (OptEmbed): the id -> row maps
                          ``Plan.load`` reads (``row_maps.py``); the same tensors as the
                          ``emb.<field>.<group>.map`` in weights.safetensors, which lookups use

Loading with plain torch + safetensors (no embsearch): for field ``f`` and id ``i``, find
the group ``g`` whose ``start <= i < stop``, take row ``i - start`` of ``emb.f.g``; if its
dim ``d`` is below ``width``, multiply by ``proj.f.d`` (or zero-pad when the plan's
``projection`` is ``"pad"``). With embsearch, :func:`embsearch.load_export.load_model`
(table + backbone) and ``MixedDimEmbedding.load`` (the table) read it back without
importing the runner or any controller; both names stay importable from here.

``out`` is checked before anything is read (a symbolic link, a file, a directory holding
files or an unwritable location is refused in one line); the files are staged in a hidden
sibling directory and renamed into place only where nothing was put meanwhile, so an
export never overwrites anything and two exports to one ``out`` cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from embsearch._atomic import follow_umask, staged_dir, write_json
from embsearch.backbones import (
    ARCHITECTURE_KEY,
    CTRModel,
    dense_bytes,
    make_backbone,
    plan_backbone_params,
)
from embsearch.blocks import COLUMNWISE
from embsearch.embeddings.mixed_dim import MixedDimEmbedding
from embsearch.embeddings.mixed_dim import load_embedding as load_embedding  # re-exported
from embsearch.errors import RunDirError
from embsearch.load_export import load_model as load_model  # re-exported
from embsearch.out_dir import check_out_dir
from embsearch.plan import Plan
from embsearch.run_config import RunConfig
from embsearch.run_dir import load_run

FORMATS = ("safetensors", "torchrec")


def export_run(
    run_dir: str | Path,
    out: str | Path,
    fmt: str = "safetensors",
    *,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the export directory for ``run_dir``; returns ``out``. ``warn`` hears of
    staging that killed processes left beside ``out`` (removed)."""
    if fmt not in FORMATS:
        raise RunDirError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    out = check_out_dir(out)
    cfg, plan, state = load_run(run_dir)
    # the plan's searched network (AutoIAS), recorded in model.json for load_model
    params = plan_backbone_params(
        cfg.backbone, cfg.backbone_params, plan.extra.get(ARCHITECTURE_KEY)
    )
    model = CTRModel(
        MixedDimEmbedding(plan),
        make_backbone(cfg.backbone, len(plan.fields), plan.width, params=params),
    )
    try:
        model.load_state_dict(state)
    except RuntimeError:  # shapes or names differ: one of the two files was edited or swapped
        raise RunDirError(
            f"{Path(run_dir) / 'model.pt'} does not match its plan.json (was either edited?); "
            f"`embsearch retrain {run_dir}` trains the plan again"
        ) from None
    tensors = {k: v.contiguous() for k, v in model.embedding.block_tensors().items()}
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())  # real dtypes
    if nbytes != plan.table_bytes:
        raise RuntimeError(f"export holds {nbytes} B but the plan counts {plan.table_bytes} B")
    try:
        _write_export(out, cfg, plan, model, tensors, fmt, warn, params)
    except FileExistsError:
        raise RunDirError(
            f"{out} was created or filled by another process during the export; nothing of "
            "it was touched, choose another --out"
        ) from None
    return out


def _write_export(
    out: Path,
    cfg: RunConfig,
    plan: Plan,
    model: CTRModel,
    tensors: dict[str, Any],
    fmt: str,
    warn: Callable[[str], None] | None,
    params: dict[str, Any],
) -> None:
    with staged_dir(out, warn=warn) as tmp:
        plan.save(tmp / "plan.json")
        save_file(tensors, str(tmp / "weights.safetensors"), metadata={"format": plan.format})
        save_file(
            {k: v.contiguous() for k, v in model.backbone.state_dict().items()},
            str(tmp / "backbone.safetensors"),
        )
        for name in ("weights.safetensors", "backbone.safetensors"):
            follow_umask(tmp / name)  # safetensors writes 0600: readable by a serving user
        write_json(
            tmp / "model.json",
            {
                "backbone": cfg.backbone,
                "backbone_params": params,
                "backbone_bytes": dense_bytes(model.backbone),
                "width": plan.width,
                "num_fields": len(plan.fields),
            },
        )
        if fmt == "torchrec":
            tables = torchrec_tables(plan)
            write_json(tmp / "torchrec.json", tables)
            if "unsupported_note" in tables and warn is not None:
                warn(tables["unsupported_note"])
        if cfg.data != "synthetic":  # the dataset's vocabularies, when it has them
            from embsearch.data.vocab import copy_vocab

            vocab = copy_vocab(cfg.data, tmp, [(f.name, f.rows) for f in plan.fields])
            for path in [vocab, *vocab.rglob("*")] if vocab else []:
                follow_umask(path)  # copytree keeps the source's modes (older data: 0600)


def torchrec_tables(plan: Plan) -> dict[str, Any]:
    """One TorchRec ``EmbeddingBagConfig`` per (field, group) block TorchRec can express
    (``full``; ``hash`` and ``pruned`` with their id transform applied before the lookup),
    as plain JSON fields; ``unsupported`` names the blocks it cannot (QR, MEmCom: a lookup
    combines two tables; int8c/int4c: TorchRec's integer tables scale each row, not each
    column) and ``unsupported_note`` says so in one line."""
    tables, unsupported = [], []
    for f in plan.fields:
        for g, grp in enumerate(f.groups):
            spec = plan.block_spec(f, g)
            if grp.dim == 0:
                continue
            if spec.kind in ("qr", "memcom"):
                unsupported.append(f"emb.{f.name}.{g} ({spec.kind})")
                continue
            if spec.precision in COLUMNWISE:
                unsupported.append(f"emb.{f.name}.{g} ({spec.precision}: column-wise scales)")
                continue
            table = {
                "name": f"emb.{f.name}.{g}",
                "num_embeddings": {"hash": spec.m, "pruned": spec.kept}.get(spec.kind, grp.rows),
                "embedding_dim": grp.dim,
                "feature_names": [f"{f.name}.{g}" if len(f.groups) > 1 else f.name],
                "pooling": "SUM",
                "data_type": {"fp32": "FP32", "fp16": "FP16", "int8": "INT8"}[spec.precision],
                "id_range": [grp.start, grp.stop],
            }
            if spec.kind == "hash":
                table["id_transform"] = f"((({spec.a} * id + {spec.b}) % 2147483647) % {spec.m})"
            if spec.kind == "pruned":
                table["id_transform"] = (
                    f"map[id] from weights.safetensors emb.{f.name}.{g}.map; -1: zero"
                )
            tables.append(table)
    projections = [
        {
            "name": f"proj.{f.name}.{d}",
            "field": f.name,
            "tables": [f"emb.{f.name}.{g}" for g, grp in enumerate(f.groups) if grp.dim == d],
            "shape": [d, plan.width],
        }
        for f in plan.fields
        for d in sorted({g.dim for g in f.groups if 0 < g.dim < plan.width})
    ]
    reach = (
        "multiply it by the [dim, width] tensor named under 'projections' (in weights.safetensors)"
        if plan.projection == "linear"
        else "zero-pad it on the right (projection 'pad': no weights)"
    )
    out: dict[str, Any] = {
        "tables": tables,
        "width": plan.width,
        "projection": plan.projection,
        "projections": projections if plan.projection == "linear" else [],
        "note": "Build with torchrec.EmbeddingBagCollection(tables=[EmbeddingBagConfig(**{k: v for k, v in t.items() "
        "if k != 'id_range'}) ...]); ids of a grouped field go to feature '<field>.<group>' as id - id_range[0]. "
        f"The backbone takes every field at width {plan.width}: where a table's embedding_dim is "
        f"smaller, {reach}.",
    }
    if unsupported:
        out["unsupported"] = unsupported
        out["unsupported_note"] = (
            f"TorchRec cannot express {len(unsupported)} block(s) of this plan: "
            f"{', '.join(unsupported)}; weights.safetensors holds them (README: table kinds)"
        )
    return out
