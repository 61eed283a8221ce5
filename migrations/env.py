"""Alembic environment: runs migrations online against the URL `migrations.upgrade` passes in.

One transaction per migration: 0003 builds indexes CONCURRENTLY outside any transaction, and a
failure there must leave the earlier migrations committed and recorded.
"""

from alembic import context
from sqlalchemy import pool

import db

config = context.config


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "migrations.upgrade(url) sets sqlalchemy.url"
    engine = db.create_database_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
