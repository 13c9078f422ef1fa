"""Embedding modules: the mixed-dimension table and the supernets searches train."""

from embsearch.embeddings.mixed_dim import MixedDimEmbedding

__all__ = ["MixedDimEmbedding"]
