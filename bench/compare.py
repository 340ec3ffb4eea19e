"""Before/after: the token exchange of two checkouts, served side by side, measured in alternating slices.

Each checkout's own code serves (gunicorn -c gunicorn.conf.py, started from that checkout, with
its own fresh SQLite database, or with ``--postgres`` its own fresh PostgreSQL database: the URL's
name with ``_a``/``_b`` appended; with ``--redis`` its own Redis database number, 1 and 2); wrk drives one server, then the other, for ``--rounds`` slices
of ``--seconds`` each, so both see the same drift of the host's speed. Prints req/s of each
per slice and in all, and the ratio. The other checkout must have run ``make install`` (or
share this one's virtualenv); its migrations are applied to its own database.

    python -m bench.compare ../before . [--rounds 8] [--seconds 2] [--signing es256]
        [--postgres postgresql://postgres@127.0.0.1:5432/idc_bench_me] [--redis redis://127.0.0.1:6380]
"""

import argparse
import sys
from pathlib import Path

from bench import fixtures, run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="checkout A (e.g. a git worktree of the commit before)")
    parser.add_argument("after", help="checkout B")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--signing", choices=["rs256", "es256"], default="es256")
    parser.add_argument("--max-rps", type=float, default=2000)
    parser.add_argument("--workdir", default=str(run.ROOT / "var" / "bench" / "compare"))
    parser.add_argument("--postgres", help="a PostgreSQL URL naming a dedicated idc_bench* database (else SQLite)")
    parser.add_argument("--redis", help="a Redis URL without database number (else no REDIS_URL)")
    args = parser.parse_args(argv)

    class Load:
        threads, connections, max_rps = 1, 8, args.max_rps

    checkouts = [Path(args.before).resolve(), Path(args.after).resolve()]
    exchange = {"name": "exchange-pem", "kind": "exchange", "issuer": fixtures.PEM_ISSUER}
    servers, slices = [], []
    try:
        for index, checkout in enumerate(checkouts):
            database_url = ""
            if args.postgres:
                database_url = f"{args.postgres.rstrip('/')}_{'ab'[index]}"
                if not run.ensure_postgres_database(database_url):
                    raise SystemExit(f"PostgreSQL database {database_url} could not be created")
            config = run.Config(f"compare-{index}", Load, Path(args.workdir), database_url=database_url,
                                signing=args.signing)
            if args.redis:
                config.env["REDIS_URL"] = f"{args.redis.rstrip('/')}/{index + 1}"
            config.prepare("", cwd=checkout)
            server = run.Server(f"compare-{index}", config.dir, config.env, cwd=checkout).start()
            servers.append(server)
            # The same pre-minted token slices as bench.run's scenarios: a warm-up, then one per round.
            slices.append(config.slices(server, exchange, args.seconds * args.rounds, args.seconds, args.rounds))
        for slice_ in slices:
            slice_(args.seconds)
        parts = [[], []]
        for number in range(args.rounds):
            order = (0, 1) if number % 2 == 0 else (1, 0)
            for index in order:
                parts[index].append(slices[index](args.seconds))
    finally:
        for server in servers:
            server.stop()
    merged = [run.merge(part) for part in parts]
    for server, result in zip(servers, merged):
        if result["errors"]:
            raise SystemExit(f"{server.name}: {result['errors']} errors, e.g. {result.get('sample')}")
    for index, (checkout, result) in enumerate(zip(checkouts, merged)):
        print(f"{'AB'[index]} {checkout}: {result['rps']:.0f} req/s (slices: {result['slices_rps']})")
    print(f"B / A = {merged[1]['rps'] / merged[0]['rps']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
