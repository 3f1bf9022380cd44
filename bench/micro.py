"""``make bench-micro``: µs per operation of each hot-path stage, on the real code.

Each number is the best of several ``timeit`` repeats (the least disturbed by the machine),
for one call of the stage on a typical input. They are single-core, in-process costs: what a
stage adds to a request's CPU time, not to its latency under load.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import time
import timeit
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import orjson

from bench.micro_server import server_stages
from bench.micro_store import store_stages
from proxy.auth import Authenticator, hash_key
from proxy.config import LiteLLMParams, ModelEntry, ModelInfo, RouterSettings
from proxy.dialects.openai import forward_body, parse
from proxy.estimate import prompt_token_bound
from proxy.ledger.memory import Ledger, Limits
from proxy.pricing import PriceOverrides, PriceTable, cost, worst_case_cost
from proxy.request import Kind
from proxy.routing import Router
from proxy.server.settings import Settings
from proxy.upstream.providers import build_deployment
from proxy.upstream.sse import SSERelay
from proxy.usage import usage_from_body

RESULTS = Path(__file__).resolve().parent / "results"
MASTER_KEY = "sk-bench-master"


def chat_body_1kb() -> bytes:
    """A chat request of about 1 KB: a system prompt, a short exchange and a question."""
    messages = [
        {
            "role": "system",
            "content": "You are a careful assistant for a logistics company. "
            "Answer in plain English, cite the policy section you rely on, and never invent "
            "shipment numbers. If you are unsure, say so and suggest who to ask instead.",
        },
        {
            "role": "user",
            "content": "My parcel 4471-AB was marked delivered yesterday but "
            "nobody at the address received it. What are my options?",
        },
        {
            "role": "assistant",
            "content": "I am sorry to hear that. Under section 4.2 you can "
            "open a missing-delivery claim within 14 days; the carrier then checks the GPS "
            "proof of delivery and the photo taken at the door.",
        },
        {
            "role": "user",
            "content": "How long does the claim take, and do I need to file a "
            "police report first? The parcel held a laptop worth about 900 euros, and the seller "
            "says I should talk to the carrier, while the carrier says to talk to the seller. "
            "Who is actually responsible here, and what should I write in the claim?",
        },
    ]
    body = orjson.dumps(
        {
            "model": "bench-model",
            "messages": messages,
            "temperature": 0.2,
            "max_tokens": 256,
            "user": "customer-8812",
        }
    )
    return body


def stream_chunks(n: int = 8) -> list[bytes]:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": {"content": "tok "}, "finish_reason": None}],
    }
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [],
        "usage": {"prompt_tokens": 250, "completion_tokens": n, "total_tokens": 250 + n},
    }
    events = [b"data: " + orjson.dumps(chunk) + b"\n\n" for _ in range(n)]
    events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def deployments(count: int) -> list[Any]:
    settings = Settings()
    router_settings = RouterSettings()
    return [
        build_deployment(
            i,
            ModelEntry(
                model_name="bench-model",
                litellm_params=LiteLLMParams(
                    model=f"openai/bench-model-{i}",
                    api_base=f"http://127.0.0.1:{9000 + i}/v1",
                    api_key="sk-upstream",
                ),
                model_info=ModelInfo(input_cost_per_token=1e-6, output_cost_per_token=2e-6),
            ),
            router_settings,
            settings,
        )
        for i in range(count)
    ]


def measure(func: Callable[[], object], ops_per_call: int = 1, repeat: int = 5) -> float:
    """Best-of-``repeat`` µs per operation."""
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(number, 10)
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number / ops_per_call * 1e6


def stages() -> list[tuple[str, str, Callable[[], object], int]]:
    """(stage, case, callable, operations per call)."""
    out: list[tuple[str, str, Callable[[], object], int]] = []

    body = chat_body_1kb()
    parsed = parse(Kind.CHAT, body)
    stream_parsed = parse(Kind.CHAT, body[:-1] + b',"stream":true}')

    def rewrite() -> bytes:
        parsed.fields = None  # forward_body caches the shallow decode on the request
        return forward_body(parsed, "bench-model-v2")

    def rewrite_stream() -> bytes:
        stream_parsed.fields = None
        return forward_body(stream_parsed, "bench-model")

    out += [
        ("parse", f"parse() chat body {len(body)} B", lambda: parse(Kind.CHAT, body), 1),
        ("parse", "forward_body() model rewrite", rewrite, 1),
        ("parse", "forward_body() stream: add include_usage", rewrite_stream, 1),
        (
            "parse",
            "forward_body() unchanged (pass-through)",
            lambda: forward_body(parsed, "bench-model"),
            1,
        ),
    ]

    auth = Authenticator(MASTER_KEY)
    header = f"Bearer {MASTER_KEY}".encode()
    out.append(("auth", "authenticate() master key", lambda: auth.authenticate(header, None), 1))
    try:
        from proxy.store.sqlite import KeyRow

        virtual = "sk-bench-virtual-0123456789abcdef"
        keys = {hash_key(virtual): KeyRow(token_hash=hash_key(virtual), rpm_limit=10**8)}
        keyed = Authenticator(MASTER_KEY, keys)
        vheader = f"Bearer {virtual}".encode()
        out.append(
            (
                "auth",
                "authenticate() virtual key (1 key table)",
                lambda: keyed.authenticate(vheader, None),
                1,
            )
        )
    except (ImportError, TypeError) as exc:  # the key table's API is still moving
        print(f"skipped virtual-key authenticate: {exc}", file=sys.stderr)

    events = stream_chunks()
    content_chunk = events[0]
    usage_chunk = events[-2]

    def relay_content() -> bytes:
        return SSERelay(strip_usage_chunk=False).feed(content_chunk)

    def relay_usage() -> bytes:
        return SSERelay(strip_usage_chunk=True).feed(usage_chunk)

    def relay_stream() -> None:
        relay = SSERelay(strip_usage_chunk=False)
        for event in events:
            relay.feed(event)
        relay.finish()

    out += [
        ("sse relay", "feed() content chunk (new relay)", relay_content, 1),
        ("sse relay", "feed() usage chunk, stripped", relay_usage, 1),
        ("sse relay", f"per chunk over a {len(events)}-event stream", relay_stream, len(events)),
    ]

    single = Router(deployments(1))
    triple = Router(deployments(3))
    out += [
        ("router", "pick() 1 deployment", lambda: single.pick("bench-model"), 1),
        ("router", "pick() 3 deployments (shuffle)", lambda: triple.pick("bench-model"), 1),
    ]

    ledger = Ledger()
    limits = Limits(max_budget=1e9, rpm_limit=10**9, tpm_limit=10**12)
    accounts = ["key:bench", "user:bench", "team:bench"]
    for account in accounts:
        ledger.set_account(account, limits)
    counter = iter(range(10**12))

    def admit_settle() -> None:
        reservation = ledger.admit(f"r{next(counter)}", accounts, tokens=320, cost=0.0006)
        ledger.settle(reservation, cost=0.00027, tokens=270)

    out.append(("ledger", "admit()+settle() 3 accounts, rpm+tpm+budget", admit_settle, 1))
    for _ in range(3000):  # a window with entries, as under load
        admit_settle()
    out.append(
        (
            "ledger",
            "reply_view(): spend + x-ratelimit-* pairs (reply headers)",
            lambda: ledger.reply_view("key:bench"),
            1,
        )
    )
    big = chat_body_1kb() * 1000
    out += [
        ("estimate", "prompt_token_bound() 1 KB body", lambda: prompt_token_bound(body), 1),
        ("estimate", "prompt_token_bound() 1 MB body", lambda: prompt_token_bound(big), 1),
    ]

    table = PriceTable.load()
    overrides = PriceOverrides(input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    known = "openai/gpt-4o-mini" if "gpt-4o-mini" in table else next(iter(table.prices))
    price = table.lookup(known)

    def price_and_cost() -> float:
        found = table.lookup("openai/bench-model", overrides=overrides)
        return cost(found, prompt_tokens=250, completion_tokens=64)

    response = ANSWER
    out += [
        ("pricing", f"lookup({known!r}) cached", lambda: table.lookup(known), 1),
        ("pricing", "lookup() with overrides + cost()", price_and_cost, 1),
        (
            "pricing",
            "worst_case_cost()",
            lambda: worst_case_cost(price, prompt_tokens=1000, max_tokens=256),
            1,
        ),
        (
            "usage",
            f"usage_from_body() {len(response)} B response",
            lambda: usage_from_body(response),
            1,
        ),
    ]
    out += observe_stages()
    out += guardrail_stages(body)
    out += cache_stages(body, response)
    out += semantic_stages()
    out += server_stages()
    out += store_stages()
    return out


# A chat completion as the fake upstream answers it (60 words, usage included).
ANSWER = (
    b'{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,'
    b'"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant",'
    b'"content":"' + b"word " * 60 + b'"},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":250,"completion_tokens":64,"total_tokens":314}}'
)


def _sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the local cache never does) to its result,
    without an event loop: the stage's own cost, not the loop's."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the coroutine suspended")


def cache_stages(body: bytes, response: bytes) -> list[tuple[str, str, Callable[[], object], int]]:
    """The exact cache (``type: local``) on the 1 KB chat body: its key, and the whole
    around-call stage on a miss and on a hit, with a ``proceed`` that returns a canned reply
    at once (the pass-through body an OpenAI upstream gives: a miss decodes it to store it)."""
    from proxy.cache.config import CacheSettings
    from proxy.cache.key import cache_key
    from proxy.cache.stage import Cache
    from proxy.cache.store import LocalStore
    from proxy.dialects.openai.reply import encode_reply
    from proxy.pipeline.call import Call
    from proxy.upstream.engine import Reply

    parsed = parse(Kind.CHAT, body)
    usage = usage_from_body(response)
    settings = CacheSettings(type="local")

    def fresh_cache() -> tuple[Cache, LocalStore]:
        store = LocalStore(settings.max_bytes, time.time)
        return Cache(settings, store, time.time), store

    def call() -> Call:
        return Call("bench-uid", "bench-call", False)

    async def answer() -> Reply:
        return Reply(body=response, usage=usage)

    async def failed() -> Reply:  # status >= 300: the stage does not store it
        return Reply(status=502, body=b"{}")

    miss_cache, miss_store = fresh_cache()

    def miss_lookup() -> Reply:
        return _sync(miss_cache(call(), parsed, failed))

    def miss_store_too() -> Reply:
        reply = _sync(miss_cache(call(), parsed, answer))
        # Forget it again (two dict operations) so that the next call misses too.
        miss_store._entries.clear()
        miss_store._size = 0
        return reply

    hit_cache, _ = fresh_cache()
    _sync(hit_cache(call(), parsed, answer))
    assert len(hit_cache.store) == 1  # type: ignore[arg-type]

    def hit() -> Reply:
        reply = _sync(hit_cache(call(), parsed, answer))
        assert reply.typed is not None
        return reply

    def hit_encoded() -> bytes:
        reply = _sync(hit_cache(call(), parsed, answer))
        return encode_reply(reply.typed)

    return [
        ("cache", f"cache key, {len(body)} B chat body", lambda: cache_key(parsed, ":x:"), 1),
        ("cache", "cache miss, local, whole stage: lookup only", miss_lookup, 1),
        ("cache", "cache miss, local, whole stage: lookup+store", miss_store_too, 1),
        ("cache", "cache hit, local, whole stage (JSON)", hit, 1),
        ("cache", "cache hit, local, stage + encode_reply()", hit_encoded, 1),
    ]


def semantic_stages() -> list[tuple[str, str, Callable[[], object], int]]:
    """The semantic cache: WordLlama on one sentence, a lookup among 10k entries of one
    context (brute force + agree() on the best candidate), and agree() on a paraphrase."""
    import numpy as np

    from proxy.cache.semantic import LocalEmbedder, SemanticIndex, agree, normalise

    embedder = LocalEmbedder.load()
    sentence = "How do I reverse a list in Python?"
    index = SemanticIndex(embedder.dimensions, max_entries=10_000)
    rows = normalise(np.random.default_rng(1).standard_normal((10_000, embedder.dimensions)))
    for i, row in enumerate(rows):
        index.add(row, "ctx", f"k{i}", f"prompt number {i}")
    query = rows[1234]
    a = "Summarize the Q3 financial report in 3 bullet points"
    b = "Give me a summary of the third-quarter financial report in three bullet points"
    return [
        ("semantic", "embed 1 sentence", lambda: embedder.embed_sync([sentence]), 1),
        (
            "semantic",
            "lookup 10k entries",
            lambda: index.lookup(query, "prompt number 1234", "ctx", 0.87),
            1,
        ),
        ("semantic", "agree() pair", lambda: agree(a, b), 1),
        *semantic_miss_stages(embedder),
    ]


def semantic_miss_stages(embedder: Any) -> list[tuple[str, str, Callable[[], object], int]]:
    """A semantic miss (``type: local-semantic``) with 1k entries in the request's context:
    embed + index lookup, and the whole stage (exact lookup, last-turn split, embed, lookup).

    "unrelated": the 1k entries are random unit vectors, so nothing reaches the threshold.
    "near-duplicates": the 1k entries are the bench's BENCH_VARY prompts (the same question
    with another number), all above the threshold, each rejected by the agreement check:
    what ``BENCH_FEATURES=semantic-cache`` meets once its index has filled."""
    import numpy as np

    from bench.payloads import varied_body
    from proxy.cache.config import CacheSettings
    from proxy.cache.key import last_user_turn
    from proxy.cache.semantic import SemanticIndex, normalise
    from proxy.cache.semantic.layer import InMemory, SemanticCacheLayer
    from proxy.cache.stage import Cache
    from proxy.cache.store import LocalStore
    from proxy.pipeline.call import Call
    from proxy.upstream.engine import Reply

    entries = 1000
    settings = CacheSettings(type="local-semantic")
    query = parse(Kind.CHAT, varied_body())
    text, context = last_user_turn(query.chat())
    vector = embedder.embed_sync([text])[0]

    unrelated = SemanticIndex(embedder.dimensions, max_entries=10_000)
    rows = normalise(np.random.default_rng(2).standard_normal((entries, embedder.dimensions)))
    for i, row in enumerate(rows):
        unrelated.add(row, ":anonymous:" + context, f"k{i}", f"prompt number {i}")

    def call() -> Call:
        return Call("bench-uid", "bench-call", False)

    async def answer() -> Reply:
        return Reply(body=ANSWER)

    async def failed() -> Reply:  # status >= 300: not stored, so every call is the same miss
        return Reply(status=502, body=b"{}")

    near = SemanticIndex(embedder.dimensions, max_entries=10_000)
    layer = SemanticCacheLayer(embedder, InMemory(near), 0.87, None)
    cache = Cache(settings, LocalStore(settings.max_bytes, time.time), time.time, layer)
    for _ in range(entries):  # stored through the stage itself, as the bench's misses are
        _sync(cache(call(), parse(Kind.CHAT, varied_body()), answer))
    assert len(near) == entries
    best = float(np.max(near._groups[":anonymous:" + context].vectors[:entries] @ vector))
    print(f"(near-duplicate index: {entries} entries, best similarity {best:.3f})", file=sys.stderr)
    bare = SemanticIndex(embedder.dimensions)
    bare_layer = SemanticCacheLayer(embedder, InMemory(bare), 0.87, None)

    def remember() -> None:
        _sync(bare_layer.remember(call(), query, ":anonymous:", "k"))
        bare.clear()

    return [
        (
            "semantic",
            f"semantic miss: embed + lookup at {entries // 1000}k entries, unrelated",
            lambda: unrelated.lookup(
                embedder.embed_sync([text])[0], text, ":anonymous:" + context, 0.87
            ),
            1,
        ),
        (
            "semantic",
            f"semantic miss: embed + lookup at {entries // 1000}k near-duplicates",
            lambda: near.lookup(
                embedder.embed_sync([text])[0], text, ":anonymous:" + context, 0.87
            ),
            1,
        ),
        (
            "semantic",
            f"semantic miss, whole stage, lookup only, {entries // 1000}k near-dup.",
            lambda: _sync(cache(call(), query, failed)),
            1,
        ),
        ("semantic", "semantic store: remember() (embeds again) + add", remember, 1),
    ]


def observe_stages() -> list[tuple[str, str, Callable[[], object], int]]:
    """The ``otel`` sink's encoding of a settled call: its span and one attempt span."""
    from proxy.observe.event import AttemptEvent, CallEvent
    from proxy.observe.sinks.otel import build as build_otel

    sink = build_otel({}, None, {})  # type: ignore[arg-type]  # encoding only: no transport
    event = CallEvent(
        call_id="call-bench",
        request_id="req-bench",
        start_time=1_700_000_000.125,
        end_time=1_700_000_000.5,
        route="openai",
        kind="chat/completions",
        model_group="bench-model",
        deployment="openai/bench-model",
        provider="openai",
        status_code=200,
        key_alias="ci-bot",
        team_id="team-ml",
        prompt_tokens=250,
        completion_tokens=64,
        cost=0.00123,
        latency_ms=375.0,
        overhead_ms=0.42,
        attempts=[
            AttemptEvent(
                deployment="openai/bench-model",
                start_time=1_700_000_000.126,
                end_time=1_700_000_000.499,
                status=200,
                span_id="1111111111111111",
            )
        ],
    )
    return [("observe", "otel encode 1 call (2 spans)", lambda: sink.encode([event]), 1)]


