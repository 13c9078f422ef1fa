"""Supernets: embedding modules that play every candidate of a space with shared weights,
in front of any backbone (``[batch, fields] -> [batch, fields, width]``), all over the one
joint max-width table (:class:`~embsearch.embeddings.joint_table.GroupedTable`). By
structure:

- **mixtures** (trained by first-order DARTS, ``mixture.py``): per-candidate branches of
  the table mixed by architecture weights. :class:`AutoDimSupernet` (per-candidate
  projection and batch norm, Gumbel-softmax weights per (field, group); AutoDim) and
  :class:`AutoEmbSupernet` (the same branches mixed by per-field controller networks fed
  by the id's frequency; AutoEmb). Each has ``arch_parameters()``,
  ``weight_parameters()``, ``fix(cand)`` and ``export(plan)``.
- **soft mask**: :class:`DNISSupernet`, the table scaled by a learnable [0, 1] mask per
  (field, frequency group) (DNIS), trained the same way.
- **masked** (weight sharing, sampled candidates, ``masked.py``): a candidate keeps the
  first ``d`` columns of each (field, group) block; any candidate is scored with the
  inherited weights (the :class:`MaskedTable` protocol). :class:`MaskedSupernet` (the
  black-box controllers'), :class:`OptEmbedSupernet` (with row pruning; OptEmbed) and
  :class:`RuleSupernet` (column blocks with a diversity term; RULE, NIS), and
  :class:`GrowingSupernet` (a dim per id, raised by a controller; ESAPN).
"""

from embsearch.embeddings.joint_table import GroupedTable
from embsearch.embeddings.supernets.autodim_supernet import AutoDimSupernet
from embsearch.embeddings.supernets.autoemb_supernet import AutoEmbSupernet
from embsearch.embeddings.supernets.dnis_supernet import DNISSupernet
from embsearch.embeddings.supernets.growing import GrowingSupernet
from embsearch.embeddings.supernets.masked import SAMPLINGS, MaskedSupernet, MaskedTable
from embsearch.embeddings.supernets.mixture import CandidateBranches, MixedSupernet
from embsearch.embeddings.supernets.optembed_supernet import OptEmbedSupernet
from embsearch.embeddings.supernets.rule_supernet import RuleSupernet

__all__ = [
    "SAMPLINGS",
    "AutoDimSupernet",
    "AutoEmbSupernet",
    "CandidateBranches",
    "DNISSupernet",
    "GroupedTable",
    "GrowingSupernet",
    "MaskedSupernet",
    "MaskedTable",
    "MixedSupernet",
    "OptEmbedSupernet",
    "RuleSupernet",
]
