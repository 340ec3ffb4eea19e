"""Configuration from the environment."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from exchange.conf import DEFAULTS, PROJECT_DEFAULTS, REQUIRED, exchange_settings, from_environ, project_settings


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


def test_every_default_is_documented_in_the_configuration_page():
    from pathlib import Path

    root = next(parent for parent in Path(__file__).resolve().parents if (parent / "pyproject.toml").exists())
    page = (root / "docs" / "configuration.md").read_text()
    missing = [key for key in DEFAULTS if f"`{key}`" not in page and key not in page]
    assert not missing


def test_unknown_setting_is_an_error(settings):
    settings.TOKEN_EXCHANGE = {"JWKS_READ_TIMEOUT": 5}
    with pytest.raises(AttributeError, match="Unknown TOKEN_EXCHANGE"):
        exchange_settings.JWKS_READ_TIMEOUT_MS


def test_project_settings_follow_overrides(settings):
    """The app's one accessor for top-level settings sees every override (setting_changed)."""
    settings.METRICS_TOKEN = "first"
    assert project_settings.METRICS_TOKEN == "first"
    settings.METRICS_TOKEN = "second"
    assert project_settings.METRICS_TOKEN == "second"


def test_project_setting_unset_takes_its_documented_default(settings):
    del settings.HEALTH_CACHE_REQUIRED
    del settings.SHARED_CACHE_RETRY_SECONDS
    assert project_settings.HEALTH_CACHE_REQUIRED is PROJECT_DEFAULTS["HEALTH_CACHE_REQUIRED"] is False
    assert project_settings.SHARED_CACHE_RETRY_SECONDS == PROJECT_DEFAULTS["SHARED_CACHE_RETRY_SECONDS"]


def test_required_project_setting_missing_is_an_error(settings):
    del settings.CONSOLE_ISSUER
    with pytest.raises(ImproperlyConfigured, match="CONSOLE_ISSUER"):
        project_settings.CONSOLE_ISSUER


def test_only_declared_project_settings_are_readable():
    """Reading another top-level setting through the accessor is a mistake, not a silent None."""
    with pytest.raises(AttributeError, match="PROJECT_DEFAULTS"):
        project_settings.SECRET_KEY


def test_the_project_defines_every_project_setting(settings):
    assert [name for name in PROJECT_DEFAULTS if not hasattr(settings, name)] == []
    assert [name for name, default in PROJECT_DEFAULTS.items() if default is REQUIRED] == ["CONSOLE_ISSUER", "VAR_DIR"]


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