def guardrail_stages(body: bytes) -> list[tuple[str, str, Callable[[], object], int]]:
    """The built-in guardrails on the texts of the 1 KB chat body."""
    from proxy.guardrails.base import CheckContext
    from proxy.guardrails.builtin.content_filter import ContentFilter
    from proxy.guardrails.builtin.injection import PromptInjection
    from proxy.guardrails.builtin.patterns import PREBUILTS

    texts = [m["content"] for m in orjson.loads(body)["messages"]]
    patterns = [
        {"pattern_type": "prebuilt", "pattern_name": name, "action": "MASK"} for name in PREBUILTS
    ]
    content = ContentFilter.from_params("bench", {"patterns": patterns}, Path("."))
    injection = PromptInjection.from_params("bench", {}, Path("."))
    size = sum(len(t) for t in texts)
    reply = " ".join(texts)
    chunks = [reply[i : i + 20] for i in range(0, len(reply), 20)]

    def stream() -> None:
        checker = content.stream_checker(CheckContext())
        for chunk in chunks:
            checker.feed(chunk)
        checker.finish()

    return [
        (
            "guardrail",
            f"content_filter {size} B all prebuilts",
            lambda: content.check(texts),
            1,
        ),
        ("guardrail", f"injection {size} B", lambda: [injection.score(t) for t in texts], 1),
        ("guardrail", "stream checker per 20-char chunk", stream, len(chunks)),
    ]


def main() -> int:
    rows = []
    print(f"{'stage':<10} {'case':<58} {'µs/op':>8}")
    print("-" * 78)
    for stage, case, func, ops in stages():
        micros = measure(func, ops)
        rows.append({"stage": stage, "case": case, "us_per_op": micros})
        print(f"{stage:<10} {case:<58} {micros:>8.2f}", flush=True)
    timestamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"micro-{timestamp}.json"
    path.write_bytes(
        orjson.dumps(
            {
                "timestamp": timestamp,
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
                "rows": rows,
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print(f"\nwritten: bench/results/{path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
