"""End-to-end benchmark: ingest, peer (ccxt.pro), veto, detection, footprint — one command.

Usage (from the repository root)::

    python bench/run.py            # a table
    python bench/run.py --json     # one JSON object on one line
    python bench/run.py --write-docs   # also refresh docs/BENCHMARKS.md
    python bench/run.py --table-from bench/results.json   # the table of a recorded run, no run

Everything is real and on loopback: a private redis-server on a free port, the simulator in its
own process (``python -m watchdog sim``), the daemon in its own process
(``python -m watchdog run --config TMP.toml`` with BINANCE_API_KEY/SECRET of the simulator's
account), and ccxt.pro in its own process. Nothing is left running afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import ingest  # noqa: E402
import redis  # noqa: E402
import sections  # noqa: E402
from infra import PYTHON, ROOT, Sim, daemon, redis_server, simulator  # noqa: E402

ACCOUNT = "bench"
FLOOD_SYMBOLS = ["BTCUSDT", "ETHUSDT"]

# (key, label, unit, target, better) — the keys, in its order.
KEYS: list[tuple[str, str, str, float, str]] = [
    ("ingest_events_per_s", "ingest, daemon, events/s (full speed)", "/s", 40_000, "higher"),
    ("ingest_p99_ms", "ingest, daemon, frame → Redis p99 @1,000/s", "ms", 2.0, "lower"),
    ("ccxt_events_per_s", "ccxt.pro watch_positions, events/s", "/s", 0, "info"),
    ("ingest_vs_ccxt", "ingest ÷ ccxt.pro (we also publish)", "x", 1.5, "higher"),
    ("veto_p99_ms", "veto begin/check p99 (worse of the two)", "ms", 0.5, "lower"),
    ("verdicts_per_s", "verdicts/s, one client, pipelined", "/s", 10_000, "higher"),
    ("detection_p95_ms", "closure detection, stream muted, daemon → Redis event, p95", "ms", 1000,
     "lower"),
    ("weight_per_min", "REST weight/min over those trials, stream muted", "/min", 360, "lower"),
    ("detection_steady_p95_ms", "closure detection, stream muted, trials from 70 s after the start "
     "(every minute but the start's), p95", "ms", 1000, "lower"),
    ("trigger_detection_p95_ms", "closure by a CONTRACT_PRICE stop, stream muted, crossing print → "
     "Redis event, p95", "ms", 300, "lower"),
    ("rss_mb", "daemon RSS, 300 symbols tracked", "MB", 60, "lower"),
    ("idle_cpu_pct", "daemon idle CPU", "%", 1.0, "lower"),
    ("idle_cpu_steady_pct", "daemon idle CPU, steady (after the first minute)", "%", 1.0, "lower"),
    ("ha_failover_p50_ms", "HA: kill -9 of the leader → allow again, p50", "ms", 0, "info"),
    ("ha_failover_p95_ms", "HA: kill -9 of the leader → allow again, p95", "ms", 2000, "lower"),
]


def machine() -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushall()
    client.close()


def _ingest(consumer: Any, sim: Sim, url: str, count: int, out: dict[str, Any],
            latency: bool = True) -> None:
    """Latency first (kept even if the full-speed flood then kills the consumer), then throughput.
    ``latency`` False: the throughput alone (a later round, ``_rounds``)."""
    if latency:
        lat = ingest.latency(sim, url, ACCOUNT, FLOOD_SYMBOLS[0], rate=1000.0, count=3000)
        out.update({"events_per_s": None, "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"]})
    out.update(ingest.throughput(sim, url, ACCOUNT, FLOOD_SYMBOLS, count, consumer.alive))


def section_ingest(url: str, count: int, details: dict[str, Any], latency: bool = True) -> None:
    """The daemon on a fresh simulator and a flushed Redis: latency (unless ``latency`` is False),
    then one full-speed flood, whose figures go to ``details["daemon"]``."""
    with simulator(FLOOD_SYMBOLS) as sim:
        _flush(url)
        with daemon(sim, url, ACCOUNT) as consumer:
            try:
                _ingest(consumer, sim, url, count, details.setdefault("daemon", {}), latency)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{consumer.log_tail()}") from exc


def section_peer(count: int, details: dict[str, Any], latency: bool = True) -> None:
    """ccxt.pro on a fresh simulator: one full-speed flood, then latency (unless ``latency`` is
    False); figures to ``details["ccxt"]``."""
    with simulator(FLOOD_SYMBOLS) as sim:
        base = [PYTHON, str(HERE / "peer_ccxt.py"), "--rest-url", sim.rest_url, "--ws-url", sim.ws_url,
                "--control-url", sim.control_url, "--symbols", *FLOOD_SYMBOLS]
        out = {}
        parts = [("throughput", ["--count", str(count)])]
        if latency:
            parts.append(("latency", ["--count", "3000", "--rate", "1000", "--symbols", "BTCUSDT"]))
        for name, extra in parts:
            done = subprocess.run(base + extra, cwd=ROOT, capture_output=True, text=True, timeout=240)
            if done.returncode != 0:
                raise RuntimeError(f"peer_ccxt.py {name} failed:\n{done.stderr[-1500:]}")
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    ccxt = details.setdefault("ccxt", {})
    ccxt["events_per_s"] = out["throughput"]["events_per_s"]
    if latency:
        ccxt.update({"p50_ms": out["latency"]["age_p50_ms"], "p99_ms": out["latency"]["age_p99_ms"]})


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _rounds(details: dict[str, Any], name: str, round_: int, step: Callable[[bool], None]) -> None:
    """One round of a full-speed flood of ``name`` ("daemon" or "ccxt"): round 0 also measures
    latency. Each round's events/s goes to ``rounds_events_per_s``; ``events_per_s`` is their
    median (the key's meaning: the throughput of this checkout on this machine, now the median
    of the rounds, which alternate with the other consumer's so both meet the same load)."""
    kept = details.get(name, {}).get("rounds_events_per_s", [])
    step(round_ == 0)
    out = details[name]
    rate = out.get("events_per_s")
    kept = [*kept, rate]
    out["rounds_events_per_s"] = kept
    rates = [r for r in kept if r]
    out["events_per_s"] = round(_median(rates), 1) if rates else None
    if name == "daemon":  # this round's drain figures, per round
        for field in ("elapsed_s", "sim_send_per_s", "drain_lag_ms"):
            out.setdefault(f"rounds_{field}", []).append(out.get(field))


def section_detection(trials: int, steady_s: float) -> dict[str, Any]:
    """bench/detection_bench.py: the daemon's pipeline (``runtime.build``) in its own process,
    stream muted, defaults; CLOSED seen by the pipeline's effects observer once written to Redis.
    ``weight_per_min`` is its steady state. Details only: the headline is ``detection_e2e``
    (the daemon process and Redis)."""
    done = subprocess.run([PYTHON, str(HERE / "detection_bench.py"), "--trials", str(trials),
                           "--steady-s", str(steady_s), "--json"],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'client'}"},
                          capture_output=True, text=True, timeout=280)
    if done.returncode != 0:
        raise RuntimeError(f"detection_bench.py failed:\n{done.stderr[-1500:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"trials": out["trials"], "p50_ms": round(out["p50_s"] * 1000, 1),
            "p95_ms": round(out["p95_s"] * 1000, 1), "max_ms": round(out["max_s"] * 1000, 1),
            "weight_per_min": out["steady_weight_per_min"],
            "trials_weight_per_min": out["weight_per_min"], "steady_s": out["steady_s"]}


