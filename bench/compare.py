"""Before/after: the token exchange of two checkouts, served side by side, measured in alternating slices.

Each checkout's own code serves (gunicorn -c gunicorn.conf.py, started from that checkout, with
its own fresh SQLite database); wrk drives one server, then the other, for ``--rounds`` slices
of ``--seconds`` each, so both see the same drift of the host's speed. Prints req/s of each
per slice and in all, and the ratio. The other checkout must have run ``make install`` (or
share this one's virtualenv); its migrations are applied to its own database.

    python -m bench.compare ../before . [--rounds 8] [--seconds 2] [--signing es256]
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
    args = parser.parse_args(argv)

    class Load:
        threads, connections, max_rps = 1, 8, args.max_rps

    checkouts = [Path(args.before).resolve(), Path(args.after).resolve()]
    servers, slices = [], []
    try:
        for index, checkout in enumerate(checkouts):
            config = run.Config(f"compare-{index}", Load, Path(args.workdir), signing=args.signing)
            config.prepare("", cwd=checkout)
            per_slice = int(args.max_rps * args.seconds) + 200
            pool = config.tokens(f"compare-{index}", fixtures.PEM_ISSUER, per_slice * (args.rounds + 1)).read_text().split()
            files = []
            for number in range(args.rounds + 1):  # the first one warms up
                path = config.dir / f"slice-{number}.txt"
                path.write_text("\n".join(pool[number * per_slice:(number + 1) * per_slice]) + "\n")
                files.append(path)
            server = run.Server(f"compare-{index}", config.dir, config.env, cwd=checkout).start()
            servers.append(server)

            def slice_(seconds, server=server, config=config, files=iter(files)):
                result = run.wrk(server.url, "/oauth2/token", method="POST", auth=run.basic(config.credentials),
                                 body=fixtures.TOKEN_EXCHANGE_FORM, tokens=next(files), duration=seconds)
                if result["errors"]:
                    raise SystemExit(f"{server.name}: {result['errors']} errors, e.g. {result.get('sample')}")
                return result

            slices.append(slice_)
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
    rates = []
    for index, checkout in enumerate(checkouts):
        merged = run.merge(parts[index])
        rates.append(merged["rps"])
        print(f"{'AB'[index]} {checkout}: {merged['rps']:.0f} req/s (slices: {merged['slices_rps']})")
    print(f"B / A = {rates[1] / rates[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
