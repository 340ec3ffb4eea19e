"""Instructions per in-process request, counted by callgrind (deterministic, unlike req/s here).

``prepare`` (not under valgrind) migrates a SQLite database under the work folder, creates the
bench issuer and application and mints subject tokens. ``run`` (under valgrind) sets Django up,
warms up with a few requests of one kind, then serves N requests of that kind through Django's
WSGI handler, as gunicorn would call it. The measured loop runs as the comparison callback
of a call to libc's ``qsort`` (through ctypes; glibc's ``qsort`` hands over to ``qsort_r``), so
``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=qsort_r`` counts those N
requests and not start-up, migrations, minting or warm-up (libc's own few start-up
``qsort_r`` calls add ~60 k instructions in all, under 0.2 % of one exchange).

    python -m bench.inprocess [--n 50] [--workdir var/bench/callgrind]     # prepares, runs callgrind, prints
"""

import argparse
import base64
import ctypes
import io
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import django
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from django.core.handlers.wsgi import WSGIHandler

from bench import fixtures
from bench.run import basic

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("trivial", "client_credentials", "exchange_rs256", "exchange_es256", "crypto_rs256", "crypto_es256")
#: Not requests: the cryptography one exchange cannot skip, called directly (no Django, no PyJWT) —
#: verify the subject token's RS256 signature, sign an access token of the same size the
#: exchange issues. The floor under the exchange rows: no exchange can cost less than it.
FLOORS = {"crypto_rs256": "rs256", "crypto_es256": "es256"}
WARMUP = 5


def _environ(kind, credentials, token=None):
    if kind == "trivial":
        return {"REQUEST_METHOD": "GET", "PATH_INFO": "/livez", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1"}
    body = (fixtures.CLIENT_CREDENTIALS_FORM if kind == "client_credentials" else fixtures.TOKEN_EXCHANGE_FORM + token).encode()
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/oauth2/token", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": basic(credentials), "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}


def _env_for(workdir, kind):
    signing = "es256" if kind in ("exchange_es256", "crypto_es256") else "rs256"
    key = fixtures.key_file(workdir, f"server-signing-{signing}", "rsa" if signing == "rs256" else "ec")
    return {**os.environ, "VAR_DIR": str(Path(workdir) / "var"), "DATABASE_URL": "",
            "TOKEN_EXCHANGE_SIGNING_KEY_FILE": str(key), "CONSOLE_ISSUER": fixtures.CONSOLE_ISSUER, "DEBUG": "",
            "LOG_LEVEL": "WARNING", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}


def prepare(workdir, n):
    workdir = Path(workdir)
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "var").mkdir(parents=True)
    env = _env_for(workdir, "trivial")
    subprocess.run([sys.executable, "-m", "bench.prepare", "--folder", str(workdir), "--out",
                    str(workdir / "application.json")], cwd=ROOT, env=env, check=True)
    key = fixtures.key_file(workdir, "subject-issuer-rsa", "rsa")
    # One slice per exchange kind: the replay store is shared (the database without Redis).
    fixtures.mint_tokens(workdir / "tokens.txt", key, fixtures.PEM_ISSUER, 2 * (n + WARMUP))


def _in_qsort(work):
    """Run ``work()`` as the comparison callback of libc's qsort: what callgrind counts (see the docstring)."""
    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    def loop(a, b):
        work()
        return 0

    libc = ctypes.CDLL(None)
    pair = (ctypes.c_int * 2)(1, 2)
    libc.qsort(pair, 2, ctypes.sizeof(ctypes.c_int), loop)


def run_floor(workdir, kind, n):
    """WARMUP + n times the cryptography of one exchange (see FLOORS); the last n inside qsort."""
    workdir = Path(workdir)
    issuer_key = fixtures.load_key(fixtures.key_file(workdir, "subject-issuer-rsa", "rsa")).public_key()
    signing = FLOORS[kind]
    server_key = fixtures.load_key(os.environ["TOKEN_EXCHANGE_SIGNING_KEY_FILE"])
    tokens = (workdir / "tokens.txt").read_text().split()[: WARMUP + n]
    pieces = []
    for token in tokens:
        header, payload, signature = token.split(".")
        pieces.append(((header + "." + payload).encode(), base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))))
    # An access token's signing input is about as long as a subject token's (same claims, plus sub_id).
    if signing == "rs256":
        sign = lambda data: server_key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    else:
        sign = lambda data: server_key.sign(data, ec.ECDSA(hashes.SHA256()))  # noqa: E731

    def once(signing_input, signature):
        issuer_key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
        sign(signing_input)

    for signing_input, signature in pieces[:WARMUP]:
        once(signing_input, signature)
    _in_qsort(lambda: [once(*piece) for piece in pieces[WARMUP:]])
    print(json.dumps({"kind": kind, "n": len(pieces) - WARMUP}))
    return 0 if len(pieces) == WARMUP + n else 1


