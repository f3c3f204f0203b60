"""Phase 1: the bookstore as one program, a modular monolith, to measure the services against.

A **modular monolith** is one process and one database, cut inside into modules with the
same boundaries the services have: users, catalog, inventory, payment, orders. Each module
keeps its own tables and its own store class, and the others call it through that class,
never through its tables. What changes is only what sits *between* the modules:

* **A call between modules** is a function call here, in microseconds; between services it is
  an RPC: serialisation, a socket, a server thread, and on a real network a round trip.
* **Placing an order** is ONE local ACID transaction here: all of it commits, or none. The
  services have four databases, so no transaction spans them: a saga with compensations.
* **A failure** is an exception caught with ``try``/``except``, and the rollback undoes
  everything; between services it is a status code per hop, and compensations undo.
* **A crash** takes down everything here at once; a crashed service takes down one
  capability, and the rest keeps answering.
* **Deploying and scaling** happen to the whole program here; services go alone, each as
  often and as wide as it needs.

This package *reuses* the services' code rather than copying it: the same domain rules
(``bookstore.domain``), the same stores with the same tables (``bookstore.services.*.store``),
the same order validation and pricing (``bookstore.services.order.flow``), the same login
(``bookstore.services.user.servicer``), and the gateway's HTTP contract (its JSON schemas,
JWT check, error bodies and uvicorn set-up). So a client, a load test or a notebook talks
to either with the same code, and what differs between them is exactly the architecture.
The stores open a transaction per method for the services; each has a small ``*_in(session,
...)`` seam that does the same work inside a transaction the caller owns, which is how the
monolith runs four modules' writes as one transaction (``checkout``).

One difference is visible in the API: an order that the stock or the card refuses. The
services store it REJECTED and answer 201 with its reason (their saga had already written
the order and had to undo the steps before). The monolith's transaction rolls back: nothing
is written, and the answer is 409 with the same reason. No order row, no reservation, no
payment row: there is nothing to compensate because nothing happened.

**When a modular monolith is the right choice:** one team, or a few that release together;
a domain whose boundaries are still moving (moving a function between modules is a refactor,
moving it between services is a migration); load that one machine, or a few identical copies
behind a load balancer, can carry; and whenever strong consistency across modules is worth
more than independent deployment. Start here, keep the module boundaries clean (no module
reads another's tables), and the split into services stays possible.

**When not:** teams that block each other's releases; parts with very different scaling
needs (a catalogue read a thousand times per order) or different reliability needs (a
search index that may fail without taking checkout with it); parts that need another
runtime. Those are the reasons to pay the microservice tax that week 6 measures.

The modules: ``modules`` (one database, the five stores), ``checkout`` (an order in one
transaction), ``app`` (the HTTP API, the gateway's), ``__main__`` (the process),
``launcher`` (start and stop that process like a service), ``tax`` (measure an order journey
against this process and the services alike).
"""
