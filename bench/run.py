"""Throughput benchmark of the token endpoint, on loopback, with the production server set-up.

For each configuration (SQLite with RS256 issued tokens, SQLite with ES256, PostgreSQL with
RS256) this starts gunicorn exactly as `make run` does (``gunicorn -c gunicorn.conf.py``), with
a fresh database holding a PEM-backed and a JWKS-backed trusted issuer (the JWKS is served on
127.0.0.1 by this script) and an application; pre-mints one subject token per request; warms
up; drives fixed-duration load with wrk, in slices interleaved across the scenarios (ceiling,
client_credentials, exchange, ceiling, …) so that all of them see the same drift of the host's
speed; prints requests/s, p50/p99 latency and errors per scenario, and the ratios between
scenarios measured in the same run. ``--soak`` then sends
100,000 exchanges and reports errors and worker RSS before and after.

The machine is shared and its host throttles: absolute figures drift from run to run and within
a run, so the ratios (both sides measured in alternating slices of the same minutes) are what to
compare.

    python -m bench.run [--duration 20] [--rounds 20] [--warmup 3] [--soak] [--postgres URL|--no-postgres]
"""

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

import psycopg

from bench import fixtures

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LUA = ROOT / "bench" / "load.lua"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# -- the JWKS endpoint of the JWKS-backed bench issuer --------------------------

class JWKSServer:
    def __init__(self, document):
        body = json.dumps(document).encode()
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- the server under test ---------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_pids(master_pid):
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                pids.append(int(entry.name))
    return sorted(pids)


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Server:
    """gunicorn -c gunicorn.conf.py on a free loopback port, with its own VAR_DIR and database."""

    def __init__(self, name, workdir, env, cwd=ROOT):
        self.name = name
        self.cwd = cwd  # the checkout whose code serves (bench/compare.py starts another one)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log_path = workdir / f"gunicorn-{name}.log"
        self.process = None

    def start(self):
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(Path(PY).parent / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{self.port}",
             "identity_console.wsgi"],
            cwd=self.cwd, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/livez", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within 60 s; see {self.log_path}")

    @property
    def workers(self):
        return worker_pids(self.process.pid)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop (only our own master)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


# -- load ---------------------------------------------------------------------------

