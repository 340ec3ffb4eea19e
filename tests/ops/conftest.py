"""Operations: audit events and JSON logs, health and readiness, /metrics, proxies, settings, deployment checks,
shared state without Redis, the SQLite writer lock, two live instances on one database (slow),
durability: the replay record in the database, Redis flushed, down or restarted empty (the last slow), and
database outages (503 per surface; a private PostgreSQL cluster restarted under load, slow).

Fixtures used by one module stay beside its tests; the ones several modules use are here.
"""

import pytest
from django.test import override_settings

from exchange import shared_cache

from ..processes import free_port


@pytest.fixture
def unreachable_redis():
    """The shared cache pointed at a loopback port where nothing listens (restored before other teardown)."""
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    shared_cache.clear_local()
    with override_settings(CACHES=caches):
        yield
    shared_cache.clear_local()
