"""Configuration from the environment."""

import pytest

from exchange.conf import DEFAULTS, exchange_settings, from_environ


def test_token_exchange_knobs_from_environment():
    overrides = from_environ({
        "TOKEN_EXCHANGE_JWKS_READ_TIMEOUT_MS": "2500",
        "TOKEN_EXCHANGE_JWKS_ALLOW_HTTP": "true",
        "TOKEN_EXCHANGE_DEFAULT_ALLOWED_ALGORITHMS": "RS256, ES256",
        "TOKEN_EXCHANGE_SIGNING_ALGORITHM": "ES256",
        "UNRELATED": "1",
    })
    assert overrides == {
        "JWKS_READ_TIMEOUT_MS": 2500,
        "JWKS_ALLOW_HTTP": True,
        "DEFAULT_ALLOWED_ALGORITHMS": ["RS256", "ES256"],
        "SIGNING_ALGORITHM": "ES256",
    }


def test_documented_defaults():
    assert DEFAULTS["JWKS_READ_TIMEOUT_MS"] == 1000
    assert DEFAULTS["JWKS_CONNECT_TIMEOUT_MS"] == 1000
    assert "HS256" not in DEFAULTS["DEFAULT_ALLOWED_ALGORITHMS"] and "none" not in DEFAULTS["DEFAULT_ALLOWED_ALGORITHMS"]


def test_every_default_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in readme and key not in readme]
    assert not missing


def test_unknown_setting_is_an_error(settings):
    settings.TOKEN_EXCHANGE = {"JWKS_READ_TIMEOUT": 5}
    with pytest.raises(AttributeError, match="Unknown TOKEN_EXCHANGE"):
        exchange_settings.JWKS_READ_TIMEOUT_MS


def test_debug_is_off_by_default(settings):
    import os

    if not os.environ.get("DEBUG"):
        assert settings.DEBUG is False


def test_too_old_sqlite_is_an_error(monkeypatch):
    from django.db import connection

    from exchange.checks import check_token_exchange

    if connection.vendor != "sqlite":
        pytest.skip("SQLite only")
    monkeypatch.setattr(connection.Database, "sqlite_version_info", (3, 34, 1))
    assert "exchange.E004" in [problem.id for problem in check_token_exchange(None)]
    monkeypatch.undo()
    assert "exchange.E004" not in [problem.id for problem in check_token_exchange(None)]