def wrk(url, path, *, method="GET", auth="-", body="-", tokens="-", duration=10, limit=0, threads=1, connections=8):
    """One wrk run; returns the parsed BENCH_RESULT plus req/s.

    With ``limit``, each thread stops after limit/threads responses and wrk is ended (SIGINT,
    which makes it print its summary) as soon as every thread has; ``duration`` is then a bound.
    """
    per_thread_limit = -(-limit // threads) if limit else 0
    with tempfile.TemporaryDirectory() as done_dir:
        command = [
            "wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s",
            "-s", str(LUA), url + path, "--", method, path, auth, str(tokens), body, str(threads),
            str(per_thread_limit), done_dir if limit else "-",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + duration + 120
        while limit and process.poll() is None and time.monotonic() < deadline:
            if len(os.listdir(done_dir)) >= threads:
                process.send_signal(signal.SIGINT)  # our own wrk: it reports and exits
                break
            time.sleep(0.2)
        try:
            output, _ = process.communicate(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    line = next((l for l in output.splitlines() if l.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise SystemExit("wrk printed no result:\n" + output)
    result = json.loads(line.split(" ", 1)[1])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = (result["errors_connect"] + result["errors_read"] + result["errors_write"]
                        + result["errors_timeout"] + result["non_200"])
    return result


def basic(credentials):
    raw = f"{quote_plus(credentials['client_id'])}:{quote_plus(credentials['client_secret'])}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


class Config:
    """One server configuration and the scenarios run against it."""

    def __init__(self, name, args, workdir, *, database_url="", signing="rs256", scenarios=()):
        self.name, self.args, self.scenarios = name, args, scenarios
        self.dir = workdir / name
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        key = fixtures.key_file(workdir, f"server-signing-{signing}", "rsa" if signing == "rs256" else "ec")
        self.env = {
            **os.environ,
            "VAR_DIR": str(self.dir),
            "DATABASE_URL": database_url,
            "TOKEN_EXCHANGE_SIGNING_KEY_FILE": str(key),
            "CONSOLE_ISSUER": fixtures.CONSOLE_ISSUER,
            "DEBUG": "",
            "GUNICORN_LOGLEVEL": "warning",
            "GUNICORN_ACCESSLOG": "",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.workdir = workdir

    def prepare(self, jwks_url, cwd=ROOT):
        """Migrate and fill this configuration's database with the code (and migrations) of checkout ``cwd``."""
        out = self.dir / "application.json"
        subprocess.run([PY, "-m", "bench.prepare", "--folder", str(self.workdir), "--jwks-url", jwks_url,
                        "--out", str(out)], cwd=cwd, env=self.env, check=True)
        self.credentials = json.loads(out.read_text())

    def tokens(self, label, issuer, count):
        key = fixtures.key_file(self.workdir, "subject-issuer-rsa", "rsa")
        kid = fixtures.JWKS_KID if issuer == fixtures.JWKS_ISSUER else None
        if issuer == fixtures.JWKS_ISSUER:
            key = fixtures.key_file(self.workdir, "jwks-issuer-rsa", "rsa")
        return fixtures.mint_tokens(self.dir / f"tokens-{label}.txt", key, issuer, count, kid=kid)

    def slices(self, server, scenario, duration, warmup, rounds):
        """A function running one load slice of ``scenario`` per call: the warm-up first, then ``rounds`` slices.

        Exchanges need one fresh subject token per request (the bench issuers keep replay
        protection on): one pool is minted for the whole scenario and split into one file per slice.
        """
        kind, issuer = scenario["kind"], scenario.get("issuer")
        auth = basic(self.credentials)
        common = dict(threads=self.args.threads, connections=self.args.connections)
        if kind == "ceiling":
            return lambda d: wrk(server.url, "/livez", duration=d, **common)
        if kind == "client_credentials":
            return lambda d: wrk(server.url, "/oauth2/token", method="POST", auth=auth,
                                 body=fixtures.CLIENT_CREDENTIALS_FORM, duration=d, **common)
        per_slice = [int(self.args.max_rps * warmup) + 200] + [int(self.args.max_rps * slice_seconds(duration, rounds)) + 200] * rounds
        pool = self.tokens(scenario["name"], issuer, sum(per_slice)).read_text().split()
        files = []
        for index, size in enumerate(per_slice):
            path = self.dir / f"tokens-{scenario['name']}-{index}.txt"
            path.write_text("\n".join(pool[:size]) + "\n")
            pool = pool[size:]
            files.append(path)
        files = iter(files)
        return lambda d: wrk(server.url, "/oauth2/token", method="POST", auth=auth,
                             body=fixtures.TOKEN_EXCHANGE_FORM, tokens=next(files), duration=d, **common)

    def run_scenarios(self, server, scenarios, duration, warmup, rounds):
        """Every scenario warmed up, then measured in ``rounds`` interleaved slices (ceiling, …, exchange, ceiling, …).

        The host's speed drifts within a run; interleaving puts every scenario under the same drift,
        so the ratios between them hold even when the absolute figures move.
        """
        runners = {}
        for scenario in scenarios:
            runners[scenario["name"]] = self.slices(server, scenario, duration, warmup, rounds)
            if warmup:
                runners[scenario["name"]](warmup)
        parts = {scenario["name"]: [] for scenario in scenarios}
        for round_ in range(rounds):
            # Every other round in reverse order: no scenario always follows the same one.
            for scenario in (scenarios if round_ % 2 == 0 else scenarios[::-1]):
                parts[scenario["name"]].append(runners[scenario["name"]](slice_seconds(duration, rounds)))
        results = []
        for scenario in scenarios:
            result = merge(parts[scenario["name"]])
            result.update(config=self.name, scenario=scenario["name"])
            if result.get("pool_exhausted"):
                log(f"  warning: {scenario['name']} ran out of pre-minted tokens; raise --max-rps")
            results.append(result)
        return results


def slice_seconds(duration, rounds):
    """wrk takes whole seconds."""
    return max(1, round(duration / rounds))


def merge(slices):
    """One scenario's figures from its slices: counts add up; p50 is the median slice's, p99 the worst slice's."""
    merged = dict(slices[0])
    for name in ("requests", "duration_us", "errors", "errors_connect", "errors_read", "errors_write",
                 "errors_timeout", "non_200"):
        merged[name] = sum(part.get(name, 0) for part in slices)
    merged["rps"] = merged["requests"] / (merged["duration_us"] / 1e6)
    merged["p50_us"] = sorted(part["p50_us"] for part in slices)[len(slices) // 2]
    merged["p99_us"] = max(part["p99_us"] for part in slices)
    merged["pool_exhausted"] = sum(part.get("pool_exhausted", 0) or 0 for part in slices)
    merged["sample"] = next((part["sample"] for part in slices if part.get("sample")), "")
    merged["slices_rps"] = [round(part["rps"], 1) for part in slices]
    return merged


def print_table(results):
    print()
    print(f"{'configuration':<16} {'scenario':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7}")
    for r in results:
        print(f"{r['config']:<16} {r['scenario']:<22} {r['rps']:>8.1f} {r['p50_us'] / 1000:>8.1f} "
              f"{r['p99_us'] / 1000:>8.1f} {r['requests']:>9} {r['errors']:>7}")
        if r["errors"] and r.get("sample"):
            print(f"{'':<16}   first error: {r['sample']}")


RATIOS = [
    # (label, numerator (config, scenario), denominator (config, scenario), target)
    ("exchange RS256 / ceiling (SQLite)", ("sqlite-rs256", "exchange-pem"), ("sqlite-rs256", "ceiling"), 0.30),
    ("exchange ES256 / ceiling (SQLite)", ("sqlite-es256", "exchange-pem"), ("sqlite-es256", "ceiling"), 0.45),
    ("exchange RS256 / client_credentials", ("sqlite-rs256", "exchange-pem"), ("sqlite-rs256", "client_credentials"), 1.0),
    ("exchange ES256 / client_credentials", ("sqlite-es256", "exchange-pem"), ("sqlite-es256", "client_credentials"), 1.0),
    ("JWKS-backed / PEM-backed issuer", ("sqlite-rs256", "exchange-jwks"), ("sqlite-rs256", "exchange-pem"), None),
    ("ES256 / RS256 issued tokens", ("sqlite-es256", "exchange-pem"), ("sqlite-rs256", "exchange-pem"), None),
    ("exchange RS256 / ceiling (PostgreSQL)", ("postgres-rs256", "exchange-pem"), ("postgres-rs256", "ceiling"), 0.20),
    ("PostgreSQL / SQLite exchange RS256", ("postgres-rs256", "exchange-pem"), ("sqlite-rs256", "exchange-pem"), None),
]


def ratios(results):
    by = {(r["config"], r["scenario"]): r["rps"] for r in results}
    rows = []
    for label, num, den, target in RATIOS:
        if num in by and den in by and by[den]:
            value = by[num] / by[den]
            rows.append({"ratio": label, "value": round(value, 3), "target": target,
                         "met": None if target is None else value >= target})
    return rows


def print_ratios(rows):
    print()
    print(f"{'same-run ratio':<40} {'value':>7}  target")
    for row in rows:
        target = "" if row["target"] is None else f">= {row['target']:.2f}  {'met' if row['met'] else 'NOT met'}"
        print(f"{row['ratio']:<40} {row['value']:>7.3f}  {target}")


def ensure_postgres_database(url):
    """Create (afresh) the dedicated bench database named in ``url``; returns False when unreachable."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("idc_bench"):
        raise SystemExit("The PostgreSQL bench database must be a dedicated one named idc_bench*.")
    admin = parts._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return True
    except Exception as exc:  # no server, no rights: the PostgreSQL leg is skipped and says so
        log(f"PostgreSQL leg skipped: {exc}")
        return False


def soak(config, server, count, args):
    auth = basic(config.credentials)
    tokens = config.tokens("soak", fixtures.PEM_ISSUER, count + 64)
    warm = config.tokens("soak-warmup", fixtures.PEM_ISSUER, 1000)
    wrk(server.url, "/oauth2/token", method="POST", auth=auth, body=fixtures.TOKEN_EXCHANGE_FORM, tokens=warm,
        duration=60, limit=900, threads=args.threads, connections=args.connections)
    before = {pid: rss_kib(pid) for pid in server.workers}
    result = wrk(server.url, "/oauth2/token", method="POST", auth=auth, body=fixtures.TOKEN_EXCHANGE_FORM,
                 tokens=tokens, duration=args.soak_max_seconds, limit=count, threads=args.threads,
                 connections=args.connections)
    after = {pid: rss_kib(pid) for pid in server.workers}
    growth = {pid: (after[pid] - before[pid]) / before[pid] for pid in before if pid in after}
    return {"result": result, "rss_before_kib": before, "rss_after_kib": after, "rss_growth": growth,
            "restarted_workers": sorted(set(before) ^ set(after))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 20)))
    parser.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 3)))
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS", 20)),
                        help="interleaved slices per scenario (the duration is split among them)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--max-rps", type=float, default=2000, help="sizes the pre-minted token pools (tokens per second of load)")
    parser.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/idc_bench"))
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--only", help="comma-separated configurations to run")
    parser.add_argument("--soak", type=int, nargs="?", const=100_000, default=0, help="exchanges in the soak (100000)")
    parser.add_argument("--soak-max-seconds", type=int, default=1800)
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench"))
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make bench` installs it).")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jwks = JWKSServer(fixtures.jwks_document(fixtures.load_key(fixtures.key_file(workdir, "jwks-issuer-rsa", "rsa"))))

    everything = ["ceiling", "client_credentials", "exchange-pem", "exchange-jwks"]
    plans = [
        ("sqlite-rs256", "", "rs256", everything),
        ("sqlite-es256", "", "es256", ["ceiling", "client_credentials", "exchange-pem"]),
    ]
    if not args.no_postgres and ensure_postgres_database(args.postgres):
        plans.append(("postgres-rs256", args.postgres, "rs256", ["ceiling", "client_credentials", "exchange-pem"]))
    if args.only:
        wanted = set(args.only.split(","))
        plans = [p for p in plans if p[0] in wanted]

    issuers = {"exchange-pem": fixtures.PEM_ISSUER, "exchange-jwks": fixtures.JWKS_ISSUER}
    results, soak_result = [], None
    gunicorn_conf = {}
    try:
        for name, database_url, signing, scenarios in plans:
            config = Config(name, args, workdir, database_url=database_url, signing=signing)
            log(f"== {name}: preparing database")
            config.prepare(jwks.url)
            server = Server(name, config.dir, config.env).start()
            gunicorn_conf[name] = {"workers": len(server.workers)}
            try:
                specs = [{"name": scenario, "issuer": issuers.get(scenario),
                          "kind": scenario.split("-")[0] if scenario.startswith("exchange") else scenario}
                         for scenario in scenarios]
                log(f"   {', '.join(scenarios)}: {args.warmup} s warm-up each, then {args.rounds} interleaved "
                    f"rounds of {slice_seconds(args.duration, args.rounds)} s each")
                for result in config.run_scenarios(server, specs, args.duration, args.warmup, args.rounds):
                    results.append(result)
                    log(f"   {result['scenario']} -> {result['rps']:.1f} req/s (slices: {result['slices_rps']}), "
                        f"{result['errors']} errors")
                if args.soak and name == plans[0][0]:  # sqlite-rs256 unless --only says otherwise
                    log(f"== soak: {args.soak} exchanges against {name}")
                    soak_result = soak(config, server, args.soak, args)
            finally:
                server.stop()
    finally:
        jwks.close()

    workers = ", ".join(f"{k}: {v['workers']} workers" for k, v in gunicorn_conf.items())
    print(f"\nwrk -t{args.threads} -c{args.connections}, {args.duration} s per scenario in {args.rounds} interleaved slices "
          f"(p50: median slice, p99: worst slice) after {args.warmup} s warm-up; "
          f"gunicorn -c gunicorn.conf.py ({workers}); JWKS fetched {jwks.hits} time(s) in all")
    print_table(results)
    rows = ratios(results)
    print_ratios(rows)
    if soak_result:
        r = soak_result["result"]
        print(f"\nsoak: {r['requests']} exchanges in {r['duration_us'] / 1e6:.0f} s ({r['rps']:.1f} req/s), "
              f"errors {r['errors']}, p50 {r['p50_us'] / 1000:.1f} ms, p99 {r['p99_us'] / 1000:.1f} ms")
        for pid, before in soak_result["rss_before_kib"].items():
            after = soak_result["rss_after_kib"].get(pid)
            print(f"  worker {pid}: RSS {before / 1024:.1f} MiB -> "
                  + (f"{after / 1024:.1f} MiB ({soak_result['rss_growth'][pid] * 100:+.1f} %)" if after else "gone"))
        if soak_result["restarted_workers"]:
            print(f"  workers changed during the soak: {soak_result['restarted_workers']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": rows, "soak": soak_result}, indent=2))
    failed = any(r["errors"] for r in results) or (soak_result and soak_result["result"]["errors"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
