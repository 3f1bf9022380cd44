"""The load generator for the rows above one user: ``wrk`` (Debian's ``wrk``, C, epoll).

Locust (Python, one core) tops out near 6-7k req/s here, below the bare fake upstream, so
above one user it measured itself: the 32-user req/s and the 1,000-connection tail were the
client's. wrk sends the same bodies at a small fraction of the CPU per request, so the
server, not the client, is the bottleneck. Its latency is the whole response (a stream's last
byte; wrk does not see the first), with microsecond resolution; one user rows stay on locust
for the stream's time to first byte.

A Lua script sets the method, headers and body (or, for ``BENCH_VARY``, a unique body per
request) and writes the summary as JSON from ``done()``: requests, duration, each error
counter (connect, read, write, non-2xx status, timeout) and a grid of latency percentiles.
``make bench`` installs wrk when it is missing (``apt-get install -y wrk``).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson

from bench.payloads import CHAT_BODY, STREAM_BODY, chat_body

# Percentiles written by the script (wrk's ``latency:percentile(p)``, µs), and max.
_GRID = (50.0, 90.0, 99.0, 99.9, 99.99)
# A request slower than this is counted as a timeout and its latency is not recorded, so it
# is far above any tail we report; wrk's default (2 s) would hide the 1,000-connection tail.
TIMEOUT_S = 20

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. {key}
local vary = {vary}
local head, tail = {head}, {tail}
if not vary then wrk.body = head .. tail end
local counter = 0
local run = tostring(os.time())
request = vary and function()
  counter = counter + 1
  return wrk.format(nil, nil, nil, head .. " (wrk " .. run .. "-" .. counter .. ")" .. tail)
end or nil
function done(summary, latency, requests)
  local e = summary.errors
  local f = io.open({out}, "w")
  f:write(string.format(
    '{{"requests":%d,"duration_us":%d,"errors":{{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}},"mean_us":%f,"max_us":%d,"percentiles_us":{{',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max))
  local grid = {{{grid}}}
  for i, p in ipairs(grid) do
    if i > 1 then f:write(",") end
    f:write(string.format('"%s":%d', tostring(p), latency:percentile(p)))
  end
  f:write("}}}}")
  f:close()
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str | bytes) -> str:
    text = value.decode() if isinstance(value, bytes) else value
    return "[==[" + text + "]==]"


def script(key: str, body: bytes, out: Path, vary: bool) -> str:
    """The Lua script for one run. With ``vary``, the user turn of ``body`` gets a unique
    marker per request (so no cache can answer it), as ``BENCH_VARY`` does for locust."""
    if vary:
        # Split the body just after the last user message's text, where the marker goes.
        marker = b'"}],"max_tokens"'
        cut = body.rindex(marker)
        head, tail = body[:cut], body[cut:]
    else:
        head, tail = body, b""
    return _SCRIPT.format(
        key=_lua_string(key),
        vary="true" if vary else "false",
        head=_lua_string(head),
        tail=_lua_string(tail),
        out=_lua_string(str(out)),
        grid=", ".join(repr(p) for p in _GRID),
    )


def body_for(scenario: str, extra_env: dict[str, str] | None) -> bytes:
    """The body locust would send for ``scenario`` with the same client environment."""
    env = extra_env or {}
    stream = scenario == "stream"
    prompt = int(env.get("BENCH_PROMPT_BYTES", "0"))
    chunks = int(env.get("BENCH_STREAM_CHUNKS", "0"))
    if prompt or chunks:
        return chat_body(stream=stream, prompt_bytes=prompt, stream_chunks=chunks)
    return STREAM_BODY if stream else CHAT_BODY


def run_wrk(
    *,
    scenario: str,
    users: int,
    seconds: int,
    url: str,
    key: str,
    work: Path,
    tag: str,
    cpus: set[int] | None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One bounded wrk run; returns a summary row in ``bench.report.summarise``'s shape
    (requests, errors, rps, mean, p50, p90, p99, p99.9 in ms) plus ``max`` and the error
    counters by kind."""
    out = work / f"wrk-{tag}.json"
    lua = work / f"wrk-{tag}.lua"
    vary = (extra_env or {}).get("BENCH_VARY") == "1"
    lua.write_text(script(key, body_for(scenario, extra_env), out, vary))
    threads = max(1, min(users, len(cpus) if cpus else 1))
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{users}",
        f"-d{seconds}s",
        f"--timeout={TIMEOUT_S}s",
        "-s",
        str(lua),
        url,
    ]
    with open(work / f"wrk-{tag}.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            if cpus is not None:
                os.sched_setaffinity(process.pid, cpus)
            process.wait(timeout=seconds + TIMEOUT_S + 30)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
    if not out.exists():
        log_text = (work / f"wrk-{tag}.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"wrk run {tag} wrote no results; its log:\n{log_text}")
    raw: dict[str, Any] = orjson.loads(out.read_bytes())
    return summary_row(raw)


def summary_row(raw: dict[str, Any]) -> dict[str, Any]:
    """wrk's JSON summary (see the script's ``done``) as a report row (ms)."""
    seconds = raw["duration_us"] / 1e6 or math.nan
    errors: dict[str, int] = raw["errors"]
    pct = {float(k): v / 1000 for k, v in raw["percentiles_us"].items()}
    requests = int(raw["requests"])
    return {
        "requests": requests,
        "errors": sum(errors.values()),
        "error_kinds": {k: v for k, v in errors.items() if v},
        "rps": requests / seconds,
        "mean": raw["mean_us"] / 1000,
        "p50": pct[50.0],
        "p90": pct[90.0],
        "p99": pct[99.0],
        "p99.9": pct[99.9],
        "p99.99": pct[99.99],
        "max": raw["max_us"] / 1000,
    }
