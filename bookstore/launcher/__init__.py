"""The launcher: what starts, drives and loads a whole bookstore from a notebook or a test.

``cluster.Cluster`` starts the services as OS processes (``inprocess`` runs them as threads
of the caller), with their databases, broker and telemetry backends; ``traffic``, ``load``
and ``locust`` send work at a running bookstore. It knows every part of the house, so it
stands on top of them all; nothing below imports it (the process runtime is
``bookstore.platform``)."""
