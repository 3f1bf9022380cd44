"""Sentence embeddings for the semantic cache: L2-normalised float32 rows, so a dot product
is the cosine similarity.

- :class:`LocalEmbedder` runs WordLlama (``l2_supercat``, 256 dimensions, 16 MB of weights
  shipped inside the ``wordllama`` package; no torch, no download). It is loaded strictly
  from the package's own folder with downloads disabled and the model hubs told to stay
  offline, so it never touches the network.
- :class:`GatewayEmbedder` asks an embedding deployment through the gateway (billed like any
  call), given the callable the cache stage supplies.

Measured on the dev machine: WordLlama embeds a one-sentence prompt in ~0.12 ms and a 1 KB
prompt in ~1.1 ms. Short inputs are embedded on the event loop (a thread hop costs about as
much); anything longer than ``inline_chars`` goes to the embedder's one worker thread, so
a long prompt never stalls the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from wordllama.inference import WordLlamaInference  # type: ignore[import-untyped]

__all__ = ["Embedder", "GatewayEmbedder", "LocalEmbedder", "Vectors", "normalise"]

Vectors = npt.NDArray[np.float32]
"""One row per text, float32, each row of unit length (or all zeros for an empty text)."""

# The hub clients read these; set before wordllama (and its tokenizers / huggingface_hub
# imports) so that no code path can reach for a model hub.
_OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dimensions`` columns."""

    @property
    def dimensions(self) -> int: ...

    async def embed(self, texts: list[str]) -> Vectors: ...


def normalise(rows: npt.ArrayLike) -> Vectors:
    """Rows scaled to unit length as float32; a zero row (an empty text) stays zero."""
    array = np.asarray(rows, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array of embeddings, got shape {array.shape}")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    np.maximum(norms, np.float32(1e-12), out=norms)
    return np.ascontiguousarray(array / norms, dtype=np.float32)


class LocalEmbedder:
    """WordLlama on this machine. Build it with :meth:`load` (blocking: ~0.8 s of imports and
    file reads) or :meth:`open` from a running loop; :meth:`close` stops its worker thread."""

    __slots__ = ("_executor", "_inline_chars", "_model")

    def __init__(self, model: WordLlamaInference, *, inline_chars: int = 256) -> None:
        self._model = model
        self._inline_chars = inline_chars
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    @classmethod
    def load(cls, *, inline_chars: int = 256) -> LocalEmbedder:
        """Load WordLlama from the weights inside the installed ``wordllama`` package."""
        for name, value in _OFFLINE_ENV.items():
            os.environ.setdefault(name, value)
        root = logging.getLogger()
        handlers, level = list(root.handlers), root.level
        # wordllama.inference calls logging.basicConfig(level=INFO) on import: undo that, the
        # gateway owns its logging configuration.
        import wordllama  # type: ignore[import-untyped]
        from wordllama import WordLlama

        root.handlers[:] = handlers
        root.setLevel(level)
        package = Path(wordllama.__file__).parent
        model = WordLlama.load(
            config="l2_supercat", dim=256, cache_dir=package, disable_download=True
        )
        return cls(model, inline_chars=inline_chars)

    @classmethod
    async def open(cls, *, inline_chars: int = 256) -> LocalEmbedder:
        """:meth:`load` off the event loop."""
        return await asyncio.to_thread(cls.load, inline_chars=inline_chars)

    @property
    def dimensions(self) -> int:
        return int(self._model.embedding.shape[1])

    def embed_sync(self, texts: list[str]) -> Vectors:
        """Embed on the calling thread (benchmarks, offline tools)."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        return normalise(self._model.embed(texts, norm=False))

    async def embed(self, texts: list[str]) -> Vectors:
        if sum(len(text) for text in texts) <= self._inline_chars:
            return self.embed_sync(texts)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, texts)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


EmbedCall = Callable[[list[str]], Awaitable[Sequence[Sequence[float]]]]
"""Embeddings from a deployment, e.g. one ``/v1/embeddings`` call through the gateway."""


class GatewayEmbedder:
    """Embeddings from an embedding deployment, through the gateway so they are billed."""

    __slots__ = ("_call", "_dimensions")

    def __init__(self, call: EmbedCall, dimensions: int) -> None:
        self._call = call
        self._dimensions = dimensions

    @property
    def dimensions(self) -> int:
        return self._dimensions

    async def embed(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dimensions), dtype=np.float32)
        rows = await self._call(texts)
        vectors = normalise(rows)
        if vectors.shape != (len(texts), self._dimensions):
            raise ValueError(
                f"the embedding deployment returned shape {vectors.shape}, "
                f"expected {(len(texts), self._dimensions)}"
            )
        return vectors