def run(workdir, kind, n):
    """Serve WARMUP + n requests of ``kind``; the last n inside qsort. Exits non-zero on any non-200."""
    sys.path.insert(0, str(ROOT))
    if kind in FLOORS:
        return run_floor(workdir, kind, n)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_console.settings")
    django.setup()

    workdir = Path(workdir)
    credentials = json.loads((workdir / "application.json").read_text())
    tokens = (workdir / "tokens.txt").read_text().split()
    if kind.startswith("exchange"):
        first = 0 if kind == "exchange_rs256" else WARMUP + n
        environs = [_environ(kind, credentials, token) for token in tokens[first: first + WARMUP + n]]
    else:
        environs = [_environ(kind, credentials) for _ in range(WARMUP + n)]
    handler = WSGIHandler()
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def serve(environ):
        for chunk in handler(environ, start_response):
            pass

    for environ in environs[:WARMUP]:
        serve(environ)
    measured = environs[WARMUP:]

    def loop():
        for environ in measured:
            serve(environ)

    _in_qsort(loop)
    bad = [s for s in statuses if not s.startswith("200")]
    print(json.dumps({"kind": kind, "n": n, "statuses": len(statuses), "non_200": bad[:3]}))
    return 1 if bad else 0


def callgrind(workdir, kind, n):
    out = Path(workdir) / f"callgrind.{kind}.out"
    command = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=qsort_r",
               f"--callgrind-out-file={out}", sys.executable, "-m", "bench.inprocess", "run", "--kind", kind,
               "--n", str(n), "--workdir", str(workdir)]
    completed = subprocess.run(command, cwd=ROOT, env=_env_for(workdir, kind), capture_output=True, text=True)
    if completed.returncode != 0:
        raise SystemExit(f"{kind}: callgrind run failed\n{completed.stdout}\n{completed.stderr[-3000:]}")
    match = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
    return int(match.group(1)) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", default="all", choices=["all", "prepare", "run"])
    parser.add_argument("--kind", choices=KINDS)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_CALLGRIND_N", 50)))
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "callgrind"))
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    if args.action == "run":
        return run(args.workdir, args.kind, args.n)
    prepare(args.workdir, args.n)
    if args.action == "prepare":
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian package valgrind; `make bench` installs it).")
    kinds = args.kinds.split(",")
    with ThreadPoolExecutor(2) as pool:  # counts do not depend on the load, so two run at once
        counts = dict(zip(kinds, pool.map(lambda k: callgrind(args.workdir, k, args.n), kinds)))
    base = counts.get("trivial")
    print(f"\nvalgrind --tool=callgrind, instructions per in-process request (mean of {args.n}, after {WARMUP} warm-up)")
    print(f"{'request':<22} {'instructions':>14} {'x trivial':>10}  target")
    targets = {"exchange_rs256": 7.0, "exchange_es256": 3.5}
    rows = []
    for kind, count in counts.items():
        ratio = count / base if base else None
        target = targets.get(kind)
        verdict = "" if target is None or ratio is None else f"<= {target:.1f}  {'met' if ratio <= target else 'NOT met'}"
        print(f"{kind:<22} {count / 1e6:>12.2f} M {ratio:>10.2f}  {verdict}" if ratio else f"{kind:<22} {count / 1e6:>12.2f} M")
        rows.append({"kind": kind, "instructions": int(count), "x_trivial": ratio, "target": target})
    for floor, exchange in (("crypto_rs256", "exchange_rs256"), ("crypto_es256", "exchange_es256")):
        if base and floor in counts and exchange in counts:
            share = counts[floor] / counts[exchange]
            print(f"{floor}: the signature check and signing of one exchange alone (no Django, no PyJWT) = "
                  f"{counts[floor] / base:.2f} x trivial, {share:.0%} of {exchange}; "
                  f"the rest of the exchange = {(counts[exchange] - counts[floor]) / base:.2f} x trivial")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
