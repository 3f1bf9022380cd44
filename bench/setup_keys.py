"""The key the benchmark sends: a virtual key made through ``/key/generate``, or the master key.

The virtual key's limits are far above anything a benchmark reaches, so the numbers include
the cost of checking rpm, tpm and budget on every request without any request being refused.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping

BENCH_KEY_REQUEST = {
    "key_alias": "bench",
    "max_budget": 1_000_000,
    "rpm_limit": 100_000_000,
    "tpm_limit": 10_000_000_000,
}


def create_bench_key(
    base_url: str,
    master_key: str,
    timeout: float = 10.0,
    fields: Mapping[str, object] = BENCH_KEY_REQUEST,
) -> str:
    """POST ``/key/generate`` with the master key (and ``fields``: the bench key's limits by
    default) and return the new key.

    Falls back to the master key (with a note) while the gateway has no ``/key/generate``
    (404); any other failure raises ``RuntimeError``.
    """
    request = urllib.request.Request(
        base_url.rstrip("/") + "/key/generate",
        data=json.dumps(dict(fields)).encode(),
        headers={"Authorization": f"Bearer {master_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            print(
                "note: the gateway has no /key/generate yet (404); benchmarking with the "
                "master key, so no virtual-key limits are checked"
            )
            return master_key
        detail = exc.read().decode(errors="replace")[:300]
        raise RuntimeError(f"/key/generate answered HTTP {exc.code}: {detail}") from exc
    key = body.get("key") if isinstance(body, dict) else None
    if not isinstance(key, str) or not key:
        raise RuntimeError(f"/key/generate answered without a key: {str(body)[:300]}")
    return key
