"""Real processes for the operations tests: gunicorn instances, a private redis-server, PostgreSQL databases,
a private PostgreSQL cluster, and a deployment of them all (several instances, one database, one Redis).

Everything binds to 127.0.0.1 on ephemeral ports; every wait polls with a deadline.
"""

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from http import HTTPStatus
from pathlib import Path

import psycopg
import pytest
import requests
from django.conf import settings

from .factories import mint, private_key
from .utils import JWKSServer, basic_auth, exchange_body

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout, interval=0.05, message="condition"):
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except AssertionError:
            raise
        except Exception as exc:  # a server still starting refuses connections
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message} (last: {last!r})")


def base_env(tmp_path, **overrides):
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("TOKEN_EXCHANGE_", "PROMETHEUS_", "GUNICORN_", "PYTEST_", "DJANGO_"))
        and key not in ("DATABASE_URL", "REDIS_URL", "METRICS_TOKEN", "METRICS_ALLOWED_NETWORKS", "LOG_FORMAT")
    }
    env.update({
        "DJANGO_SETTINGS_MODULE": "identity_console.settings",
        "VAR_DIR": str(tmp_path),
        "STATIC_ROOT": str(tmp_path / "static"),
        "SECRET_KEY": "multi-instance-test-secret-key-" + "x" * 40,
        "PYTHONUNBUFFERED": "1",
    })
    env.update({key: str(value) for key, value in overrides.items()})
    return env


def manage(env, *args, timeout=120):
    """Run ``manage.py`` with ``env``; return stdout (raises with stderr on failure)."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


class Gunicorn:
    """One console instance: gunicorn with the project's gunicorn.conf.py on a loopback port."""

    def __init__(self, name, env, tmp_path, workers=2):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"gunicorn-{name}.log"
        env = dict(env, GUNICORN_WORKERS=str(workers))
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             "identity_console.wsgi"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def wait_ready(self, timeout=30):
        def up():
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn {self.name} exited:\n{self.logs()}")
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        wait_until(up, timeout, message=f"gunicorn {self.name} to answer /healthz")
        return self

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self._log.close()


class PrivateRedis:
    """A redis-server of our own (never the shared one): no persistence, an ephemeral port."""

    def __init__(self, tmp_path):
        self.port = free_port()
        self.dir = tmp_path / "redis"
        self.dir.mkdir(exist_ok=True)
        self.process = None
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        self.process = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self.ping, 10, message="redis-server to answer PING")

    def ping(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5).ping()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def keys(self, pattern="*"):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port).keys(pattern)


def postgres_available():
    import psycopg

    try:
        psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


class PostgresDatabase:
    """A dedicated database on the local PostgreSQL, dropped afterwards."""

    def __init__(self, name):
        import psycopg

        self.name = name
        self.url = f"postgres://postgres@127.0.0.1:5432/{name}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')

    def drop(self):
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def postgres_binaries():
    """The bin folder of the newest local PostgreSQL with initdb and pg_ctl (Debian's layout, then PATH), or None."""
    def version(path):
        name = Path(path).parent.name
        return int(name) if name.isdigit() else 0

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


