"""The operations database holds addresses and balances: its folder and files are private
to the user running the worker, whatever the umask."""

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from tools.database import DATABASE_FILE, connect, ensure_database


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_state_folder_is_0700_and_the_database_files_0600(tmp_path: Path) -> None:
    path = tmp_path / "state" / DATABASE_FILE
    previous = os.umask(0o022)  # the usual default, which made them 0755 and 0644
    try:
        ensure_database(path)
        with closing(connect(path)) as db:  # the -wal and -shm files exist while it is open
            db.execute("SELECT COUNT(*) FROM customers").fetchone()
            files = {suffix: Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")}
            assert {suffix: mode(file) for suffix, file in files.items()} == {
                "": 0o600, "-wal": 0o600, "-shm": 0o600
            }  # fmt: skip
    finally:
        os.umask(previous)
    assert mode(path.parent) == 0o700


def test_a_world_readable_database_of_an_earlier_version_is_made_private(
    tmp_path: Path,
) -> None:
    path = tmp_path / DATABASE_FILE
    with closing(sqlite3.connect(path)):
        pass
    path.chmod(0o644)
    ensure_database(path)
    assert mode(path) == 0o600
