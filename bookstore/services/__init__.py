"""The six bookstore services, one folder each, each run as its own OS process.

Every folder holds the same parts: ``store.py`` (the service's own database, SQLAlchemy),
``servicer.py`` (thin: request -> domain -> response, errors -> status codes) and
``__main__.py`` (``python -m bookstore.services.<name>`` serves it).
"""