class PrivatePostgres:
    """A PostgreSQL cluster of our own (never the shared one): ``initdb`` into a temporary folder, its own port.

    The test may restart and stop it at will. PostgreSQL refuses to run as root: as root the
    cluster belongs to the ``postgres`` system user, in a folder of its own under /tmp (pytest's
    tmp_path is private to root).
    """

    def __init__(self, binaries, name="idc"):
        self.bin = Path(binaries)
        self.port = free_port()
        self.name = name
        self.dir = Path(tempfile.mkdtemp(prefix="idc-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.user = None
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")  # KeyError: no such user (the caller skips)
            self.user = entry.pw_uid
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    @property
    def admin_url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.name}"

    def _run(self, tool, *args, timeout=60):
        result = subprocess.run(
            [str(self.bin / tool), *args], user=self.user, cwd=self.dir, capture_output=True, text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}")

    def _pg_ctl(self, *args):
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "30", *args)

    def start(self):
        """Start and wait until it accepts connections."""
        self._pg_ctl("start")

    def stop(self):
        """Fast shutdown (sessions terminated, open transactions rolled back), waiting until it is down."""
        self._pg_ctl("-m", "fast", "stop")

    def restart(self):
        """``pg_ctl restart -m fast``: down and up again, waiting until it accepts connections."""
        self._pg_ctl("-m", "fast", "restart")

    def terminate_connections(self):
        """``pg_terminate_backend`` every other session of the app's database: connections dropped mid-request."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,))

    def query(self, sql, params=None):
        with psycopg.connect(self.url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def logs(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def destroy(self):
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except AssertionError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Deployment:
    """Gunicorn instances (two workers each) sharing a dedicated PostgreSQL database (``database``, dropped
    afterwards), a private redis-server and a JWKS server publishing one issuer's key (kid ``k1``); the issuer and
    a token-exchange application are created with ``manage.py``, as an operator would. ``close()`` undoes each part.

    Every subject token exchanged once is kept in ``consumed``; every token and secret the deployment has seen is
    kept in ``secrets`` (none may reach a log).
    """

    def __init__(self, tmp_path, database, issuer, metrics_token):
        self.tmp_path = tmp_path
        self.database = database
        self.issuer = issuer
        self.metrics_token = metrics_token
        self.db = self.redis = self.jwks = None
        self.instances = []
        self.consumed = []
        self.secrets = [metrics_token]

    def start(self, instances, **env):
        """``instances``: {name: that instance's own environment}; ``env``: what all share besides the defaults."""
        self.db = PostgresDatabase(self.database)
        self.redis = PrivateRedis(self.tmp_path)
        self.jwks = JWKSServer()
        self.key = private_key("ec", self.issuer)
        self.jwks.serve_keys((self.key, "k1"))
        self.env = base_env(self.tmp_path, DATABASE_URL=self.db.url, REDIS_URL=self.redis.url,
                            CONSOLE_ISSUER=settings.CONSOLE_ISSUER, METRICS_TOKEN=self.metrics_token,
                            SHARED_CACHE_RETRY_SECONDS=1, GUNICORN_LOGLEVEL="warning", **env)
        manage(self.env, "migrate", "--noinput")
        manage(self.env, "create_trusted_token_issuer", "--name", "Deployment issuer", "--issuer", self.issuer,
               "--jwks-uri", self.jwks.url)
        app = json.loads(manage(self.env, "create_application", "--name", "Deployment app",
                                "--grant-type", "token_exchange", "--json"))
        self.client_id, self.client_secret = app["client_id"], app["client_secret"]
        self.secrets.append(self.client_secret)
        for name, own in instances.items():
            instance_env = dict(self.env, PROMETHEUS_MULTIPROC_DIR=str(self.tmp_path / f"metrics-{name}"), **own)
            self.instances.append(Gunicorn(name, instance_env, self.tmp_path, workers=2))
        for instance in self.instances:
            instance.wait_ready()
        return self

    @property
    def a(self):
        return self.instances[0]

    @property
    def b(self):
        return self.instances[1]

    def auth(self):
        return {"Authorization": basic_auth(self.client_id, self.client_secret)}

    def token(self, **claims):
        """A subject token from the deployment's issuer, signed with its published key."""
        token = mint(self.key, self.issuer, kid="k1", **claims)
        self.secrets.append(token)
        return token

    def exchange(self, instance, subject_token):
        """POST a token exchange of ``subject_token`` to ``instance``; the response."""
        response = requests.post(instance.url + "/oauth2/token", data=exchange_body(subject_token),
                                 headers=self.auth(), timeout=15)
        if response.status_code == HTTPStatus.OK:
            self.consumed.append(subject_token)
            self.secrets.append(response.json()["access_token"])
        return response

    def close(self):
        for instance in self.instances:
            instance.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.jwks is not None:
            self.jwks.close()
        if self.db is not None:
            self.db.drop()


@contextmanager
def running(deployment, **start):
    """``deployment`` started with ``start``, then closed; a gunicorn instance that died has its log printed.

    A missing redis-server or PostgreSQL skips, or fails the run where .ci/run sets IDC_REQUIRE_MULTI_INSTANCE.
    """
    missing = pytest.fail if os.environ.get("IDC_REQUIRE_MULTI_INSTANCE") else pytest.skip
    if shutil.which("redis-server") is None:
        missing("redis-server is not installed")
    if not postgres_available():
        missing("PostgreSQL is not reachable on 127.0.0.1:5432")
    try:
        yield deployment.start(**start)
    finally:
        if any(instance.process.poll() is not None for instance in deployment.instances):
            print(*(instance.logs() for instance in deployment.instances))
        deployment.close()
