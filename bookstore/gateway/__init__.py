"""The API gateway: the one door between the outside world and the services behind it.

Browsers, mobile apps and ``curl`` speak HTTP and JSON; the services speak gRPC to each
other. The gateway stands at the edge and does the jobs that belong there, once, so that no
service has to repeat them:

* **One public entry point.** Clients learn one address and one API (``/openapi.json``);
  how many services sit behind it, on which ports, in how many replicas, stays private and
  free to change.
* **Authentication at the edge.** The gateway checks the caller's JWT (signature, algorithm,
  expiry) locally, then passes a plain ``user_id`` inward. Services trust that id and never
  parse tokens themselves.
* **Routing.** ``/books`` goes to the catalog service, ``/orders`` to the order service,
  ``/auth`` to the user service.
* **Protocol translation.** JSON bodies become protobuf requests; gRPC status codes become
  HTTP statuses (``NOT_FOUND`` -> 404, ``UNAVAILABLE`` -> 503 with ``Retry-After``, ...);
  every call carries a deadline, so a hung service costs a client at most that long.
* **Input validation at the shape level.** Sizes, ranges and encodings are checked before
  anything travels further, so garbage costs a 422 here and not a stack trace deep inside.

When not to put logic here: business rules (is there stock? may this user order that?),
joins across services, or anything that needs a database. A gateway that grows such
logic becomes a second monolith that every team must change in lock step. Keep it thin:
check, route, translate. If a client needs data combined from several services, ask first
whether one service should own that answer.

Construct the app with :func:`bookstore.gateway.app.create_app`; run it as a process with
``python -m bookstore.gateway``.
"""
