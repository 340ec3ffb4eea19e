"""The acceptance figures of a side-by-side run (``make bench-peer``) from its ``rounds.txt``.

Each line of that file is ``ROUND SIDE rps=… p50_ms=… p99_ms=… n=… non200=…`` (the shared
``side_by_side.sh``). Round 0 warms the peer's JIT and is left out, as the script's own medians
leave it out. Prints, for rounds 1..: each side's median req/s, p50 and p99, non-200 answers,
ours/peer for req/s and for p99. The req/s compared are the 200 answers per second: a non-200 (a
subject token sent twice once a round's pool runs out — ours refuses replays, the peer does not)
is not an exchange, so it is not counted; a run with non-200 answers says so.

    python -m bench.peer_summary var/bench/peer/rounds.txt
"""

import statistics
import sys


def parse(lines):
    """{side: [{"rps": …, "p50_ms": …, "p99_ms": …, "n": …, "non200": …}, …]} for rounds after the first."""
    sides = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit() or int(fields[0]) == 0:
            continue
        values = dict(field.split("=", 1) for field in fields[2:] if "=" in field)
        row = {key: float(value) for key, value in values.items()}
        row["ok_rps"] = row["rps"] * (row["n"] - row["non200"]) / row["n"] if row.get("n") else 0.0
        sides.setdefault(fields[1], []).append(row)
    return sides


def summary(sides):
    medians = {side: {key: statistics.median(row[key] for row in rows) for key in ("rps", "ok_rps", "p50_ms", "p99_ms")}
               | {"non200": sum(row["non200"] for row in rows), "rounds": len(rows)}
               for side, rows in sides.items()}
    ours, peer = medians.get("ours"), medians.get("node")
    ratios = {}
    if ours and peer and peer["rps"] > 0 and peer["p99_ms"] > 0:
        ratios = {"rps": ours["ok_rps"] / peer["ok_rps"] if peer["ok_rps"] else 0.0, "p99": ours["p99_ms"] / peer["p99_ms"]}
    return medians, ratios


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0] if argv else "var/bench/peer/rounds.txt") as rounds:
        medians, ratios = summary(parse(rounds))
    for side, m in sorted(medians.items()):
        print(f"{side:5} median of rounds 1..{m['rounds']}: {m['ok_rps']:.1f} exchanges/s ({m['rps']:.1f} req/s)  p50 {m['p50_ms']:.2f} ms  "
              f"p99 {m['p99_ms']:.2f} ms  non-200 {int(m['non200'])}")
    if any(m["non200"] for m in medians.values()):
        print("warning: non-200 answers: a round's subject tokens ran out (raise SBS_TOKENS) or exchanges failed")
    if ratios:
        print(f"ours/peer req/s {ratios['rps']:.3f} (target >= 0.70)   ours/peer p99 {ratios['p99']:.2f} (target <= 3)")
    return 0 if ratios else 1


if __name__ == "__main__":
    sys.exit(main())
