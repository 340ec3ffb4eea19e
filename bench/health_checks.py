"""What ``CONN_HEALTH_CHECKS`` costs on PostgreSQL: token-endpoint requests/s with and without it.

Two gunicorn servers (``gunicorn -c gunicorn.conf.py``, as ``make run``) on one freshly prepared
PostgreSQL database, identical but for ``CONN_HEALTH_CHECKS`` (0 and 1), are loaded with wrk in
alternating slices (off, on, on, off, …) so that both see the same drift of the host's speed;
then the two per-request costs are timed in-process on one connection to the same server: the
``SELECT 1`` round trip Django's health check makes at the first query of every request, and the
poll of the idle socket that exchange/ops/outage.py makes instead when health checks are off.

    python -m bench.health_checks [--duration 20] [--rounds 10] [--warmup 3] [--postgres URL]
"""

import argparse
import os
import select
import shutil
import time
from pathlib import Path

import psycopg

from bench import fixtures
from bench.run import ROOT, Config, JWKSServer, Server, ensure_postgres_database, log, merge, slice_seconds



def per_call_us(function, count):
    started = time.perf_counter()
    for _ in range(count):
        function()
    return (time.perf_counter() - started) / count * 1e6


def in_process_costs(url):
    """Microseconds per SELECT 1 round trip and per poll of the idle socket, on one connection."""
    with psycopg.connect(url, autocommit=True) as conn:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        per_call_us(lambda: conn.execute("SELECT 1"), 200)  # warm
        return {
            "select_1_us": per_call_us(lambda: conn.execute("SELECT 1"), 3000),
            "poll_us": per_call_us(lambda: poller.poll(0), 100000),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=20, help="seconds of load per scenario and setting")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--max-rps", type=float, default=1500, help="sizes the pre-minted token pools")
    parser.add_argument("--postgres", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/idc_bench_health"))
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench-health"))
    parser.add_argument("--first", choices=("0", "1"), default="0",
                        help="the CONN_HEALTH_CHECKS value whose server starts first and leads the first round")
    args = parser.parse_args(argv)
    settings = (args.first, "1" if args.first == "0" else "0")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make bench` installs it).")
    if not ensure_postgres_database(args.postgres):
        raise SystemExit("PostgreSQL is not reachable")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    jwks = JWKSServer(fixtures.jwks_document(fixtures.load_key(fixtures.key_file(workdir, "jwks-issuer-rsa", "rsa"))))
    config = Config("postgres-health-checks", args, workdir, database_url=args.postgres, signing="rs256")
    servers = {}
    try:
        config.prepare(jwks.url)
        runners = {}
        for setting in settings:
            server = servers[setting] = Server(f"checks-{setting}", config.dir,
                                               dict(config.env, CONN_HEALTH_CHECKS=setting)).start()
            for kind in ("client_credentials", "exchange"):
                spec = {"name": f"{kind}-{setting}", "kind": kind, "issuer": fixtures.PEM_ISSUER}
                runners[kind, setting] = config.slices(server, spec, args.duration, args.warmup, args.rounds)
                runners[kind, setting](args.warmup)
        parts = {key: [] for key in runners}
        seconds = slice_seconds(args.duration, args.rounds)
        for round_ in range(args.rounds):
            order = settings if round_ % 2 == 0 else settings[::-1]
            for setting in order:
                for kind in ("client_credentials", "exchange"):
                    parts[kind, setting].append(runners[kind, setting](seconds))
            log(f"   round {round_ + 1}/{args.rounds} done")
    finally:
        for server in servers.values():
            server.stop()
        jwks.close()
    costs = in_process_costs(args.postgres)

    print(f"\nwrk -t{args.threads} -c{args.connections}, {args.duration} s per scenario and setting in "
          f"{args.rounds} alternating slices after {args.warmup} s warm-up; gunicorn -c gunicorn.conf.py on PostgreSQL")
    print(f"{'scenario':<20} {'CONN_HEALTH_CHECKS':>18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for kind in ("client_credentials", "exchange"):
        results = {setting: merge(parts[kind, setting]) for setting in settings}
        for setting in ("0", "1"):
            r = results[setting]
            print(f"{kind:<20} {setting:>18} {r['rps']:>9.1f} {r['p50_us'] / 1000:>8.2f} {r['p99_us'] / 1000:>8.2f} "
                  f"{r['errors']:>7}")
        print(f"{kind:<20} {'on / off':>18} {results['1']['rps'] / results['0']['rps']:>9.3f}")
    print(f"\nper request, in-process on one connection: SELECT 1 round trip {costs['select_1_us']:.1f} µs; "
          f"poll of the idle socket {costs['poll_us']:.2f} µs")


if __name__ == "__main__":
    main()
