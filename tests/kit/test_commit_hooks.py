"""Commit hooks wake background workers: only a transaction that wrote may wake them.

An idle worker finding its queue empty commits a transaction that wrote nothing; if that woke
the other workers of the process, they would wake it back, and an idle service would spin.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text, update

from hallpass_kit.db import Database

metadata = MetaData()
job = Table("job", metadata, Column("id", Integer, primary_key=True), Column("done", Integer))


def _database(tmp_path: Path) -> tuple[Database, list[int]]:
    database = Database(f"sqlite:///{tmp_path / 'jobs.db'}")
    metadata.create_all(database.engine)
    woken: list[int] = []
    database.on_commit(lambda: woken.append(1))
    return database, woken


def test_a_transaction_that_only_selected_wakes_nobody(tmp_path: Path) -> None:
    database, woken = _database(tmp_path)

    with database.session() as session:
        session.execute(select(job).where(job.c.done == 0)).all()

    assert woken == []


def test_an_insert_update_or_raw_statement_wakes_the_workers(tmp_path: Path) -> None:
    database, woken = _database(tmp_path)

    with database.session() as session:
        session.execute(insert(job).values(id=1, done=0))
    with database.session() as session:
        session.execute(update(job).values(done=1))
    with database.session() as session:
        session.execute(text("DELETE FROM job"))

    assert woken == [1, 1, 1]


def test_a_transaction_rolled_back_wakes_nobody(tmp_path: Path) -> None:
    database, woken = _database(tmp_path)

    try:
        with database.session() as session:
            session.execute(insert(job).values(id=1, done=0))
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass

    assert woken == []
