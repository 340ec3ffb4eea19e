"""The rows a token exchange writes: its AccessToken, RefreshToken and ExchangeEvent.

Django's ``Model.save()`` spent more instructions on these two or three INSERTs than
the rest of an exchange (SQL compilation, signals, model-state bookkeeping; see
docs/performance.md), so each INSERT statement is built once per model and database from the
model's own field metadata — a column added by a migration is picked up without a
change here — and every value still goes through its field's ``get_db_prep_save``.
``auto_now``/``auto_now_add`` columns get the time of the write; columns not given
get their field's default.

What the model signals do for ExchangeEvent rows saved through the ORM (audit.py:
request id, client id and issuer snapshots, the audit log line; metrics.py: the
exchange counter) is done here explicitly, with the same functions.
"""

import datetime
import hashlib
import uuid
from types import SimpleNamespace
from typing import NamedTuple

from django.db import connections, router, transaction
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings

from . import audit
from .models import AccessToken, ExchangeEvent, RefreshToken, TrustedTokenIssuer
from .ops import metrics

_statements = {}  # (model, database alias) -> (columns, sql, returns_pk)

#: Fields whose Python values (str, int, bool or None, as this module passes them) are already
#: what the database driver takes: ``get_db_prep_save`` would return them unchanged.
_PLAIN = {"CharField", "TextField", "ForeignKey", "OneToOneField", "BooleanField", "IntegerField",
          "PositiveIntegerField", "BigIntegerField", "SmallIntegerField"}


def _statement(model, connection):
    """The INSERT statement of ``model`` on ``connection``, and how to prepare each column's value."""
    key = (model, connection.alias)
    entry = _statements.get(key)
    if entry is None:
        quote = connection.ops.quote_name
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
        columns = []
        for field in fields:
            kind = field.get_internal_type()
            auto = getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
            if kind in _PLAIN:
                prepare = None
            elif kind == "DateTimeField":  # aware datetimes from timezone.now(): the adaptation alone
                prepare = lambda value, connection: connection.ops.adapt_datetimefield_value(value)  # noqa: E731
            else:
                prepare = field.get_db_prep_save
            columns.append((field.attname, auto, field, prepare))
        # Named placeholders: Django's SQLite backend rewrites positional ones with a regular
        # expression on every execution, which cost as much as the INSERT itself.
        sql = "INSERT INTO %s (%s) VALUES (%s)" % (
            quote(model._meta.db_table), ", ".join(quote(f.column) for f in fields),
            ", ".join("%%(%s)s" % f.attname for f in fields),
        )
        returns_pk = connection.features.can_return_columns_from_insert
        if returns_pk:
            sql += " RETURNING %s" % quote(model._meta.pk.column)
        entry = _statements[key] = (columns, sql, returns_pk)
    return entry


class Insert(NamedTuple):
    """One prepared INSERT: its statement and its parameters (already adapted for the database)."""

    sql: str
    params: dict
    returns_pk: bool


def prepare(connection, model, values, *, now):
    """The INSERT of one ``model`` row from ``values`` (attribute name -> Python value) on ``connection``.

    ``auto_now``/``auto_now_add`` columns not in ``values`` get ``now``; other missing columns
    their field's default.
    """
    columns, sql, returns_pk = _statement(model, connection)
    params = {}
    now_prepared = None
    for attname, auto, field, prepare_value in columns:
        if attname in values:
            value = values[attname]
        elif auto:
            if now_prepared is None:
                now_prepared = connection.ops.adapt_datetimefield_value(now)
            params[attname] = now_prepared
            continue
        else:
            value = field.get_default()
        params[attname] = value if prepare_value is None else prepare_value(value, connection)
    return Insert(sql, params, returns_pk)


def execute(cursor, insert):
    """Run a prepared INSERT with ``cursor``; the new row's pk."""
    cursor.execute(insert.sql, insert.params)
    return cursor.fetchone()[0] if insert.returns_pk else cursor.lastrowid


