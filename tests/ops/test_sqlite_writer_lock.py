"""SQLite transactions take turns on ``<database>-writer.lock`` (identity_console/sqlite/base.py)."""

import copy
import fcntl
import os
import threading
import time

import pytest
from django.db import connection, connections, transaction

from exchange.models import SharedCacheEntry

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend's own behaviour"),
]


@pytest.fixture
def lock_file():
    """A descriptor of the lock file of the test database, and whether it is locked right now."""
    descriptor = os.open(connection.settings_dict["NAME"] + "-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def locked():
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return False

    yield descriptor, locked
    os.close(descriptor)


def write(key):
    SharedCacheEntry.objects.create(key=key, value=1, expires=time.time() + 60)


def test_a_transaction_holds_the_lock_from_begin_to_commit(lock_file):
    _, locked = lock_file
    assert not locked()
    with transaction.atomic():
        assert locked()
        write("a")
        with transaction.atomic():  # a savepoint: no second BEGIN, same lock
            write("b")
        assert locked()
    assert not locked()
    assert SharedCacheEntry.objects.filter(key__in=["a", "b"]).count() == 2


def test_rollback_and_close_release_the_lock(lock_file):
    _, locked = lock_file
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        write("c")
        assert locked()
        1 / 0
    assert not locked() and not SharedCacheEntry.objects.filter(key="c").exists()
    transaction.set_autocommit(False)  # a transaction Django's atomic() does not manage
    connection._start_transaction_under_autocommit()
    assert locked()
    connection.close()
    assert not locked()


def test_a_second_writer_waits_for_the_first_to_commit(lock_file):
    """Another connection (thread) begins only once the first has committed, and both rows are there."""
    _, locked = lock_file
    order = []
    first_began = threading.Event()

    def second():
        try:
            first_began.wait(5)
            with transaction.atomic():
                order.append("second began")
                write("second")
        finally:
            connections["default"].close()

    thread = threading.Thread(target=second)
    thread.start()
    with transaction.atomic():
        first_began.set()
        write("first")
        time.sleep(0.3)  # the other thread is waiting at the lock file meanwhile
        order.append("first commits")
    thread.join(30)
    assert order == ["first commits", "second began"]
    assert set(SharedCacheEntry.objects.values_list("key", flat=True)) >= {"first", "second"}


def test_a_holder_that_never_lets_go_costs_a_wait_not_a_deadlock(lock_file, monkeypatch):
    """Past the database's timeout the transaction begins anyway; SQLite's own locks still decide."""
    descriptor, _ = lock_file
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "timeout", 0.3)
    fcntl.flock(descriptor, fcntl.LOCK_EX)  # e.g. a stuck process that locked the file and writes nothing
    try:
        started = time.monotonic()
        with transaction.atomic():
            write("anyway")
        assert 0.3 <= time.monotonic() - started < 10
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
    assert SharedCacheEntry.objects.filter(key="anyway").exists()


def test_an_in_memory_database_uses_no_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict["NAME"] = ":memory:"
    memory = type(connections["default"])(settings_dict, alias="memory")
    memory.cursor().execute("CREATE TABLE t (x)")
    memory._start_transaction_under_autocommit()
    memory.cursor().execute("INSERT INTO t VALUES (1)")
    memory._commit()
    assert memory._lock_fd is None and not memory._holds_lock and not list(tmp_path.iterdir())
    memory._close()


def test_checkpoints_run_after_the_lock_is_released(lock_file, monkeypatch):
    """Every CHECKPOINT_EVERY transactions, a PASSIVE checkpoint, with the other writers free to go on."""
    from identity_console.sqlite import base

    _, locked = lock_file
    wrapper = type(connections["default"])
    real_checkpoint, calls = wrapper._checkpoint, []

    def checkpoint(self):
        calls.append(locked())
        real_checkpoint(self)

    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 3)
    monkeypatch.setattr(wrapper, "_checkpoint", checkpoint)
    connections["default"]._commits = 0
    for i in range(7):
        with transaction.atomic():
            write(f"k{i}")
    assert calls == [False, False]
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == base.SAFETY_CHECKPOINT_PAGES


def test_a_failing_checkpoint_does_not_undo_or_fail_the_commit(lock_file, monkeypatch, caplog):
    from identity_console.sqlite import base

    monkeypatch.setattr(base, "CHECKPOINT_EVERY", 1)
    monkeypatch.setattr(base, "CHECKPOINT_SQL", "SELECT * FROM no_such_table")
    with transaction.atomic():
        write("kept")
    assert SharedCacheEntry.objects.filter(key="kept").exists()
    assert "checkpoint failed" in caplog.text
