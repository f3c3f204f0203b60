"""The inventory service: stock levels, and the reservations an order holds against them.

**Reservations.** An order does not take books off the shelf at once: the saga that places
it first *reserves* them. A reservation moves copies out of the available stock and records
which order holds them, so the copies can be handed back if a later step (payment, say)
fails. Handing them back is ``ReleaseStock``, the compensating action of ``ReserveStock``.

**All or nothing.** An order for three books either reserves all three or none of them. The
store does the whole reservation in one database transaction and lowers each stock with a
conditional UPDATE (``... SET available = available - :n WHERE available >= :n``): the
database checks and writes in one step, so two buyers of the last copy can never both get
it. If any item is short, the transaction rolls back and nothing is written.

**Idempotency keys.** Networks lose replies, so callers retry. The order id is the
idempotency key: the first ReserveStock for an order does the work, every repeat with the
same items gets the same answer and changes nothing. A repeat with *different* items is a
caller bug and is refused. A ReleaseStock that overtakes its ReserveStock (the reserve timed
out on the caller's side and is still in flight) leaves a RELEASED tombstone, so the late
reserve is refused instead of holding stock for an order that was already undone.

When not to copy this: a shop with many warehouses or expiring holds (a ticket held for ten
minutes) needs reservations with a deadline and a sweeper; this course keeps them explicit.
"""
