"""``kill -9`` during a burst of log appends leaves a valid log holding every
acknowledged entry.

A child process appends in a loop and prints each index only after the
append returned (the acknowledgement); the parent SIGKILLs it mid-burst.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from maestro_core.log import TransparencyLog
from maestro_core.store import open_store

CHILD = textwrap.dedent(
    """
    import sys
    from maestro_core.log import TransparencyLog
    from maestro_core.store import open_store

    home, tag, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = TransparencyLog(open_store(home))
    store = log._store
    n = 0
    print("ready", flush=True)
    while True:
        if batch == 1:
            idx = [log.append("crash.test", f"{tag}:{n}".encode())]
        else:
            idx = store.log_append_many([("crash.test", f"{tag}:{n + j}".encode()) for j in range(batch)])
        for j, i in enumerate(idx):
            print(i, f"{tag}:{n + j}", flush=True)
        n += batch
    """
)


def _burst_and_kill(home: Path, tag: str, acks_wanted: int, batch: int, delay: float) -> dict[int, bytes]:
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), tag, str(batch)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    acked: dict[int, bytes] = {}
    try:
        assert p.stdout is not None
        first = p.stdout.readline()
        assert first.strip() == "ready", first + (p.stderr.read() if p.stderr else "")
        deadline = time.monotonic() + 120
        while len(acked) < acks_wanted:
            line = p.stdout.readline()
            assert line, "child died: " + (p.stderr.read() if p.stderr else "")
            i, b = line.split()
            acked[int(i)] = b.encode()
            assert time.monotonic() < deadline, "child too slow"
        if delay:
            time.sleep(delay)  # let it get in the middle of another append
        os.kill(p.pid, signal.SIGKILL)
        # acknowledgements already written before the kill count too
        rest, _ = p.communicate(timeout=30)
        # only whole lines are acknowledgements: the kill can cut the last
        # one short (print writes its pieces, then the newline)
        *whole, _cut = rest.split("\n")
        for line in whole:
            i, b = line.split()
            acked[int(i)] = b.encode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == -signal.SIGKILL
    return acked


@pytest.mark.parametrize(
    "rounds",
    [
        [(150, 1, 0.0), (300, 1, 0.003), (420, 1, 0.0007)],
        [(200, 10, 0.0), (350, 7, 0.002)],
    ],
    ids=["single-appends", "batched-appends"],
)
def test_kill_9_during_appends(tmp_path: Path, rounds: list[tuple[int, int, float]]) -> None:
    home = tmp_path / "store"
    TransparencyLog(open_store(home)).append("setup", b"before the storm")
    all_acked: dict[int, bytes] = {0: b"before the storm"}
    rng = random.Random(len(rounds))
    for r, (acks, batch, delay) in enumerate(rounds):
        acked = _burst_and_kill(home, f"r{r}", acks, batch, delay + rng.random() * 0.001)
        assert len(acked) >= acks
        assert not set(acked) & set(all_acked), "an index was handed out twice"
        all_acked.update(acked)

        log = TransparencyLog(open_store(home))
        n = log.verify()  # every leaf, node and checkpoint recomputed
        assert n >= max(all_acked) + 1
        # whole transactions only: the log is a gap-free prefix
        assert n == log.size
        for i, b in all_acked.items():
            e = log._store.log_entry(i)
            assert e["body"] == b, i
        if batch > 1:
            # an append_many is one transaction: the tail is a whole batch
            tail = [log._store.log_entry(i)["body"] for i in range(n - batch, n)]
            seqs = [int(t.split(b":")[1]) for t in tail]
            assert seqs[-1] % batch == batch - 1, seqs
        # a proof for an acknowledged entry still checks out
        i = max(acked)
        p = log.prove(i, n)
        p.verify(log.root()[1], n)
        # and appending again works
        assert log.append("after", f"after round {r}".encode()) == n
        all_acked[n] = f"after round {r}".encode()
    assert TransparencyLog(open_store(home)).verify() == max(all_acked) + 1
