"""Load an export directory (written by :func:`embsearch.export.export_run`) back into torch.

:func:`~embsearch.embeddings.mixed_dim.load_embedding` rebuilds the mixed-dimension table
alone; :func:`load_model` adds the trained backbone that ``model.json`` names. Neither
imports the search runner, a controller or the search engine: an exported table loads
with the embedding, backbone and plan modules only (an import-linter contract in
``pyproject.toml`` keeps it so).
"""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from embsearch._atomic import read_json
from embsearch.backbones import ARCHITECTURE_KEY, CTRModel, make_backbone, plan_backbone_params
from embsearch.embeddings.mixed_dim import load_embedding


def load_model(directory: str | Path) -> CTRModel:
    """The whole exported model: the table (:func:`load_embedding`) and the backbone."""
    directory = Path(directory)
    emb = load_embedding(directory)
    meta = read_json(directory / "model.json")
    params = meta.get("backbone_params", {})  # absent from exports before issue 19
    # a plan whose network was searched (AutoIAS) needs a backbone that rebuilds it
    architecture = read_json(directory / "plan.json").get("extra", {}).get(ARCHITECTURE_KEY)
    backbone = make_backbone(
        meta["backbone"],
        meta["num_fields"],
        meta["width"],
        params=plan_backbone_params(meta["backbone"], params, architecture),
    )
    backbone.load_state_dict(load_file(str(directory / "backbone.safetensors")))
    return CTRModel(emb, backbone)
