"""The data layer: models, engine helpers, Alembic migrations and the legacy CSV importer.

Nothing in this package imports Flask, so Alembic, the importer and the tests use it
without an application.
"""
