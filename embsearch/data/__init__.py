"""Datasets: schema, prepared arrays, batches, the synthetic generator and readers."""

from embsearch.data.dataset import SPLITS, Dataset, Split
from embsearch.data.schema import FieldSpec, Schema
from embsearch.data.synthetic import make_synthetic

__all__ = ["SPLITS", "Dataset", "FieldSpec", "Schema", "Split", "make_synthetic"]