def _token_columns(raw_token):
    """``token`` and ``token_checksum``, as DOT's set_token_value + TokenChecksumField store them (RFC 9700)."""
    checksum = hashlib.sha256(raw_token.encode("utf-8")).hexdigest()
    stored = "" if oauth2_settings.COMPLIANT_BCP_RFC9700_TOKEN_STORAGE else raw_token
    return {"token": stored, "token_checksum": checksum}


def _utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def access_token_row(*, token, claims, application_id, resource, subject, trusted_issuer, user_id=None,
                     id_token_id=None, source_refresh_token_id=None, mapped_claims=None, actor_trusted_issuer=None,
                     actor_subject=""):
    """The columns of a new AccessToken row: the one place that says what an issued access token stores.

    Every access token is written from this row (the exchange's ``save_issued``; DOT's other grants
    and refresh through ``create_access_token``): a new column is added here, once. What the JWT
    says is taken from its ``claims`` (signing.access_token_claims): ``aud`` → ``audience``,
    ``scope``, ``iat`` → ``created``, ``exp`` → ``expires``, ``jti``; introspection rebuilds the
    claims from these columns (signing.row_claims), so both always agree. ``subject`` and
    ``trusted_issuer`` are the provenance of an exchanged token (empty/None for the other grants);
    ``mapped_claims`` the claims its issuer's claim mapping carried into it (also in ``claims``);
    ``actor_trusted_issuer`` and ``actor_subject`` that of its actor, for a delegated one, whose
    ``act`` claim is stored as issued.
    """
    aud = claims["aud"]
    return {
        **_token_columns(token), "subject": subject or "",
        "trusted_issuer_id": trusted_issuer.pk if trusted_issuer is not None else None,
        "user_id": user_id, "application_id": application_id, "expires": _utc(claims["exp"]),
        "created": _utc(claims["iat"]), "updated": _utc(claims["iat"]), "scope": claims.get("scope", ""),
        "resource": resource,
        "audience": [aud] if isinstance(aud, str) else list(aud), "jti": claims["jti"],
        "id_token_id": id_token_id, "source_refresh_token_id": source_refresh_token_id,
        "mapped_claims": dict(mapped_claims or {}),
        "act": claims.get("act"), "actor_subject": actor_subject or "",
        "actor_trusted_issuer_id": actor_trusted_issuer.pk if actor_trusted_issuer is not None else None,
    }


def refresh_token_row(*, token, application_id, token_family, resource, subject, trusted_issuer,
                      access_token_id=None, user_id=None, not_after=None, mapped_claims=None, act=None,
                      actor_trusted_issuer=None, actor_subject=""):
    """The columns of a new RefreshToken row: the one place that says what a refresh token stores (as above).

    ``not_after``: the subject token's expiry when the token is bounded by it (models.RefreshToken).
    ``act``, ``actor_trusted_issuer``, ``actor_subject``: the delegation the tokens refreshed from it keep.
    """
    return {
        **_token_columns(token), "subject": subject or "",
        "trusted_issuer_id": trusted_issuer.pk if trusted_issuer is not None else None,
        "user_id": user_id, "application_id": application_id, "access_token_id": access_token_id,
        "token_family": token_family, "resource": resource, "not_after": not_after,
        "mapped_claims": dict(mapped_claims or {}),
        "act": act, "actor_subject": actor_subject or "",
        "actor_trusted_issuer_id": actor_trusted_issuer.pk if actor_trusted_issuer is not None else None,
    }


class TokensRevoked(Exception):
    """The issuer's tokens were revoked (flows.revoke_tokens) while this exchange was under way.

    ``actor``: it was the actor token's issuer (a delegation).
    """

    def __init__(self, actor=False):
        super().__init__("actor" if actor else "subject")
        self.actor = actor


