"""The ledger's sliding 60 s windows: requests (rpm) and settled tokens (tpm) of one account.

Admissions within one ``MERGE_S`` slot share an entry, which leaves the window 60 s after its
latest member: a request is counted at most ``MERGE_S`` longer than 60 s, never shorter, so a
limit holds in every true 60 s window, and a window keeps at most 6,000 entries whatever the
rate (see ``memory.py``'s docstring).

Entries live in typed arrays (``array.array``: one buffer per column), oldest first, with the
index of the first entry still in the window: no Python object per entry. A hot key's window
made one entry every 10 ms, each a float, ints and a list (or deque slots) that lived 60 s:
~1 MB per busy key, made all through a burst, so after ``make bench``'s 1,000-connection rows
they were most of the live objects left in the memory arenas the burst had opened (a scan of
the process's arenas). An array's buffer is one block, given back when the window empties;
admit + settle also cost 26% less (``bench.micro``'s ledger row).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left

WINDOW_SECONDS = 60.0
# Admissions within one slot of this many seconds share a window entry.
MERGE_S = 0.01
# Entries that left the window are cut from the arrays' front in one move once they are this
# many and at least half of the arrays (amortised: each entry is moved at most once or twice).
_CUT_AT = 512


class RequestWindow:
    """Admission times in order: per entry its latest time and number of requests (an
    entry's slot is its latest time's: ``int(time / MERGE_S)``). Entries before ``head``
    have left the window."""

    __slots__ = ("counts", "head", "times", "total", "until")

    def __init__(self) -> None:
        self.times: array[float] = array("d")
        self.counts: array[int] = array("q")
        self.head = 0
        self.total = 0  # sum of the counts from head on
        # Where the newest entry's slot ends: one comparison per admission decides whether
        # it joins that entry (an earlier time, from a clock stepped back, joins it too:
        # counted longer, never shorter).
        self.until = 0.0

    def __len__(self) -> int:
        """Entries in the window (as of the last ``count``)."""
        return len(self.times) - self.head

    def clear(self) -> None:
        self.times = array("d")
        self.counts = array("q")
        self.head = 0
        self.total = 0

    def record(self, now: float) -> None:
        times = self.times
        if len(times) > self.head and now < self.until:
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
        head = self.head
        end = len(times)
        cutoff = now - WINDOW_SECONDS
        if head < end and times[head] <= cutoff:
            counts = self.counts
            while head < end and times[head] <= cutoff:
                self.total -= counts[head]
                head += 1
            if head == end:
                self.clear()
            elif head >= _CUT_AT and 2 * head >= end:
                del times[:head]
                del counts[:head]
                self.head = 0
            else:
                self.head = head
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
        times = self.times
        counts = self.counts
        for i in range(self.head, len(times)):
            seen += counts[i]
            if seen > index:
                return times[i] + WINDOW_SECONDS - now
        return times[-1] + WINDOW_SECONDS - now  # not reached: index < count


class TokenWindow:
    """Settled tokens per admission slot, in slot order: the slot, its latest admission
    time and its tokens. Settles arrive out of admission order: one whose slot is not the
    newest is merged into its entry or inserted in place (near the end, as a rule)."""

    __slots__ = ("head", "slots", "times", "tokens", "total")

    def __init__(self) -> None:
        self.slots: array[int] = array("q")
        self.times: array[float] = array("d")
        self.tokens: array[int] = array("q")
        self.head = 0
        self.total = 0  # sum of the tokens from head on

    def __len__(self) -> int:
        """Entries in the window (as of the last ``settled``)."""
        return len(self.slots) - self.head

    def clear(self) -> None:
        self.slots = array("q")
        self.times = array("d")
        self.tokens = array("q")
        self.head = 0
        self.total = 0

    def record(self, admitted_at: float, tokens: int) -> None:
        slot = int(admitted_at / MERGE_S)
        slots = self.slots
        end = len(slots)
        if end == self.head or slot > slots[-1]:
            slots.append(slot)
            self.times.append(admitted_at)
            self.tokens.append(tokens)
        else:
            at = end - 1 if slot == slots[-1] else bisect_left(slots, slot, self.head)
            if slots[at] == slot:
                if admitted_at > self.times[at]:
                    self.times[at] = admitted_at
                self.tokens[at] += tokens
            else:
                slots.insert(at, slot)
                self.times.insert(at, admitted_at)
                self.tokens.insert(at, tokens)
        self.total += tokens

    def settled(self, now: float) -> int:
        """Settled tokens in the window at ``now`` (older entries are dropped)."""
        times = self.times
        head = self.head
        end = len(times)
        cutoff = now - WINDOW_SECONDS
        if head < end and times[head] <= cutoff:
            tokens = self.tokens
            while head < end and times[head] <= cutoff:
                self.total -= tokens[head]
                head += 1
            if head == end:
                self.clear()
            elif head >= _CUT_AT and 2 * head >= end:
                del self.slots[:head]
                del times[:head]
                del tokens[:head]
                self.head = 0
            else:
                self.head = head
        return self.total

    def oldest(self) -> float | None:
        """The admission time of the oldest entry, None when empty."""
        return self.times[self.head] if len(self.times) > self.head else None

    def retry_after(self, excess: int, now: float, reserved: int) -> float:
        """Seconds until enough settled tokens leave the window to fit ``excess`` more."""
        freed = 0
        times = self.times
        tokens = self.tokens
        # Slot order is time order: an entry's time lies within its slot.
        for i in range(self.head, len(times)):
            freed += tokens[i]
            # An empty window admits any request, however large.
            if freed >= excess or (freed == self.total and not reserved):
                return times[i] + WINDOW_SECONDS - now
        return 1.0  # only in-flight reservations are in the way; they settle soon
