"""The ledger's sliding 60 s windows: requests (rpm) and settled tokens (tpm) of one account.

Admissions within one ``MERGE_S`` slot share an entry, which leaves the window 60 s after its
latest member: a request is counted at most ``MERGE_S`` longer than 60 s, never shorter, so a
limit holds in every true 60 s window, and a window keeps at most 6,000 entries whatever the
rate (see ``memory.py``'s docstring).
"""

from __future__ import annotations

import heapq
from collections import deque

WINDOW_SECONDS = 60.0
# Admissions within one slot of this many seconds share a window entry.
MERGE_S = 0.01


class RequestWindow:
    """Admission times in order: per entry its latest time and number of requests (an
    entry's slot is its latest time's: ``int(time / MERGE_S)``)."""

    __slots__ = ("counts", "times", "total", "until")

    def __init__(self) -> None:
        self.times: deque[float] = deque()
        self.counts: deque[int] = deque()
        self.total = 0  # sum of counts
        # Where the newest entry's slot ends: one comparison per admission decides whether
        # it joins that entry (an earlier time, from a clock stepped back, joins it too:
        # counted longer, never shorter).
        self.until = 0.0

    def clear(self) -> None:
        self.times.clear()
        self.counts.clear()
        self.total = 0

    def record(self, now: float) -> None:
        times = self.times
        if times and now < self.until:
            if now > times[-1]:
                times[-1] = now
            self.counts[-1] += 1
        else:
            times.append(now)
            self.counts.append(1)
            self.until = (int(now / MERGE_S) + 1) * MERGE_S
        self.total += 1

    def count(self, now: float) -> int:
        """Requests in the window at ``now`` (older entries are dropped)."""
        times = self.times
        cutoff = now - WINDOW_SECONDS
        while times and times[0] <= cutoff:
            times.popleft()
            self.total -= self.counts.popleft()
        return self.total

    def reset(self, now: float, limit: int) -> float:
        """Seconds until the window has room for one more request (0 if it has now); with
        room already, until the oldest request leaves (when ``remaining`` next grows)."""
        count = self.count(now)
        if not count:
            return 0.0
        # Admission needs count - k < limit: the (count - limit)-th oldest must leave first.
        index = max(0, count - limit)
        seen = 0
        for at, members in zip(self.times, self.counts, strict=True):
            seen += members
            if seen > index:
                return at + WINDOW_SECONDS - now
        return self.times[-1] + WINDOW_SECONDS - now  # not reached: index < count


class TokenWindow:
    """Settled tokens per admission slot (``[latest admitted_at, tokens]``) and a min-heap
    of the slots in use: settles arrive out of admission order, the oldest leaves first."""

    __slots__ = ("entries", "slots", "total")

    def __init__(self) -> None:
        self.entries: dict[int, list[float]] = {}
        self.slots: list[int] = []
        self.total = 0  # sum of the entries' tokens

    def clear(self) -> None:
        self.entries.clear()
        self.slots.clear()
        self.total = 0

    def record(self, admitted_at: float, tokens: int) -> None:
        slot = int(admitted_at / MERGE_S)
        entry = self.entries.get(slot)
        if entry is None:
            self.entries[slot] = [admitted_at, tokens]
            heapq.heappush(self.slots, slot)
        else:
            if admitted_at > entry[0]:
                entry[0] = admitted_at
            entry[1] += tokens
        self.total += tokens

    def settled(self, now: float) -> int:
        """Settled tokens in the window at ``now`` (older entries are dropped)."""
        heap = self.slots
        entries = self.entries
        cutoff = now - WINDOW_SECONDS
        while heap and entries[heap[0]][0] <= cutoff:
            self.total -= int(entries.pop(heapq.heappop(heap))[1])
        return self.total

    def oldest(self) -> float | None:
        """The admission time of the oldest entry, None when empty."""
        return self.entries[self.slots[0]][0] if self.slots else None

    def retry_after(self, excess: int, now: float, reserved: int) -> float:
        """Seconds until enough settled tokens leave the window to fit ``excess`` more."""
        freed = 0
        for admitted_at, tokens in sorted(self.entries.values()):
            freed += int(tokens)
            # An empty window admits any request, however large.
            if freed >= excess or (freed == self.total and not reserved):
                return admitted_at + WINDOW_SECONDS - now
        return 1.0  # only in-flight reservations are in the way; they settle soon