def _check_not_revoked(connection, trusted_issuer, started):
    """Refuse (TokensRevoked) an exchange that began before the latest revocation of its issuer's tokens.

    Runs in the transaction that writes the token. On PostgreSQL and MySQL the issuer row is read
    ``FOR SHARE``: a revocation under way holds it (its UPDATE of ``tokens_revoked_at``), so this
    waits for it and reads its stamp; and a revocation beginning now waits for this transaction,
    then revokes what it wrote. On SQLite write transactions are serial (BEGIN IMMEDIATE), so
    the plain read is enough.

    The column is read with a plain cursor and converted as the ORM converts it (the backend's
    ``convert_datetimefield_value``, where it has one: SQLite and MySQL return text or naive values):
    a ``raw()`` queryset building a model instance cost as much as the rest of the transaction.
    """
    lock = " FOR SHARE" if connection.vendor in ("postgresql", "mysql") else ""
    table = connection.ops.quote_name(TrustedTokenIssuer._meta.db_table)
    column = connection.ops.quote_name(TrustedTokenIssuer._meta.get_field("tokens_revoked_at").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s{lock}", [trusted_issuer.pk])
        row = cursor.fetchone()
    if row is None:
        raise TokensRevoked
    revoked_at = row[0]
    convert = getattr(connection.ops, "convert_datetimefield_value", None)
    if revoked_at is not None and convert is not None:
        revoked_at = convert(revoked_at, None, connection)
    if revoked_at is not None and revoked_at >= started:
        raise TokensRevoked


def _write(model, row, relations):
    """INSERT ``row`` now, in the caller's transaction; the model instance as a fetch would give it (no query).

    ``relations`` are the related objects already at hand (user, application, ...), so that
    reading them from the instance later costs no query either.
    """
    using = router.db_for_write(model)
    connection = connections[using]
    now = timezone.now()
    insert = prepare(connection, model, row, now=now)
    with connection.cursor() as cursor:
        pk = execute(cursor, insert)
    instance = model(**row)
    for name, value in relations.items():
        setattr(instance, name, value)
    for field in model._meta.concrete_fields:
        if (getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)) and field.attname not in row:
            setattr(instance, field.attname, now)
    instance.pk = pk
    instance._state.adding = False
    instance._state.db = using
    return instance


def create_access_token(*, user, application, id_token, source_refresh_token, trusted_issuer, **columns):
    """Write an AccessToken row from ``access_token_row`` (DOT's other grants and refresh); the instance.

    Runs in the caller's transaction (DOT's ``save_bearer_token`` opens one).
    """
    row = access_token_row(
        application_id=application.pk, user_id=user.pk if user is not None else None,
        id_token_id=id_token.pk if id_token is not None else None,
        source_refresh_token_id=source_refresh_token.pk if source_refresh_token is not None else None,
        trusted_issuer=trusted_issuer, **columns,
    )
    return _write(AccessToken, row, {"user": user, "application": application, "id_token": id_token,
                                     "source_refresh_token": source_refresh_token, "trusted_issuer": trusted_issuer})


def create_refresh_token(*, user, application, access_token, trusted_issuer, **columns):
    """Write a RefreshToken row from ``refresh_token_row`` (DOT's other grants and refresh); the instance."""
    row = refresh_token_row(
        application_id=application.pk, user_id=user.pk if user is not None else None,
        access_token_id=access_token.pk if access_token is not None else None, trusted_issuer=trusted_issuer,
        **columns,
    )
    return _write(RefreshToken, row, {"user": user, "application": application, "access_token": access_token,
                                      "trusted_issuer": trusted_issuer})


class Actor(NamedTuple):
    """The actor of a delegated exchange (RFC 8693 §2.1 ``actor_token``), as the rows record it."""

    trusted_issuer: object = None  # the actor token's TrustedTokenIssuer, once its iss named one
    subject: str = ""  # its verified sub
    jti: str = ""


NO_ACTOR = Actor()


def _event(*, outcome, cause, application, trusted_issuer, subject, subject_jti, issued_jti, actor=NO_ACTOR):
    actor_issuer = actor.trusted_issuer
    event = SimpleNamespace(  # what audit.py and metrics.py read from an ExchangeEvent
        outcome=outcome, cause=(cause or "")[:40], application=application,
        application_id=application.pk if application is not None else None,
        trusted_issuer=trusted_issuer, trusted_issuer_id=trusted_issuer.pk if trusted_issuer is not None else None,
        subject=(subject or "")[:255], subject_jti=(subject_jti or "")[:255], issued_jti=issued_jti or "",
        actor_trusted_issuer=actor_issuer, actor_trusted_issuer_id=actor_issuer.pk if actor_issuer is not None else None,
        actor_subject=(actor.subject or "")[:255], actor_jti=(actor.jti or "")[:255], actor_issuer="",
        client_id="", issuer="", request_id="", pk=None,
    )
    audit.complete(event)
    return event


