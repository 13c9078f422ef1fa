"""Supernets: embedding modules that play every candidate of a space with shared weights,
in front of any backbone (``[batch, fields] -> [batch, fields, width]``).

- :class:`AutoDimSupernet`: shared max-width table, per-candidate projection and batch
  norm, Gumbel-softmax architecture weights per (field, group) (AutoDim);
- :class:`AutoEmbSupernet`: the same branches mixed by per-field controller networks fed by the id's
  frequency (AutoEmb);
- :class:`DNISSupernet`: a width-wide table scaled by a learnable [0, 1] mask per
  (field, frequency group) (DNIS).

Each has ``arch_parameters()``, ``weight_parameters()``, ``fix(cand)`` (play one
discretised sub-network) and ``export(plan)`` (that sub-network as a ``MixedDimEmbedding``).
"""

from embsearch.embeddings.supernets._shared import CandidateBranches, GroupedTable, MixedSupernet
from embsearch.embeddings.supernets.autodim_supernet import AutoDimSupernet
from embsearch.embeddings.supernets.autoemb_supernet import AutoEmbSupernet
from embsearch.embeddings.supernets.dnis_supernet import DNISSupernet

__all__ = [
    "AutoDimSupernet",
    "AutoEmbSupernet",
    "CandidateBranches",
    "DNISSupernet",
    "GroupedTable",
    "MixedSupernet",
]
