"""Secrets at rest (issue 13, finding 4): the signing private key encrypted in the database, owner-only files.

Attack: ``var/db.sqlite3`` and its ``-wal`` were mode 644 and held the signing private key in
plaintext PKCS#8, so any local user could forge access tokens (and read live session keys).
"""

import importlib
import os
import stat
import subprocess
import sys
from types import SimpleNamespace

import jwt
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.utils import ConnectionHandler

from exchange import secrets_at_rest, signing
from exchange.checks import check_signing_keys_decrypt
from exchange.conf import exchange_settings
from exchange.models import SigningKey
from exchange.secrets_at_rest import SecretUnavailable
from identity_console.settings import BASE_DIR, private_directory

pytestmark = pytest.mark.django_db

migration_0007 = importlib.import_module("exchange.migrations.0007_encrypt_signing_keys")


def raw_column(kid):
    """The private_pem column exactly as the database holds it (no model code in between)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_pem FROM exchange_signingkey WHERE kid = %s", [kid])
        return cursor.fetchone()[0]


def verify(token):
    key = signing.active_key()
    return jwt.decode(token, key.private_key.public_key(), algorithms=[key.algorithm], options={"verify_aud": False})


def issue():
    return signing.issue_access_token(sub="alice", client_id="c", scope="", audience="c", lifetime=60)


def rotate_secret_key(settings, new="a-new-secret-key-" + "n" * 40, keep_old=True):
    old = settings.SECRET_KEY
    settings.SECRET_KEY = new
    settings.SECRET_KEY_FALLBACKS = [old] if keep_old else []
    signing.reset()
    return old


# -- the column ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_the_stored_private_key_is_never_pem(algorithm):
    row = signing.create_signing_key(algorithm)
    stored = raw_column(row.kid)
    assert stored.startswith(secrets_at_rest.PREFIX)
    assert "PRIVATE KEY" not in stored and "-----" not in stored
    assert SigningKey.objects.get(pk=row.pk).private_pem == stored
    assert verify(issue())["sub"] == "alice"


def test_a_plaintext_pem_given_to_the_model_is_sealed_on_save():
    pem = signing.private_pem(signing.generate_private_key("ES256"))
    row = SigningKey.objects.create(kid="manual", algorithm="ES256", private_pem=pem)
    assert row.private_pem.startswith(secrets_at_rest.PREFIX)
    assert raw_column("manual") == row.private_pem
    assert secrets_at_rest.unseal(row.private_pem, "manual") == pem


def test_each_seal_uses_a_fresh_nonce():
    pem = signing.private_pem(signing.generate_private_key("EdDSA"))
    assert secrets_at_rest.seal(pem, "k") != secrets_at_rest.seal(pem, "k")


# -- rotation of SECRET_KEY ---------------------------------------------------------------------


def test_secret_key_rotation_keeps_the_key_readable_through_the_fallback(settings):
    row = signing.create_signing_key()
    token = issue()
    rotate_secret_key(settings)
    assert signing.active_key().kid == row.kid
    assert verify(token)["sub"] == "alice"
    assert SigningKey.objects.count() == 1


def test_without_the_fallback_the_key_fails_closed_and_none_is_generated(settings):
    row = signing.create_signing_key()
    rotate_secret_key(settings, keep_old=False)
    with pytest.raises(SecretUnavailable, match="SECRET_KEY_FALLBACKS"):
        signing.active_key()
    assert list(SigningKey.objects.values_list("kid", flat=True)) == [row.kid]


def test_reencrypt_command_moves_keys_to_the_current_secret(settings):
    row = signing.create_signing_key()
    before = raw_column(row.kid)
    rotate_secret_key(settings)
    call_command("reencrypt_signing_keys", stdout=open(os.devnull, "w"))
    after = raw_column(row.kid)
    assert after != before and secrets_at_rest.sealed_with_current_secret(after)
    settings.SECRET_KEY_FALLBACKS = []  # the old secret can now go
    signing.reset()
    assert signing.active_key().kid == row.kid


def test_reencrypt_command_changes_nothing_when_a_key_cannot_be_opened(settings):
    good, bad = signing.create_signing_key(), signing.create_signing_key()
    SigningKey.objects.filter(pk=bad.pk).update(private_pem=_flip_last_byte(bad.private_pem))
    stored = raw_column(good.kid)
    rotate_secret_key(settings)
    with pytest.raises(CommandError, match="integrity check"):
        call_command("reencrypt_signing_keys", stdout=open(os.devnull, "w"))
    assert raw_column(good.kid) == stored


def test_a_dedicated_key_encryption_key(settings):
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "SIGNING_KEY_ENCRYPTION_KEY": "kek-" + "k" * 40}
    row = signing.create_signing_key()
    rotate_secret_key(settings, keep_old=False)  # SECRET_KEY plays no part now
    assert signing.active_key().kid == row.kid
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "SIGNING_KEY_ENCRYPTION_KEY": "another-" + "k" * 40}
    signing.reset()
    with pytest.raises(SecretUnavailable, match="SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS"):
        signing.active_key()
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS": ["kek-" + "k" * 40]}
    signing.reset()
    assert signing.active_key().kid == row.kid


def test_moving_from_secret_key_to_a_dedicated_key(settings):
    row = signing.create_signing_key()
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "SIGNING_KEY_ENCRYPTION_KEY": "kek-" + "k" * 40,
                               "SIGNING_KEY_ENCRYPTION_KEY_FALLBACKS": [settings.SECRET_KEY]}
    signing.reset()
    assert signing.active_key().kid == row.kid
    assert exchange_settings.SIGNING_KEY_ENCRYPTION_KEY


# -- tampering ------------------------------------------------------------------------------------


def _flip_last_byte(value):
    head, _, payload = value.rpartition(":")
    last = "A" if payload[-2] != "A" else "B"
    return f"{head}:{payload[:-2]}{last}{payload[-1]}"


@pytest.mark.parametrize("tamper", [
    pytest.param(_flip_last_byte, id="ciphertext bit flipped"),
    pytest.param(lambda v: v[:-8], id="truncated"),
    pytest.param(lambda v: v.rpartition(":")[0] + ":", id="payload emptied"),
    pytest.param(lambda v: v + "!!", id="not base64"),
])
def test_a_tampered_key_fails_closed_with_a_clear_error(tamper):
    row = signing.create_signing_key()
    SigningKey.objects.filter(pk=row.pk).update(private_pem=tamper(row.private_pem))
    signing.reset()
    with pytest.raises(SecretUnavailable, match="integrity check.*No key is generated"):
        signing.active_key()
    assert list(SigningKey.objects.values_list("kid", flat=True)) == [row.kid]


def test_a_sealed_value_copied_onto_another_row_does_not_open():
    first, second = signing.create_signing_key(), signing.create_signing_key()
    SigningKey.objects.filter(pk=second.pk).update(private_pem=first.private_pem)
    signing.reset()
    with pytest.raises(SecretUnavailable, match="integrity check"):
        signing.active_key()


def test_a_planted_plaintext_key_is_refused():
    """Someone with write access to the database puts their own key in the clear: it never signs."""
    row = signing.create_signing_key()
    planted = signing.private_pem(signing.generate_private_key("RS256"))
    SigningKey.objects.filter(pk=row.pk).update(private_pem=planted)
    signing.reset()
    with pytest.raises(SecretUnavailable, match="not stored encrypted"):
        signing.active_key()


def test_a_retired_key_holds_nothing():
    row = signing.create_signing_key()
    SigningKey.objects.filter(pk=row.pk).update(retire_after="2000-01-01T00:00:00Z")
    assert signing.retire_expired_keys() == 1
    assert raw_column(row.kid) == ""


# -- the data migration -----------------------------------------------------------------------------


def test_migration_encrypts_existing_rows_and_reverses():
    pem = signing.private_pem(signing.generate_private_key("ES256"))
    row = signing.create_signing_key("ES256")
    SigningKey.objects.filter(pk=row.pk).update(private_pem=pem)  # as stored before the migration
    SigningKey.objects.create(kid="retired", algorithm="ES256", private_pem="", active=False)
    # The historical models a migration gets: no SigningKey.save() sealing behind its back.
    apps = MigrationLoader(connection).project_state(("exchange", "0007_encrypt_signing_keys")).apps
    editor = SimpleNamespace(connection=connection)
    migration_0007.encrypt(apps, editor)
    sealed = raw_column(row.kid)
    assert sealed.startswith(secrets_at_rest.PREFIX) and secrets_at_rest.unseal(sealed, row.kid) == pem
    assert raw_column("retired") == ""
    migration_0007.encrypt(apps, editor)  # idempotent: sealed rows are left alone
    assert raw_column(row.kid) == sealed
    migration_0007.decrypt(apps, editor)
    assert raw_column(row.kid) == pem


# -- file modes ---------------------------------------------------------------------------------------


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_private_directory_is_created_0700_and_tightened(tmp_path):
    assert mode(private_directory(tmp_path / "new" / "var")) == 0o700
    existing = tmp_path / "old-var"
    existing.mkdir()
    existing.chmod(0o755)
    assert mode(private_directory(existing)) == 0o700


def test_a_shared_sticky_directory_is_left_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert mode(private_directory(shared)) == 0o1777


def test_settings_create_var_and_the_secret_key_owner_only(tmp_path):
    var = tmp_path / "var"
    env = {**os.environ, "VAR_DIR": str(var), "DJANGO_SETTINGS_MODULE": "identity_console.settings"}
    env.pop("SECRET_KEY", None)
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-c", "import django; django.setup()"], env=env, check=True, cwd=BASE_DIR)
    assert mode(var) == 0o700
    assert mode(var / "secret_key") == 0o600


def _sqlite_connection(path):
    handler = ConnectionHandler({"default": {
        "ENGINE": "identity_console.sqlite", "NAME": str(path),
        "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
    }})
    return handler.create_connection("default")


@pytest.mark.parametrize("existing", [False, True], ids=["new database", "database of an older install"])
def test_sqlite_database_wal_and_shm_are_0600(tmp_path, existing):
    path = tmp_path / "db.sqlite3"
    if existing:
        path.touch()
        path.chmod(0o644)  # SQLite gives -wal and -shm the database file's mode
    sqlite = _sqlite_connection(path)
    try:
        with sqlite.cursor() as cursor:
            cursor.execute("CREATE TABLE t (x TEXT)")
            cursor.execute("INSERT INTO t VALUES ('secret')")
            assert os.path.exists(f"{path}-wal") and os.path.exists(f"{path}-shm")
            for name in (path, f"{path}-wal", f"{path}-shm"):
                assert mode(name) == 0o600, name
    finally:
        sqlite.close()


def test_existing_wal_files_of_an_older_install_are_tightened(tmp_path):
    path = tmp_path / "db.sqlite3"
    first = _sqlite_connection(path)
    with first.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x TEXT)")
        cursor.execute("INSERT INTO t VALUES ('secret')")
    for name in (path, f"{path}-wal", f"{path}-shm"):
        os.chmod(name, 0o644)  # as an older version left them, while a worker keeps them open
    second = _sqlite_connection(path)
    try:
        with second.cursor() as cursor:
            cursor.execute("SELECT x FROM t")
        for name in (path, f"{path}-wal", f"{path}-shm"):
            assert mode(name) == 0o600, name
    finally:
        second.close()
        first.close()


# -- reported at deploy time ------------------------------------------------------------------------


def test_migrate_and_check_database_report_a_key_that_does_not_decrypt(settings):
    signing.create_signing_key()
    assert check_signing_keys_decrypt(None, databases=["default"]) == []
    rotate_secret_key(settings, keep_old=False)
    [problem] = check_signing_keys_decrypt(None, databases=["default"])
    assert problem.id == "exchange.E005" and "SECRET_KEY_FALLBACKS" in problem.msg
    with pytest.raises(SystemCheckError, match="exchange.E005"):
        call_command("check", "--database", "default", stdout=open(os.devnull, "w"))
    assert check_signing_keys_decrypt(None) == []  # only with a database: plain `check` stays offline


def test_the_check_leaves_keys_not_yet_migrated_to_migration_0007():
    row = signing.create_signing_key()
    SigningKey.objects.filter(pk=row.pk).update(private_pem=signing.private_pem(signing.generate_private_key("EdDSA")))
    assert check_signing_keys_decrypt(None, databases=["default"]) == []