def _announce(event):
    """The audit log line and the metric of a written (committed) event."""
    audit.log_event(event)
    metrics.exchange_recorded(event.outcome, event.cause, event.trusted_issuer)


def save_issued(*, application, access_token, claims, refresh_token, resource, subject, trusted_issuer,
                subject_jti, first=None, started=None, refresh_not_after=None, mapped_claims=None, actor=NO_ACTOR,
                user=None):
    """Write the AccessToken (+ RefreshToken) and the ``issued`` ExchangeEvent in one transaction.

    A token is issued only if its audit row is written with it. ``first()``, when given, runs
    first inside the transaction (the grant records the subject token's jti there); what it
    raises rolls everything back and propagates. ``started``: when the exchange began; the
    exchange is refused (TokensRevoked) if its issuer's tokens were revoked since, or its actor's
    issuer's (``actor``: a delegated exchange's actor). ``user``: the linked local user the tokens
    are for (accounts.py), None for the external identity. The rows are prepared before the transaction,
    which then only runs the statements: on SQLite the other workers wait for its commit
    (identity_console/sqlite/), so it should be short.
    """
    using = router.db_for_write(AccessToken)
    connection = connections[using]
    now = timezone.now()
    access = prepare(connection, AccessToken, access_token_row(
        token=access_token, claims=claims, application_id=application.pk, resource=resource,
        subject=subject, trusted_issuer=trusted_issuer, mapped_claims=mapped_claims,
        actor_trusted_issuer=actor.trusted_issuer, actor_subject=actor.subject,
        user_id=user.pk if user is not None else None,
    ), now=now)
    refresh = None
    if refresh_token is not None:
        refresh = prepare(connection, RefreshToken, refresh_token_row(
            token=refresh_token, application_id=application.pk, token_family=uuid.uuid4(), resource=resource,
            subject=subject, trusted_issuer=trusted_issuer, not_after=refresh_not_after, mapped_claims=mapped_claims,
            act=claims.get("act"), actor_trusted_issuer=actor.trusted_issuer, actor_subject=actor.subject,
            user_id=user.pk if user is not None else None,
        ), now=now)
    event = _event(outcome=ExchangeEvent.Outcome.ISSUED.value, cause="", application=application,
                   trusted_issuer=trusted_issuer, subject=subject, subject_jti=subject_jti, issued_jti=claims["jti"],
                   actor=actor)
    event_insert = prepare(connection, ExchangeEvent, vars(event), now=now)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        if first is not None:
            first()
        if started is not None:
            _check_not_revoked(connection, trusted_issuer, started)
            if actor.trusted_issuer is not None and actor.trusted_issuer.pk != trusted_issuer.pk:
                try:
                    _check_not_revoked(connection, actor.trusted_issuer, started)
                except TokensRevoked:
                    raise TokensRevoked(actor=True) from None
        access_token_id = execute(cursor, access)
        if refresh is not None:
            refresh.params["access_token_id"] = access_token_id  # a ForeignKey: the value as it is
            execute(cursor, refresh)
        event.pk = execute(cursor, event_insert)
    _announce(event)
    return access_token_id


def save_rejected(*, cause, application, trusted_issuer, subject, subject_jti, actor=NO_ACTOR):
    """Write the ``rejected`` ExchangeEvent (autocommit: nothing else is written)."""
    connection = connections[router.db_for_write(ExchangeEvent)]
    event = _event(outcome=ExchangeEvent.Outcome.REJECTED.value, cause=cause, application=application,
                   trusted_issuer=trusted_issuer, subject=subject, subject_jti=subject_jti, issued_jti="", actor=actor)
    insert = prepare(connection, ExchangeEvent, vars(event), now=timezone.now())
    with connection.cursor() as cursor:
        event.pk = execute(cursor, insert)
    _announce(event)
