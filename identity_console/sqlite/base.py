"""Django's SQLite backend, with the writers of one database file taking turns through a lock file.

Under load, one gunicorn worker begins a write transaction (``BEGIN IMMEDIATE``) while another
holds SQLite's write lock. SQLite's busy handler then sleeps, 1 ms first, then 2, 5, 10 ms …,
although the holder's transaction lasts a fraction of a millisecond (a token exchange writes three
rows): measured with two workers, ~1.7 such sleeps per token exchange (``strace -e clock_nanosleep``
on the workers under ``bench/run.py``'s load), workers idle for a third of their time.

So a transaction here first takes an exclusive ``flock`` on ``<database>-writer.lock``, retrying
every 50 µs, then begins; COMMIT or ROLLBACK (or closing the connection) releases it. Writers of
this file wait for each other at that lock instead of in SQLite's sleeps. It is only an
optimisation of waiting: SQLite's own locks still make every write safe, and writers that do not
use the lock file (the ``sqlite3`` shell, another program, single statements outside a
transaction) meet them as before. Waiting for the lock file gives up after the database's
``timeout`` and begins anyway, so a holder that never lets go (a stuck process, a test holding a
transaction open) costs a wait, never a deadlock. The lock dies with its holder's file
descriptor, so a crashed process leaves nothing behind.

SQLite also copies the write-ahead log into the database file (a *checkpoint*) inside COMMIT once
the log reaches 1,000 pages, which here would be under the lock, every ~55 exchanges, while the
other workers wait. So every ``CHECKPOINT_EVERY`` transactions a connection runs a PASSIVE
checkpoint itself, after releasing the lock (SQLite lets writers go on beside it); SQLite's own
remains at ``SAFETY_CHECKPOINT_PAGES`` for writes made outside transactions (gains: CHANGELOG.md).
"""

import fcntl
import logging
import os
import time

from django.db.backends.sqlite3 import base, creation

RETRY_SECONDS = 0.00005
CHECKPOINT_EVERY = 64  # transactions per connection between its WAL checkpoints (~1,100 pages of exchanges)
CHECKPOINT_SQL = "PRAGMA wal_checkpoint(PASSIVE)"
SAFETY_CHECKPOINT_PAGES = 10000  # SQLite's own automatic checkpoint (default 1,000), in WAL pages

log = logging.getLogger(__name__)


class DatabaseCreation(creation.DatabaseCreation):
    def _destroy_test_db(self, test_database_name, verbosity):
        super()._destroy_test_db(test_database_name, verbosity)
        if not self.is_in_memory_db(test_database_name):
            try:
                os.remove(f"{test_database_name}-writer.lock")
            except FileNotFoundError:
                pass


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation
    _lock_fd = None  # this connection's descriptor of the lock file, once opened
    _lock_pid = None
    _holds_lock = False
    _commits = 0  # transactions this connection committed (holding the lock)

    def _lock_file_descriptor(self):
        # Reopened after a fork: a descriptor inherited from the parent shares its lock with it.
        if self._lock_fd is None or self._lock_pid != os.getpid():
            name = self.settings_dict["NAME"]
            if not name or self.is_in_memory_db():
                return None
            self._lock_fd = os.open(f"{name}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._lock_pid = os.getpid()
        return self._lock_fd

    def _take_writer_lock(self):
        descriptor = self._lock_file_descriptor()
        if descriptor is None:
            return
        deadline = None
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._holds_lock = True
                return
            except BlockingIOError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + float(self.settings_dict["OPTIONS"].get("timeout", 5))
                elif now >= deadline:
                    return  # begin anyway: SQLite's own busy timeout decides from here
                time.sleep(RETRY_SECONDS)

    def _release_writer_lock(self):
        if self._holds_lock:
            self._holds_lock = False
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _start_transaction_under_autocommit(self):
        self._take_writer_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_writer_lock()
            raise

    def _restrict_files(self):
        """The database file and its -wal/-shm (SQLite gives them the database's mode): owner-only.

        They hold session keys, tokens and the (encrypted) signing keys. Created 0600 before SQLite
        first opens the file; files of an older install are tightened when they are ours.
        """
        name = self.settings_dict["NAME"]
        if not name or self.is_in_memory_db():
            return
        name = str(name)
        try:
            os.close(os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        except OSError:
            return  # SQLite reports what is wrong with the path
        for path in (name, f"{name}-wal", f"{name}-shm"):
            try:
                info = os.stat(path)
                if info.st_mode & 0o077 and info.st_uid == os.getuid():
                    os.chmod(path, 0o600)
            except FileNotFoundError:
                pass

    def get_new_connection(self, conn_params):
        self._restrict_files()
        connection = super().get_new_connection(conn_params)
        # SQLite's own checkpoint runs inside COMMIT, so under the lock; ours runs after (_commit).
        # Kept, at a higher threshold, for writes outside transactions (which never reach _commit).
        connection.execute(f"PRAGMA wal_autocheckpoint={SAFETY_CHECKPOINT_PAGES}")
        return connection

    def _commit(self):
        held = self._holds_lock
        try:
            result = super()._commit()
        finally:
            self._release_writer_lock()
        if held:  # committed: count it, and checkpoint now and then, the lock released
            self._commits += 1
            if self._commits % CHECKPOINT_EVERY == 0:
                self._checkpoint()
        return result

    def _checkpoint(self):
        """Copy committed WAL pages into the database file, beside other writers (PASSIVE), not under the lock."""
        try:
            self.connection.execute(CHECKPOINT_SQL).fetchall()
        except Exception:  # the transaction is committed: a checkpoint that fails is retried next time
            log.warning("SQLite WAL checkpoint failed", exc_info=True)

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_writer_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_writer_lock()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

