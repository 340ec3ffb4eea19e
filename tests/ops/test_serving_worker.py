"""The serving configuration (gunicorn.conf.py) and its worker class (identity_console/serving.py), live.

gunicorn as configured, on SQLite, with the default worker class: connections are kept alive, a
client that connects and sends nothing never holds the worker that accepted it, and a request split
over several packets is still answered. The configuration picks the inline worker for one thread
per worker (SQLite) and gthread's pool for more (PostgreSQL).
"""

import http.client
import os
import runpy
import socket
import time

import pytest
from gunicorn.workers.gthread import ThreadWorker

from identity_console.serving import InlineThreadWorker

from ..processes import ROOT, Gunicorn, base_env, manage

pytestmark = [pytest.mark.slow, pytest.mark.live]


def configuration(**env):
    """gunicorn.conf.py's settings as gunicorn reads them, under ``env`` (GUNICORN_*/DATABASE_URL only)."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("GUNICORN_") and k != "DATABASE_URL"}
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(keep, PROMETHEUS_MULTIPROC_DIR=saved.get("PROMETHEUS_MULTIPROC_DIR", "/tmp"), **env)
        return runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(("env", "worker_class", "threads"), [
    ({}, "identity_console.serving.InlineThreadWorker", 1),
    ({"DATABASE_URL": "sqlite:////tmp/x.sqlite3"}, "identity_console.serving.InlineThreadWorker", 1),
    ({"DATABASE_URL": "postgresql://postgres@127.0.0.1/x"}, "gthread", 4),
    ({"GUNICORN_THREADS": "3"}, "gthread", 3),
    ({"GUNICORN_WORKER_CLASS": "sync"}, "sync", 1),
])
def test_the_configuration_picks_the_worker_class_by_threads(env, worker_class, threads):
    settings = configuration(**env)
    assert (settings["worker_class"], settings["threads"]) == (worker_class, threads)
    assert settings["keepalive"] > 0


@pytest.fixture(scope="module")
def inline_server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serving")
    env = base_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", GUNICORN_LOGLEVEL="info")
    manage(env, "migrate", "--noinput")
    instance = Gunicorn("serving", env, tmp_path, workers=1).wait_ready()
    yield instance
    instance.stop()


def test_the_server_runs_the_inline_worker(inline_server):
    assert "Using worker: identity_console.serving.InlineThreadWorker" in inline_server.logs()
    assert issubclass(InlineThreadWorker, ThreadWorker)  # gthread's code for everything but where a request runs


def test_a_connection_is_kept_alive_across_requests(inline_server):
    connection = http.client.HTTPConnection("127.0.0.1", inline_server.port, timeout=10)
    try:
        connection.request("GET", "/livez")
        first = connection.getresponse()
        assert first.status == 200 and first.read() == b'{"status": "ok"}'
        sock = connection.sock
        for _ in range(3):
            connection.request("GET", "/livez")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b'{"status": "ok"}'
            assert connection.sock is sock  # the same connection, not a new one
    finally:
        connection.close()


def test_a_silent_connection_does_not_hold_the_only_worker(inline_server):
    """gthread's one pool thread waited up to 5 s for a new connection's first bytes; this worker never does."""
    silent = socket.create_connection(("127.0.0.1", inline_server.port), timeout=10)
    try:
        time.sleep(0.2)  # accepted by the only worker
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", inline_server.port, timeout=10)
        connection.request("GET", "/livez")
        response = connection.getresponse()
        assert response.status == 200
        response.read()
        connection.close()
        assert time.monotonic() - started < 2.5
        # The silent client may still speak, and is answered.
        silent.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := silent.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"status": "ok"}')
    finally:
        silent.close()


def test_a_request_sent_in_pieces_is_answered(inline_server):
    with socket.create_connection(("127.0.0.1", inline_server.port), timeout=10) as sock:
        body = b"grant_type=client_credentials"
        head = (b"POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(body))
        for piece in (head[:10], head[10:], body[:5], body[5:]):
            sock.sendall(piece)
            time.sleep(0.05)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    # No client credentials: the token endpoint's own answer, so the whole request reached it.
    assert answer.startswith(b"HTTP/1.1 401 ")
    assert b'"error": "invalid_client"' in answer


def test_thousands_of_pipelined_requests_are_all_answered(inline_server):
    """Requests already read behind the one served are served in a loop, never by recursion."""
    count = 2000
    request = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", inline_server.port), timeout=60) as sock:
        sock.sendall(request * count + b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.count(b"HTTP/1.1 ") == count + 1
    assert answer.count(b"HTTP/1.1 200 ") == count + 1
