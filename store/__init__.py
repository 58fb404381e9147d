"""The review desk's store: every assessment, its review state and an append-only audit trail.

SQLAlchemy 2 models (:mod:`store.models`) with Alembic migrations packaged in
``store/migrations`` and run on open (:func:`store.db.open_store`); one schema for SQLite (the
default, a file) and PostgreSQL (a department). Writes are idempotent by ``assessment_id``
(:func:`store.assessments.upsert_assessments`): at-least-once delivery leaves exactly one row.
Imports run one way: the command line, the web and the Kafka sink (:mod:`streams.sink`) use
this package; it uses :mod:`optimiser.assessment` and nothing above it (no Kafka, no streams).
"""

from __future__ import annotations

from store.db import Store, open_store, resolve_url

__all__ = ["Store", "open_store", "resolve_url"]
