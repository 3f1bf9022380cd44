"""SemanticIndex: candidates per context, threshold, agreement, LRU bound and TTL."""

from __future__ import annotations

import numpy as np
import pytest

from proxy.cache.semantic import SemanticIndex, normalise


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unit(*values: float) -> np.ndarray:
    return normalise([list(values)])[0]


A = unit(1, 0, 0)
NEAR_A = unit(1, 0.1, 0)  # cosine 0.995 with A
B = unit(0, 1, 0)


def test_lookup_finds_a_similar_agreeing_prompt_in_the_same_context() -> None:
    index = SemanticIndex(3)
    index.add(A, "ctx", "k1", "how do I reverse a list")
    found = index.lookup(NEAR_A, "how can I reverse a list", "ctx", 0.9)
    assert found is not None
    assert found[0] == "k1"
    assert found[1] == pytest.approx(0.995, abs=1e-3)


def test_lookup_ignores_other_contexts() -> None:
    index = SemanticIndex(3)
    index.add(A, "ctx-1", "k1", "reverse a list")
    assert index.lookup(A, "reverse a list", "ctx-2", 0.9) is None


def test_lookup_ignores_entries_below_the_threshold() -> None:
    index = SemanticIndex(3)
    index.add(B, "ctx", "k1", "reverse a list")
    assert index.lookup(A, "reverse a list", "ctx", 0.5) is None


def test_lookup_skips_a_closer_entry_that_disagrees() -> None:
    index = SemanticIndex(3)
    index.add(A, "ctx", "order-1243", "refund order 1243")
    index.add(NEAR_A, "ctx", "order-1234", "refund order 1234")
    found = index.lookup(A, "refund order 1234", "ctx", 0.9)
    assert found is not None
    assert found[0] == "order-1234"


def test_lookup_returns_the_most_similar_agreeing_entry() -> None:
    index = SemanticIndex(3)
    index.add(NEAR_A, "ctx", "near", "reverse a list")
    index.add(A, "ctx", "exact", "reverse a list")
    assert index.lookup(A, "reverse a list", "ctx", 0.9) == ("exact", pytest.approx(1.0))


def test_least_recently_used_entry_is_evicted_past_max_entries() -> None:
    index = SemanticIndex(3, max_entries=2)
    index.add(A, "ctx", "k1", "first prompt")
    index.add(B, "ctx", "k2", "other prompt")
    assert index.lookup(A, "first prompt", "ctx", 0.9) is not None  # k1 now most recent
    index.add(unit(0, 0, 1), "ctx", "k3", "third prompt")
    assert len(index) == 2
    assert "k1" in index
    assert "k2" not in index
    assert index.lookup(B, "other prompt", "ctx", 0.9) is None


def test_entries_expire_after_their_ttl() -> None:
    clock = FakeClock()
    index = SemanticIndex(3, clock=clock)
    index.add(A, "ctx", "short", "a prompt", ttl=10)
    index.add(B, "ctx", "forever", "a prompt")
    clock.now += 9.9
    assert index.lookup(A, "a prompt", "ctx", 0.9) == ("short", pytest.approx(1.0))
    clock.now += 0.2
    assert index.lookup(A, "a prompt", "ctx", 0.9) is None
    assert "short" not in index
    assert index.lookup(B, "a prompt", "ctx", 0.9) == ("forever", pytest.approx(1.0))


def test_expired_entry_is_evicted_before_a_live_one() -> None:
    clock = FakeClock()
    index = SemanticIndex(3, max_entries=2, clock=clock)
    index.add(A, "ctx", "live", "a prompt")
    index.add(B, "ctx", "expiring", "b prompt", ttl=1)
    clock.now += 2
    index.add(unit(0, 0, 1), "ctx", "new", "c prompt")
    assert "live" in index
    assert "expiring" not in index


def test_delete_and_clear() -> None:
    index = SemanticIndex(3)
    index.add(A, "ctx", "k1", "a prompt")
    index.add(B, "ctx", "k2", "b prompt")
    assert index.delete("k1")
    assert not index.delete("k1")
    assert index.lookup(A, "a prompt", "ctx", 0.9) is None
    assert index.lookup(B, "b prompt", "ctx", 0.9) is not None
    index.clear()
    assert len(index) == 0
    assert index.lookup(B, "b prompt", "ctx", 0.9) is None


def test_adding_an_existing_key_replaces_it() -> None:
    index = SemanticIndex(3)
    index.add(A, "ctx", "k1", "a prompt")
    index.add(B, "ctx", "k1", "b prompt")
    assert len(index) == 1
    assert index.lookup(A, "a prompt", "ctx", 0.9) is None
    assert index.lookup(B, "b prompt", "ctx", 0.9) == ("k1", pytest.approx(1.0))


def test_many_entries_survive_removals_in_the_middle() -> None:
    rng = np.random.default_rng(7)
    vectors = normalise(rng.standard_normal((200, 16)))
    index = SemanticIndex(16)
    for i, vector in enumerate(vectors):
        index.add(vector, "ctx", f"k{i}", f"prompt {i}")
    for i in range(0, 200, 3):
        index.delete(f"k{i}")
    for i, vector in enumerate(vectors):
        found = index.lookup(vector, f"prompt {i}", "ctx", 0.99)
        assert found == (None if i % 3 == 0 else (f"k{i}", pytest.approx(1.0, abs=1e-5)))


def test_a_vector_of_the_wrong_size_is_refused() -> None:
    index = SemanticIndex(3)
    with pytest.raises(ValueError, match="3 dimensions"):
        index.add(unit(1, 0), "ctx", "k", "p")
