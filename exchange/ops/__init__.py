"""Operations around the token path: logs (request ids, JSON, redaction), client address behind proxies,
health checks, metrics, database outages."""
