"""Admin changes made by one process reach every other one within milliseconds.

Each source announces "record X of table T changed" (never a value); ``Follower`` re-reads the
record from the shared store and puts it into this process's ``Directory`` (or drops it), so
a key created on one replica authenticates on the others, and a deleted or blocked one stops
working everywhere.

- ``postgres``: with the PostgreSQL store, the store's triggers ``NOTIFY`` every change at
  commit; each process ``LISTEN``s on a dedicated connection.
- ``redis``: with SQLite and Redis (several workers on one machine sharing one SQLite file),
  each admin write is published on a Redis channel that every worker subscribes to.

``start_following`` picks the source; nothing here is imported when neither is configured.
"""
