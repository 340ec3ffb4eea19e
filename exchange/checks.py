"""System checks for a safe token-exchange configuration."""

from django.conf import settings
from django.contrib.auth.hashers import get_hashers_by_algorithm
from django.core.checks import Error, Tags, Warning, register
from django.db import DatabaseError, connection

from . import secrets_at_rest
from .conf import HARD_MAX_TOKEN_LIFETIME_SECONDS, exchange_settings, project_settings
from .models import SigningKey
from .signing import SIGNING_ALGORITHMS

_LIFETIMES = ("ACCESS_TOKEN_LIFETIME_SECONDS", "MANAGEMENT_TOKEN_LIFETIME_SECONDS", "MAX_TOKEN_LIFETIME_SECONDS")


def lifetime_problems():
    """Errors for token lifetimes that are not whole seconds within MAX_TOKEN_LIFETIME_SECONDS.

    A lifetime far in the future overflows date arithmetic (an OverflowError on every token
    request): the bound is checked at start-up rather than discovered as a 500.
    """
    problems = []
    values = {name: getattr(exchange_settings, name) for name in _LIFETIMES}
    for name, value in values.items():
        if type(value) is not int or not 1 <= value <= HARD_MAX_TOKEN_LIFETIME_SECONDS:
            problems.append(Error(
                f"TOKEN_EXCHANGE['{name}'] must be a whole number of seconds from 1 to "
                f"{HARD_MAX_TOKEN_LIFETIME_SECONDS}.",
                id="exchange.E010",
            ))
    if problems:
        return problems
    maximum = values["MAX_TOKEN_LIFETIME_SECONDS"]
    for name in _LIFETIMES[:2]:
        if values[name] > maximum:
            problems.append(Error(
                f"TOKEN_EXCHANGE['{name}'] is longer than TOKEN_EXCHANGE['MAX_TOKEN_LIFETIME_SECONDS'] ({maximum}).",
                hint="Every token lifetime is bounded by MAX_TOKEN_LIFETIME_SECONDS.",
                id="exchange.E011",
            ))
    return problems


@register()
def check_token_exchange(app_configs, **kwargs):
    problems = []
    if "hmac_sha256" not in get_hashers_by_algorithm():
        problems.append(Error(
            "exchange.hashers.ClientSecretHasher must be listed in PASSWORD_HASHERS.",
            hint="Client secrets are hashed with it (OAUTH2_PROVIDER['CLIENT_SECRET_HASHER']).",
            id="exchange.E001",
        ))
    if settings.PASSWORD_HASHERS and settings.PASSWORD_HASHERS[0] == "exchange.hashers.ClientSecretHasher":
        problems.append(Error(
            "The client-secret hasher must not be the first PASSWORD_HASHERS entry.",
            hint="User passwords need a stretching hasher such as PBKDF2.",
            id="exchange.E002",
        ))
    if exchange_settings.SIGNING_KEY_PUBLISH_AHEAD_SECONDS < exchange_settings.SIGNING_KEY_RELOAD_SECONDS:
        problems.append(Warning(
            "TOKEN_EXCHANGE['SIGNING_KEY_PUBLISH_AHEAD_SECONDS'] is shorter than SIGNING_KEY_RELOAD_SECONDS.",
            hint="A rotated key would sign before every worker knows it; workers would switch at different times.",
            id="exchange.W002",
        ))
    if connection.vendor == "sqlite" and connection.Database.sqlite_version_info < (3, 35):
        problems.append(Error(
            f"SQLite {connection.Database.sqlite_version} is too old: 3.35 or newer is needed.",
            hint="The replay store's atomic add uses INSERT … ON CONFLICT … RETURNING (exchange/shared_cache.py).",
            id="exchange.E004",
        ))
    problems.extend(lifetime_problems())
    if exchange_settings.SIGNING_ALGORITHM not in SIGNING_ALGORITHMS:
        problems.append(Error(
            f"TOKEN_EXCHANGE['SIGNING_ALGORITHM'] must be one of {', '.join(SIGNING_ALGORITHMS)}.",
            id="exchange.E003",
        ))
    return problems


@register(deploy=True)
def check_deployment(app_configs, **kwargs):
    problems = []
    if not project_settings.CONSOLE_ISSUER.startswith("https://"):
        problems.append(Warning(
            "CONSOLE_ISSUER does not use https.",
            hint="Set CONSOLE_ISSUER to this server's public https token endpoint URL.",
            id="exchange.W001",
        ))
    return problems


@register(Tags.database)
def check_signing_keys_decrypt(app_configs, databases=None, **kwargs):
    """Every live signing key decrypts with the configured secrets (run by ``migrate`` and
    ``check --database default``): a rotated SECRET_KEY without its fallback is reported at deploy
    time, not by the first token request. Keys not sealed yet are left to migration 0007."""
    problems = []
    for alias in databases or []:
        try:
            rows = list(SigningKey.objects.using(alias).filter(retired_at=None).exclude(private_pem="")
                        .only("kid", "private_pem"))
        except DatabaseError:  # not migrated yet
            continue
        for row in rows:
            if not secrets_at_rest.is_sealed(row.private_pem):
                continue
            try:
                secrets_at_rest.unseal(row.private_pem, row.kid)
            except secrets_at_rest.SecretUnavailable as exc:
                problems.append(Error(str(exc), id="exchange.E005"))
    return problems
