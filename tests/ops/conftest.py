"""Operations: audit events and JSON logs, health and readiness, /metrics, proxies, settings, deployment checks,
shared state without Redis, the SQLite writer lock, and two live instances on one database (slow).

No fixture is shared by several modules here yet: each module keeps its own beside its tests.
"""
