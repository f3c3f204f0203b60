"""The bookstore's domain: plain data, validation rules and typed errors, with no I/O.

Services translate between protobuf messages and these types at their edges, so the rules
here can be unit-tested without a network, a database or a clock.
"""
