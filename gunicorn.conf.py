"""gunicorn settings used by `make run`, the benchmarks and production (override with GUNICORN_* env).

Chosen by measurement (docs/performance.md, "Serving"; figures in CHANGELOG.md): workers that
keep connections alive (gunicorn's ``sync`` workers close every connection after one request).

- One thread per worker on SQLite, where every request is CPU work plus local file I/O and threads
  only queue behind each other: ``identity_console.serving.InlineThreadWorker``, gthread's event
  loop serving each request on its own thread. With gthread's pool of one thread a worker kept
  accepting while busy and could take every connection of a client that opens several at once,
  serving them all on one core while the other worker idled (py-spy: one worker 100 % idle).
- Four threads per worker on PostgreSQL (``gthread``), where each query waits on a network round
  trip and other threads run meanwhile.

The code on the request path is thread-safe by design (shared instances are stateless; caches
take locks). With one thread a worker serves one request at a time: a JWKS fetch (bounded by
``JWKS_TOTAL_TIMEOUT_MS``, rare thanks to the cache and cooldowns) holds that worker, and a
request that hangs past ``timeout`` ends with the worker, as with gunicorn's ``sync`` workers.
"""

import glob
import multiprocessing
import os
import shutil
import tempfile

workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
_database_url = os.environ.get("DATABASE_URL", "")
_sqlite = not _database_url or _database_url.startswith("sqlite")
threads = int(os.environ.get("GUNICORN_THREADS", "1" if _sqlite else "4"))
worker_class = os.environ.get(
    "GUNICORN_WORKER_CLASS", "identity_console.serving.InlineThreadWorker" if threads == 1 else "gthread"
)
# The heartbeat each worker writes per loop (a file's mtime) in memory, not on a disk other
# processes keep busy (gunicorn's advice); where there is no /dev/shm, gunicorn's default.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 10
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None  # "-" for stdout; the path is logged, never the body
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# The path without its query string: the token endpoint refuses parameters in the URL, but a client
# that sends client_secret or subject_token there anyway must not get them written to the access log.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss'
access_log_format += ' %({x-request-id}o)s'  # ties the line to the app's logs

# Metrics: every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR and /metrics sums
# them (exchange/ops/metrics.py). One directory per instance, emptied at start (stale files would count
# twice); without a setting, a private temporary directory removed at exit.
_metrics_dir_is_ours = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir_is_ours:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="identity-console-metrics-")


def on_starting(server):
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    # Not at the top: prometheus_client picks its value class (multiprocess or not) when first imported,
    # which must come after PROMETHEUS_MULTIPROC_DIR is set above, or the forked workers inherit the wrong one.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _metrics_dir_is_ours:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


# LOG_FORMAT=json: gunicorn's own error and access logs as JSON lines too (exchange/ops/logging.py).
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "exchange.ops.logging.JsonFormatter"}},
        "filters": {"redact_secrets": {"()": "exchange.ops.logging.RedactSecrets"}},
        "handlers": {
            "json_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout",
                             "filters": ["redact_secrets"]},
        },
        "root": {"handlers": ["json_console"], "level": "INFO"},
        "loggers": {
            "gunicorn.error": {"handlers": ["json_console"], "level": "INFO", "propagate": False},
            "gunicorn.access": {"handlers": ["json_console"], "level": "INFO", "propagate": False},
        },
    }
