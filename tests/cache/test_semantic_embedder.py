"""Embedders: WordLlama loads offline from its package and yields unit rows; long prompts
are embedded off the event loop; a deployment's embeddings are normalised."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from proxy.cache.semantic import GatewayEmbedder, LocalEmbedder

ROOT = Path(__file__).resolve().parents[2]

# Any socket use raises: the audit hook runs before the connection or DNS lookup is made.
NO_NETWORK = """
import sys

def refuse(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        raise RuntimeError(f"network access: {event} {args!r}")

sys.addaudithook(refuse)

from proxy.cache.semantic import LocalEmbedder

embedder = LocalEmbedder.load()
vectors = embedder.embed_sync(["How do I reverse a list in Python?"])
print(vectors.shape, round(float((vectors[0] ** 2).sum()), 4))
"""


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    embedder = LocalEmbedder.load()
    yield embedder
    embedder.close()


def test_local_embedder_loads_and_embeds_without_the_network(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "TRANSFORMERS_", "HUGGINGFACE_"))
    }
    env |= {"HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", NO_NETWORK],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 256) 1.0"
    assert not (tmp_path / ".cache").exists()


def test_rows_are_unit_float32(embedder: LocalEmbedder) -> None:
    vectors = embedder.embed_sync(["a short prompt", "another, longer prompt about lists", ""])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, embedder.dimensions)
    norms = np.linalg.norm(vectors, axis=1)
    assert norms[:2] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert norms[2] == pytest.approx(0.0, abs=1e-6) or norms[2] == pytest.approx(1.0, abs=1e-5)


def test_embedding_is_deterministic(embedder: LocalEmbedder) -> None:
    text = "Summarize the Q3 financial report in 3 bullet points"
    assert np.array_equal(embedder.embed_sync([text]), embedder.embed_sync([text]))


async def test_async_embed_of_short_and_long_prompts_matches_sync(
    embedder: LocalEmbedder,
) -> None:
    short = "How do I reverse a list in Python?"
    long = "The parcel was marked delivered but nobody received it. " * 20  # > 1 KB
    assert np.array_equal(await embedder.embed([short]), embedder.embed_sync([short]))
    assert np.array_equal(await embedder.embed([long]), embedder.embed_sync([long]))


async def test_local_embedder_can_be_opened_from_the_event_loop() -> None:
    embedder = await LocalEmbedder.open()
    try:
        assert (await embedder.embed(["hi"])).shape == (1, 256)
    finally:
        embedder.close()


async def test_gateway_embedder_normalises_the_deployments_vectors() -> None:
    calls: list[list[str]] = []

    async def call(texts: list[str]) -> Sequence[Sequence[float]]:
        calls.append(texts)
        return [[3.0, 4.0], [0.0, 2.0]]

    embedder = GatewayEmbedder(call, dimensions=2)
    vectors = await embedder.embed(["a", "b"])
    assert calls == [["a", "b"]]
    assert vectors.dtype == np.float32
    assert vectors.tolist() == [pytest.approx([0.6, 0.8]), pytest.approx([0.0, 1.0])]
    assert (await embedder.embed([])).shape == (0, 2)


async def test_gateway_embedder_refuses_vectors_of_the_wrong_size() -> None:
    async def call(texts: list[str]) -> Sequence[Sequence[float]]:
        return [[1.0, 0.0, 0.0]]

    with pytest.raises(ValueError, match="expected"):
        await GatewayEmbedder(call, dimensions=2).embed(["a"])