def section_ha(kills: int) -> dict[str, Any]:
    """bench/ha.py in its own process (its own Redis, simulator and daemons): failover time
    over ``kills`` kill -9 of the leader, two instances, defaults (docs/HA.md)."""
    done = subprocess.run([PYTHON, str(HERE / "ha.py"), "--kills", str(kills), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"ha.py failed:\n{done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def section_ha_accounts(accounts: list[int], trials: int) -> dict[str, Any]:
    """bench/accounts.py in its own process: ``accounts`` on one instance and on two "hosts"
    (127.0.0.1 / 127.0.0.2, each IP metered on its own), the first of the two killed with -9
    after the detections: weight per IP, muted-stream detection, failover (docs/HA.md)."""
    done = subprocess.run([PYTHON, str(HERE / "accounts.py"), "--accounts", *map(str, accounts),
                           "--instances", "1", "2", "--hosts", "2", "--kill", "--trials",
                           str(trials), "--json"], cwd=ROOT, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"accounts.py failed:\n{done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ha_accounts_rows(runs: list[dict[str, Any]]) -> list[str]:
    rows = ["", "HA, many accounts (bench/accounts.py --hosts 2 --kill): muted-stream detection, "
            "weight per IP (steady), failover of the killed instance's accounts",
            "",
            "| accounts | instances (IPs) | detection p50 / p95 ms | weight/min per IP | "
            "failover p50 / max ms | detection after the kill ms |",
            "| --- | --- | --- | --- | --- | --- |"]
    for row in runs:
        if "error" in row:
            why = (str(row["error"]).strip().splitlines() or ["(no message)"])[-1][:80]
            rows.append(f"| {row['accounts']} | {row['instances']} | failed: {why} | | | |")
            continue
        ips = ", ".join(f"{ip} {w}" for ip, w in row.get("weight_per_min_by_ip", {}).items())
        fo = row.get("failover_ms") or {}
        rows.append(f"| {row['accounts']} | {row['instances']} ({row.get('hosts', 1)}) | "
                    f"{row['detection_p50_ms']} / {row['detection_p95_ms']} | {ips} | "
                    f"{fo.get('p50', '—')} / {fo.get('max', '—')} | "
                    f"{row.get('detection_after_kill_ms', '—')} |")
    return rows


def _flood_steps(args: argparse.Namespace, url: str,
                 details: dict[str, Any]) -> list[tuple[str, Callable[[], None]]]:
    """``--rounds`` full-speed floods of the daemon and of ccxt.pro, alternating (daemon, ccxt,
    daemon, ccxt, …): the two meet the same load on a shared machine, and the medians stand
    where one flood each made ``ingest_vs_ccxt`` a coin flip (docs/BENCHMARKS.md, session 11).
    Step names carry ``#round`` after the first; ``--only`` and errors use the section name."""
    steps: list[tuple[str, Callable[[], None]]] = []
    for r in range(max(1, args.rounds)):
        tag = "" if r == 0 else f"#{r}"
        steps.append((f"ingest{tag}", lambda r=r: _rounds(
            details, "daemon", r, lambda lat: section_ingest(url, args.count, details, lat))))
        steps.append((f"peer{tag}", lambda r=r: _rounds(
            details, "ccxt", r, lambda lat: section_peer(args.count, details, lat))))
    return steps


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_start = round(os.getloadavg()[0], 2)
    details: dict[str, Any] = {}
    errors: dict[str, str] = {}
    with redis_server() as rs:
        steps: list[tuple[str, Callable[[], None]]] = [
            *_flood_steps(args, rs.url, details),
            ("veto", lambda: details.__setitem__("veto", sections.veto(rs.url))),
            ("detection", lambda: details.__setitem__("detection", section_detection(
                args.core_trials, args.steady_s))),
            ("detection_e2e", lambda: details.__setitem__("detection_e2e", sections.detection(
                rs.url, trials=args.trials, account=ACCOUNT))),
            ("detection_steady", lambda: details.__setitem__(
                "detection_steady", sections.detection(rs.url, trials=args.trials,
                                                       account=ACCOUNT, warmup_s=70.0))),
            ("trigger_detection", lambda: details.__setitem__(
                "trigger_detection", sections.trigger_detection(rs.url, trials=args.trials,
                                                                account=ACCOUNT))),
            ("footprint", lambda: details.__setitem__("footprint", sections.footprint(
                rs.url, idle_s=args.idle_s, account=ACCOUNT))),
            ("ha", lambda: details.__setitem__("ha", section_ha(args.ha_kills))),
            ("ha_accounts", lambda: details.__setitem__("ha_accounts", section_ha_accounts(
                args.ha_accounts, 10))),
        ]
        for name, step in steps:
            section = "ha" if name == "ha_accounts" else name.split("#")[0]  # --only ha: both
            if ((args.only and section not in args.only) or (name == "detection_e2e" and args.no_e2e)
                    or (name == "detection_steady" and args.no_steady)):  # a headline: +3 min
                continue
            _flush(rs.url)
            t0 = time.monotonic()
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - one section failing must not hide the others
                errors.setdefault(name.split("#")[0], f"{type(exc).__name__}: {exc}")
                if args.verbose:
                    traceback.print_exc()
            seconds = details.setdefault("seconds", {})
            base = name.split("#")[0]  # the rounds of a flood add up under its section's name
            seconds[base] = round(seconds.get(base, 0.0) + time.monotonic() - t0, 1)
    result = _summary(details)
    result["details"] = details
    result["errors"] = errors
    result["machine"] = {**machine(), "loadavg_start": load_start,
                         "loadavg_end": round(os.getloadavg()[0], 2)}
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    result["recorded_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["daemon_root"] = os.environ.get("WD_BENCH_DAEMON_ROOT", str(ROOT))
    return result


def _summary(d: dict[str, Any]) -> dict[str, Any]:
    get = lambda *path: _dig(d, path)  # noqa: E731
    ingest_rate, ccxt_rate = get("daemon", "events_per_s"), get("ccxt", "events_per_s")
    veto_p99 = [v for v in (get("veto", "check_p99_ms"), get("veto", "begin_p99_ms")) if v is not None]
    return {
        "ingest_events_per_s": ingest_rate,
        "ingest_p50_ms": get("daemon", "p50_ms"),
        "ingest_p99_ms": get("daemon", "p99_ms"),
        "ccxt_events_per_s": ccxt_rate,
        "ingest_vs_ccxt": round(ingest_rate / ccxt_rate, 2) if ingest_rate and ccxt_rate else None,
        "veto_p99_ms": max(veto_p99) if veto_p99 else None,
        "verdicts_per_s": get("veto", "pipelined_per_s"),
        "detection_p50_ms": get("detection_e2e", "p50_ms"),
        "detection_p95_ms": get("detection_e2e", "p95_ms"),
        "detection_steady_p95_ms": get("detection_steady", "p95_ms"),
        "weight_per_min": get("detection_e2e", "weight_per_min"),
        "trigger_detection_p95_ms": get("trigger_detection", "p95_ms"),
        "rss_mb": get("footprint", "rss_mb"),
        "idle_cpu_pct": get("footprint", "idle_cpu_pct"),
        "idle_cpu_steady_pct": get("footprint", "idle_cpu_steady_pct"),
        "ha_failover_p50_ms": get("ha", "p50_ms"),
        "ha_failover_p95_ms": get("ha", "p95_ms"),
    }


def _dig(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def table(result: dict[str, Any]) -> str:
    rows = ["| measure | key | value | target | met |", "| --- | --- | --- | --- | --- |"]
    for key, label, unit, target, better in KEYS:
        value = result.get(key)
        if better == "info" or value is None:
            met = "—"
        else:
            met = "yes" if (value >= target if better == "higher" else value <= target) else "**no**"
        sign = "≥" if better == "higher" else "≤"
        goal = "—" if better == "info" else f"{sign} {_fmt(float(target))} {unit}"
        shown = "—" if value is None else f"{_fmt(value)} {unit}"
        rows.append(f"| {label} | `{key}` | {shown} | {goal} | {met} |")
    d = result.get("details", {})
    rows += ["", "| ingest path | events/s | frame→Redis p50 | p99 | sim sent/s | drain lag |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, label in (("daemon", "daemon (`python -m watchdog run`)"),):
        x = d.get(name)
        if x:
            rate = _fmt(x["events_per_s"]) if x.get("events_per_s") else "failed"
            rows.append(f"| {label} | {rate} | {x.get('p50_ms', '—')} ms | {x.get('p99_ms', '—')} ms | "
                        f"{_fmt(x.get('sim_send_per_s'))} | {_fmt(x.get('drain_lag_ms'))} ms |")
    if d.get("ccxt"):
        c = d["ccxt"]
        rows.append(f"| ccxt.pro watch_positions (publishes nothing; age on handling) | "
                    f"{_fmt(c.get('events_per_s'))} | {c.get('p50_ms', '—')} ms | "
                    f"{c.get('p99_ms', '—')} ms | — | — |")
    rounds = [(name, d[name]["rounds_events_per_s"]) for name in ("daemon", "ccxt")
              if len(d.get(name, {}).get("rounds_events_per_s", ())) > 1]
    if rounds:
        rows += ["", "Full-speed floods, alternating (events/s is their median): " + "; ".join(
            f"{name} {', '.join(_fmt(r) if r else 'failed' for r in rates)}"
            for name, rates in rounds)]
    rows += _detection_rows(d)
    if d.get("ha"):
        h = d["ha"]
        rows += ["", f"HA (bench/ha.py): {h['kills']} kill -9 of the leader, {h['instances']} "
                 f"instances, lead_ttl_ms {h['lead_ttl_ms']}: allow again p50 {h['p50_ms']} ms, "
                 f"p95 {h['p95_ms']} ms, max {h['max_ms']} ms; REST weight/min of the leader "
                 f"{h['leader_weight_1m']}, of a standby {h['standby_weight_1m_design']} by "
                 f"design (docs/HA.md)."]
    if d.get("ha_accounts"):
        rows += _ha_accounts_rows(d["ha_accounts"].get("runs", []))
    m = result.get("machine", {})
    rows += ["", f"Machine: {m.get('nproc', '?')} cores, {m.get('cpu', '?')}, Python "
             f"{m.get('python', '?')}; whole run {result.get('elapsed_s', '?')} s."]
    for name, error in result.get("errors", {}).items():
        rows.append(f"\n**{name} failed**: {error.splitlines()[0]}")
    return "\n".join(rows)


def _detection_rows(d: dict[str, Any]) -> list[str]:
    """Detection in detail: through the daemon (the headline), closes within the REST-lag window,
    and the core alone (bench/detection_bench.py)."""
    e2e, core = d.get("detection_e2e"), d.get("detection")
    if not e2e and not core and not d.get("detection_steady"):
        return []
    rows = ["", "| detection, stream muted | trials | p50 | p95 | max | REST weight/min |",
            "| --- | --- | --- | --- | --- | --- |"]
    if e2e:
        rows.append(f"| daemon → `position_closed` on Redis, close ≥ max_rest_lag_ms after the "
                    f"open (headline) | {e2e['trials']} | {_fmt(e2e['p50_ms'])} ms | "
                    f"{_fmt(e2e['p95_ms'])} ms | {_fmt(e2e['max_ms'])} ms | "
                    f"{_fmt(e2e['weight_per_min'])} over {e2e.get('weight_window_s', '?')} s |")
        lag = e2e.get("within_lag")
        if lag:
            rows.append(f"| same, close within max_rest_lag_ms of the open: no longer `open` | "
                        f"{lag['trials']} | {_fmt(lag['not_open_p50_ms'])} ms | — | "
                        f"{_fmt(lag['not_open_max_ms'])} ms | — |")
            rows.append(f"| same: `position_closed` (waits out the REST-lag window) | "
                        f"{lag['trials']} | {_fmt(lag['closed_p50_ms'])} ms | — | "
                        f"{_fmt(lag['closed_max_ms'])} ms | — |")
    steady = d.get("detection_steady")
    if steady:
        rows.append(f"| same as the headline, trials from 70 s after the start (steady state) | "
                    f"{steady['trials']} | {_fmt(steady['p50_ms'])} ms | "
                    f"{_fmt(steady['p95_ms'])} ms | {_fmt(steady['max_ms'])} ms | "
                    f"{_fmt(steady['weight_per_min'])} over {steady.get('weight_window_s', '?')} s |")
    if core:
        rows.append(f"| pipeline in-process (detection_bench.py, CLOSED written to Redis) | {core['trials']} "
                    f"| {_fmt(core['p50_ms'])} ms | {_fmt(core['p95_ms'])} ms | "
                    f"{_fmt(core['max_ms'])} ms | {_fmt(core['weight_per_min'])} steady |")
    return rows


_BEGIN, _END = "<!-- bench/run.py:begin -->", "<!-- bench/run.py:end -->"


def write_docs(result: dict[str, Any], command: str) -> None:
    """Replace the generated block of docs/BENCHMARKS.md (between the two markers) by ``table``."""
    path = ROOT / "docs" / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    when = result.get("recorded_at") or time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    block = f"{_BEGIN}\nRun: `{command}` at {when}\n\n{table(result)}\n{_END}"
    if _BEGIN in text:
        text = re.sub(re.escape(_BEGIN) + ".*?" + re.escape(_END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## End to end (bench/run.py)\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object on one line")
    parser.add_argument("--write-docs", action="store_true", help="refresh docs/BENCHMARKS.md")
    parser.add_argument("--count", type=int, default=40_000, help="frames per full-speed flood")
    parser.add_argument("--rounds", type=int, default=3,
                        help="full-speed floods of the daemon and of ccxt.pro, alternating; "
                        "events/s is the median of the rounds (latency: the first round)")
    parser.add_argument("--trials", type=int, default=20,
                        help="detection trials through the daemon (>= 20; the headline)")
    parser.add_argument("--core-trials", type=int, default=10,
                        help="detection trials of the core-level detection_bench.py (details)")
    parser.add_argument("--steady-s", type=float, default=10.0,
                        help="detection_bench.py's steady-state weight window (details)")
    parser.add_argument("--e2e", action="store_true",
                        help="accepted for old commands: detection through the daemon and Redis "
                        "is the headline and always runs (unless --no-e2e)")
    parser.add_argument("--no-e2e", action="store_true",
                        help="skip detection through the daemon (its headline keys stay empty)")
    parser.add_argument("--no-steady", action="store_true",
                        help="skip detection_steady (3 min; detection_steady_p95_ms stays empty)")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle CPU window")
    parser.add_argument("--only", nargs="*",
                        choices=["ingest", "peer", "veto", "detection", "detection_e2e",
                                 "detection_steady", "trigger_detection", "footprint", "ha"])
    parser.add_argument("--ha-kills", type=int, default=10,
                        help="kill -9 trials of the HA failover section (bench/ha.py)")
    parser.add_argument("--ha-accounts", type=int, nargs="+", default=[1, 10, 50],
                        help="accounts per row of the HA many-accounts part (bench/accounts.py)")
    parser.add_argument("--daemon-root", help="run the daemon from another checkout (e.g. with a "
                        "proposed patch applied); default: this one")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failed sections")
    parser.add_argument("--table-from", metavar="RESULTS_JSON",
                        help="run nothing: print the table of a recorded --json result (with "
                        "--write-docs, put it in docs/BENCHMARKS.md)")
    args = parser.parse_args()
    if args.table_from:
        recorded = json.loads(Path(args.table_from).read_text())
        if args.write_docs:
            write_docs(recorded, recorded.get("command", "python bench/run.py --json"))
        sys.stdout.write(table(recorded) + "\n")
        return
    if args.daemon_root:
        os.environ["WD_BENCH_DAEMON_ROOT"] = str(Path(args.daemon_root).resolve())
    result = run(args)
    result["command"] = "python " + " ".join(["bench/run.py", *sys.argv[1:]])
    if args.write_docs:
        write_docs(result, result["command"])
    if args.json:
        sys.stdout.write(json.dumps(result, separators=(",", ":"), default=str) + "\n")
    else:
        sys.stdout.write(table(result) + "\n")


if __name__ == "__main__":
    main()
