"""Watch a running bench daemon from outside for a silence of its log, and catch what it is doing.

Run beside a bench (``bench/run.py ... `` with ``WD_BENCH_DAEMON_LOG=DEBUG``): it finds the newest
``python -m watchdog --log-level DEBUG run`` process, its log (its stderr), and samples every
``--every-s`` (20 ms): the log's size, the process's scheduler state, CPU ticks and kernel wait
channel (``/proc/PID/stat``, ``wchan``, every thread), the machine's steal time
(``/proc/stat``), and CPU / I/O pressure (``/proc/pressure``). When the log has not grown for
``--trigger-s`` it runs ``py-spy dump`` on the daemon once (the Python stack *during* the
silence) and, when the log moves again, writes the samples around the silence to ``--out``.
The probe's own sampling lateness is recorded too: a probe that also stalled means the
machine (or this VM) stopped, not the daemon.

Nothing of this runs in the daemon; it costs the machine ~2 % of a core while it runs.

    python bench/stall_probe.py --out /tmp/stall-probe.txt --for-s 150 &
    flock /work/bench.lock env ... python bench/run.py --only detection_e2e --json ...
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

PYSPY = os.environ.get("PYSPY", str(Path(sys.executable).parent / "py-spy"))
TICK_S = os.sysconf("SC_CLK_TCK")


def find_daemon() -> int | None:
    """The newest DEBUG-level bench daemon (highest pid start time)."""
    best: tuple[int, int] | None = None
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            start = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[19])
        except OSError:
            continue
        if b"watchdog" in argv and b"DEBUG" in argv and b"run" in argv and (
                best is None or start > best[0]):
            best = (start, int(entry))
    return None if best is None else best[1]


def read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def sample(pid: int, log: str) -> dict[str, object]:
    stat = read(f"/proc/{pid}/stat").rsplit(")", 1)
    fields = stat[1].split() if len(stat) == 2 else []
    threads = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            tstat = read(f"/proc/{pid}/task/{tid}/stat").rsplit(")", 1)
            tf = tstat[1].split() if len(tstat) == 2 else []
            if tf:
                threads.append(f"{tid}:{tf[0]}:{read(f'/proc/{pid}/task/{tid}/wchan') or '-'}")
    except OSError:
        pass
    cpu = read("/proc/stat").split("\n", 1)[0].split()
    return {
        "t": time.monotonic(), "wall": time.time(),
        "size": os.stat(log).st_size if os.path.exists(log) else -1,
        "state": fields[0] if fields else "?",
        "utime": int(fields[11]) if fields else 0, "stime": int(fields[12]) if fields else 0,
        "wchan": read(f"/proc/{pid}/wchan") or "-",
        "threads": " ".join(sorted(threads)),
        "steal": int(cpu[8]) if len(cpu) > 8 else 0,
        "iowait": int(cpu[5]) if len(cpu) > 5 else 0,
        "io_full": read("/proc/pressure/io").split("\n")[1].split()[-1] if read(
            "/proc/pressure/io") else "",
        "cpu_some": read("/proc/pressure/cpu").split("\n")[0].split()[-1] if read(
            "/proc/pressure/cpu") else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--for-s", type=float, default=180.0)
    parser.add_argument("--every-s", type=float, default=0.02)
    parser.add_argument("--trigger-s", type=float, default=1.6)
    parser.add_argument("--report-s", type=float, default=1.0, help="log gaps reported from")
    args = parser.parse_args()
    out = open(args.out, "a", buffering=1)  # noqa: SIM115
    end = time.monotonic() + args.for_s
    pid = None
    while pid is None and time.monotonic() < end:
        pid = find_daemon()
        time.sleep(0.05)
    if pid is None:
        print("no daemon found", file=out)
        return 1
    log = os.readlink(f"/proc/{pid}/fd/2")
    print(f"daemon {pid} log {log} at {time.strftime('%H:%M:%S', time.gmtime())} UTC", file=out)
    ring: deque[dict[str, object]] = deque(maxlen=int(12 / args.every_s))
    last_size, last_move, dumped, worst_self = -1, time.monotonic(), False, 0.0
    prev_t = time.monotonic()
    while time.monotonic() < end and os.path.exists(f"/proc/{pid}"):
        s = sample(pid, log)
        now = float(s["t"])  # type: ignore[arg-type]
        self_gap = now - prev_t
        prev_t = now
        worst_self = max(worst_self, self_gap)
        if self_gap > 0.25:
            print(f"PROBE itself late: {self_gap:.3f}s at {s['wall']:.3f}", file=out)
        ring.append(s)
        if s["size"] != last_size:
            silent = now - last_move
            if silent >= args.report_s and last_size >= 0:
                print(f"\nLOG GAP {silent:.3f}s ending {s['wall']:.3f} "
                      f"({time.strftime('%H:%M:%S', time.gmtime(float(s['wall'])))} UTC)",  # type: ignore[arg-type]
                      file=out)
                first = now - silent - 0.5
                for r in ring:
                    if float(r["t"]) >= first:  # type: ignore[arg-type]
                        print("  " + " ".join(f"{k}={v}" for k, v in r.items() if k != "t"),
                              file=out)
            last_size, last_move, dumped = int(s["size"]), now, False  # type: ignore[call-overload]
        elif not dumped and now - last_move >= args.trigger_s:
            dumped = True
            done = subprocess.run([PYSPY, "dump", "--nonblocking", "--pid", str(pid)], capture_output=True,
                                  text=True, timeout=20, check=False)
            print(f"\nPY-SPY DUMP after {now - last_move:.2f}s of silence at {time.time():.3f}:\n"
                  f"{done.stdout}{done.stderr}", file=out)
        time.sleep(args.every_s)
    print(f"end at {time.strftime('%H:%M:%S', time.gmtime())} UTC; probe's worst own gap "
          f"{worst_self:.3f}s", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
