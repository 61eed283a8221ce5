"""Database URLs as people write them: the plain `postgresql://` form names the installed driver, and a
driver that is not installed stops the command with one line (no database is reached)."""

from __future__ import annotations

import db
from archive.cli import main


def test_a_plain_postgresql_url_names_the_installed_driver():
    assert db.database_url("postgresql://archive:s3cr%40t@db.example:5432/photonranch?sslmode=require") == (
        "postgresql+psycopg2://archive:s3cr%40t@db.example:5432/photonranch?sslmode=require"
    )
    assert db.database_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert db.database_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert db.database_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


def test_a_url_naming_a_driver_that_is_not_installed_stops_the_cli_with_one_line(capsys):
    url = "postgresql+psycopg://archive:SECRET@127.0.0.1:1/photonranch"
    assert main(["migrate", "--database-url", url]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: database URL names the driver 'postgresql+psycopg', whose module 'psycopg' is not installed; "
        "use postgresql:// (or postgresql+psycopg2://)"
    ]
