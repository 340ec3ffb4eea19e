"""CPU time per token exchange, in process, and where it goes (cProfile on a CPU clock).

The machine the benchmarks run on is shared, so wall-clock figures move with the load; this
harness counts process CPU time (``time.process_time``) instead. It prepares a SQLite database
as ``bench.inprocess`` does (bench issuer, application, fresh subject tokens), sets Django up with
the default settings, warms up, then serves the exchanges through Django's WSGI handler, as
gunicorn calls it:

- ``--rounds`` rounds of ``--n`` exchanges, unprofiled: µs of CPU per exchange, the median of the
  rounds (and the minimum) is the figure to compare;
- then one profiled round (cProfile with ``timer=time.process_time``): the top entries by own
  time and by cumulative time (the profiler's overhead inflates every figure in it; compare
  entries with each other, not with the unprofiled figure).

    python -m bench.profile_exchange [--n 1000] [--rounds 5] [--top 30] [--workdir var/bench/profile]
"""

import argparse
import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 50
SPARE = 50


def serve_all(handler, environs):
    """Serve every environ; the statuses."""
    statuses = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for environ in environs:
        response = handler(environ, start_response)
        for _chunk in response:
            pass
        response.close()
    return statuses


def run(workdir, n, rounds, top, sort_keys, dump=None, offset=0):
    """Under the bench environment: measure, then profile. Exits non-zero on any non-200."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "identity_console.settings")
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    from bench.inprocess import _environ

    workdir = Path(workdir)
    credentials = json.loads((workdir / "application.json").read_text())
    tokens = (workdir / "tokens.txt").read_text().split()
    environs = [_environ("exchange_rs256", credentials, token) for token in tokens]
    handler = WSGIHandler()
    bad = []
    position = offset  # each token can be exchanged once: a rerun on the same tokens starts past the used ones

    def take(count):
        nonlocal position
        batch = environs[position: position + count]
        position += count
        if len(batch) < count:
            raise SystemExit(f"only {len(tokens)} subject tokens, fewer than this run needs (each is exchanged once)")
        return batch

    bad += [s for s in serve_all(handler, take(WARMUP)) if not s.startswith("200")]
    figures = []
    for _ in range(rounds):
        batch = take(n)
        started = time.process_time()
        statuses = serve_all(handler, batch)
        figures.append((time.process_time() - started) / n * 1e6)
        bad += [s for s in statuses if not s.startswith("200")]
    profiler = cProfile.Profile(time.process_time)
    batch = take(n)
    profiler.enable()
    statuses = serve_all(handler, batch)
    profiler.disable()
    bad += [s for s in statuses if not s.startswith("200")]

    print(f"CPU per exchange (process_time, {rounds} rounds of {n}, unprofiled): "
          f"median {statistics.median(figures):.0f} µs, min {min(figures):.0f} µs; "
          f"rounds {', '.join(f'{f:.0f}' for f in figures)}")
    stats = pstats.Stats(profiler)
    if dump:
        stats.dump_stats(dump)
    total = stats.total_tt
    # Python function calls per exchange: unlike time, the same on a loaded machine as on a quiet one.
    print(f"profiled round: {total / n * 1e6:.0f} µs CPU per exchange under cProfile, "
          f"{stats.total_calls / n:.0f} function calls per exchange")
    for key in sort_keys:
        print(f"\n--- top {top} by {key} (µs per exchange) ---")
        rows = []
        for (filename, line, name), (cc, nc, tt, ct, _callers) in stats.stats.items():
            rows.append((tt if key == "tottime" else ct, tt, ct, nc, f"{_short(filename)}:{line}({name})"))
        rows.sort(reverse=True)
        print(f"{'own µs':>8} {'cum µs':>8} {'calls/ex':>8}  function")
        for _, tt, ct, nc, label in rows[:top]:
            print(f"{tt / n * 1e6:>8.1f} {ct / n * 1e6:>8.1f} {nc / n:>8.1f}  {label}")
    if bad:
        print(f"non-200 answers: {len(bad)}, e.g. {bad[:3]}", file=sys.stderr)
        return 1
    return 0


def _cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def through_gunicorn(workdir, env, n, rounds, offset):
    """CPU per exchange of gunicorn's processes (workers and master, /proc), served as configured.

    wrk sends ``n`` exchanges per round over 4 kept-alive connections; the figure is the CPU time
    the server's processes used in the round divided by the exchanges answered.
    """
    from bench import run as bench_run

    workdir = Path(workdir)
    credentials = json.loads((workdir / "application.json").read_text())
    tokens = (workdir / "tokens.txt").read_text().split()
    server = bench_run.Server("profile", workdir, env).start()
    figures = []
    try:
        pids = [server.process.pid, *server.workers]
        position = offset
        for index in range(rounds + 1):  # the first round warms up
            # A few more tokens than answers: wrk may send a request or two past its limit.
            batch = tokens[position: position + n + SPARE]
            position += n + SPARE
            if len(batch) < n + SPARE:
                raise SystemExit(f"only {len(tokens)} subject tokens, fewer than this run needs")
            path = workdir / "gunicorn-tokens.txt"
            path.write_text("\n".join(batch) + "\n")
            before = sum(_cpu_seconds(pid) for pid in pids)
            result = bench_run.wrk(server.url, "/oauth2/token", method="POST", auth=bench_run.basic(credentials),
                                   body=_exchange_form(), tokens=path, duration=120, limit=n, connections=4)
            used = sum(_cpu_seconds(pid) for pid in pids) - before
            if result["errors"]:
                raise SystemExit(f"errors through gunicorn: {result}")
            if index:
                figures.append(used / result["requests"] * 1e6)
    finally:
        server.stop()
    print(f"CPU per exchange through gunicorn (/proc, workers + master, {rounds} rounds of {n}): "
          f"median {statistics.median(figures):.0f} µs, min {min(figures):.0f} µs; "
          f"rounds {', '.join(f'{f:.0f}' for f in figures)}")
    return position


def _exchange_form():
    from bench import fixtures

    return fixtures.TOKEN_EXCHANGE_FORM


def _short(filename):
    for marker in ("site-packages/", str(ROOT) + "/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", nargs="?", default="all", choices=["all", "run", "gunicorn"])
    parser.add_argument("--n", type=int, default=1000, help="exchanges per round")
    parser.add_argument("--rounds", type=int, default=5, help="unprofiled rounds")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="tottime,cumulative")
    parser.add_argument("--gunicorn", action="store_true", help="first measure through gunicorn (/proc CPU)")
    parser.add_argument("--offset", type=int, default=0, help="run: the first token to use (skip used ones)")
    parser.add_argument("--dump", help="also write the profile to this file (pstats format; e.g. for snakeviz)")
    parser.add_argument("--workdir", default=str(ROOT / "var" / "bench" / "profile"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench import inprocess

    if args.action == "run":
        return run(args.workdir, args.n, args.rounds, args.top, args.sort.split(","), args.dump, args.offset)
    # inprocess.prepare mints 2 * (n + its warm-up) tokens; ask for enough for every round here.
    needed = WARMUP + (args.rounds + 1) * args.n
    if args.gunicorn or args.action == "gunicorn":
        needed += (args.rounds + 1) * (args.n + SPARE)
    if args.action == "gunicorn" and Path(args.workdir, "tokens.txt").exists():
        needed = 0  # measure again on the prepared database, past the tokens used (--offset)
    if needed:
        inprocess.prepare(args.workdir, needed // 2 + 1)
    # As gunicorn serves it (gunicorn.conf.py): the default log level, so the audit line of each
    # exchange is formatted and written (to a file here), and metrics in multiprocess mode.
    env = inprocess._env_for(args.workdir, "exchange_rs256")
    env.pop("LOG_LEVEL")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(Path(args.workdir) / "metrics")
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    command = [sys.executable, "-m", "bench.profile_exchange", "run", "--n", str(args.n), "--rounds",
               str(args.rounds), "--top", str(args.top), "--sort", args.sort, "--workdir", args.workdir]
    if args.dump:
        command += ["--dump", str(Path(args.dump).resolve())]
    if args.action == "gunicorn" or args.gunicorn:
        offset = through_gunicorn(args.workdir, env, args.n, args.rounds, args.offset)
        if args.action == "gunicorn":
            return 0
        command += ["--offset", str(offset)]
    log = Path(args.workdir) / "server.log"
    with open(log, "w") as stderr:
        code = subprocess.run(command, cwd=ROOT, env=env, stderr=stderr).returncode
    if code:
        print(log.read_text()[-3000:], file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
