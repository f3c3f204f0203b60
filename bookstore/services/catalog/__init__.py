"""The catalog service: the books on sale, read-mostly, looked up by id, page or search.

What it owns: the ``books`` table (title, author, ISBN, price), seeded once from
``books.py``. The order service asks it for prices with one BatchGetBooks call per order,
never one GetBook per line: each RPC costs a network round trip, so a service boundary
invites batch APIs (the "N+1 calls" problem is the N+1 query problem with a network in it).

Why its own service: reads of the catalogue dwarf writes, so it scales out on its own
(more replicas, caches) without touching orders or payments. Because nothing else changes
books, every replica may seed its own copy, and a stale read costs little.

When not to split this way: stock levels are not here. They change on every order and need
a transaction of their own, so they live in the inventory service. Putting a fast-changing
number beside slow-changing descriptions would make every replica of the catalogue pay for
the locking the stock needs.
"""
