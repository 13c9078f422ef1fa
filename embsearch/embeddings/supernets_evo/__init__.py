"""Supernets of the evolutionary controllers (OptEmbed, RULE): one max-width table whose
candidates keep the first ``d`` columns of each (field, group) block."""

from embsearch.embeddings.supernets_evo._masked import (
    SAMPLINGS,
    MaskedSupernetEmbedding,
    MaskedTable,
)
from embsearch.embeddings.supernets_evo.optembed_supernet import OptEmbedEmbedding
from embsearch.embeddings.supernets_evo.rule_supernet import RuleEmbedding

__all__ = [
    "SAMPLINGS",
    "MaskedSupernetEmbedding",
    "MaskedTable",
    "OptEmbedEmbedding",
    "RuleEmbedding",
]
