"""Memory of the guard matcher on a long stream: state is evicted, not leaked.

    .venv/bin/python benches/mem_cep.py [--events 10000000] [--keys 1000000]

Feeds ``--events`` events over ``--keys`` distinct keys (uniformly random,
so every key keeps coming back) in batches of 1M through the numpy path,
with three guards (a windowed sequence with a negation, an absence with a
deadline and a counting window). After each batch it prints the process
RSS (VmRSS from /proc), the matcher's live keys and runs, and evicted keys.
The input arrays of one batch are generated before the batch and freed
after it, so RSS growth comes from the matcher only. A last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from maestro_core import guards

GUARDS = """
guard seq { within 2ms  match a -> !c -> b }
guard ack { match save -> no success within 1ms }
guard burst { match count(error) >= 3 within 500us }
"""
NAMES = ["a", "b", "c", "save", "success", "error", "x", "y"]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1_000_000)
    a = ap.parse_args()
    m = guards.Matcher(guards.compile(GUARDS))
    rng = np.random.default_rng(11)
    base = rss_mb()
    rows = []
    t0 = time.perf_counter()
    done = 0
    peak_live = 0
    while done < a.events:
        n = min(a.batch, a.events - done)
        t = (np.arange(done, done + n, dtype=np.int64)) * 1_000  # 1 µs apart
        k = rng.integers(0, a.keys, size=n, dtype=np.int64)
        c = rng.integers(0, len(NAMES), size=n, dtype=np.int64)
        m.feed_arrays(t, k, c, NAMES)
        m.violation_arrays()  # drained: reported violations are not state
        del t, k, c
        done += n
        st = m.stats()
        peak_live = max(peak_live, st["live_keys"])
        rows.append((done, rss_mb(), st["live_keys"], st["live_runs"], st["evicted_keys"]))
        print(f"events {done:>11,}  rss {rows[-1][1]:8.1f} MB  live keys {st['live_keys']:>8,}  "
              f"live runs {st['live_runs']:>8,}  evicted {st['evicted_keys']:>11,}", flush=True)
    m.finish()
    secs = time.perf_counter() - t0
    first_half = max(r[1] for r in rows[: max(1, len(rows) // 2)])
    second_half = max(r[1] for r in rows[len(rows) // 2 :])
    out = {
        "events": a.events, "keys": a.keys, "seconds": round(secs, 2), "rss_start_mb": round(base, 1),
        "rss_peak_mb": round(max(r[1] for r in rows), 1), "rss_peak_first_half_mb": round(first_half, 1),
        "rss_peak_second_half_mb": round(second_half, 1), "peak_live_keys": peak_live,
        "evicted_keys": rows[-1][4], "live_keys_after_finish": m.stats()["live_keys"],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
