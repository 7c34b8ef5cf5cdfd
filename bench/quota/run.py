"""Benchmark the quota toolkit and controller.

    python -m bench.quota [--inserts 5000] [--clients 1000] [--target 1000000]

1. Insert cost: a field app (tests.quota.field_app) inserts Visit (QuotaMixin) and
   PlainVisit (the same table without it), each insert its own transaction, in
   alternating blocks, on a SQLite file and on a throwaway PostgreSQL database.
2. A pull over N fake field clients served by one separate aiohttp process on
   127.0.80.1... (one port): ``run_pull`` with ``HttpTransport`` on a SQLite
   controller, first from ceilings of 0, then again after each client created a
   few records; the same two pulls done naively (one client at a time with
   ``requests``: GET all, then PUT each change) after resetting the clients.
3. Check-ins: N clients post ``/api/quotas/visit/checkin`` to the controller
   served on loopback, twice each; the baseline is the same posts refused for a
   wrong secret.
Results also go to bench/results/quota.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.common import bounded_int
from bench.quota.checkins import measure as measure_checkins
from bench.quota.clients import (
    MAX_CLIENTS,
    SPARE_FDS,
    FakeClientsProcess,
    raise_open_files,
    secret_for,
)
from bench.quota.inserts import measure_postgres, measure_sqlite
from bench.quota.pulls import (
    NaivePuller,
    add_quota,
    controller_app,
    pull_ours,
    quota_window,
)
from quota.controller import Policy
from tracker.extensions import db

RESULTS_PATH = Path(__file__).resolve().parents[2] / "bench" / "results" / "quota.json"
TIMEOUT = 10.0
ADVANCE_MOST = 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.quota")
    parser.add_argument("--inserts", type=bounded_int(10, 1_000_000), default=5000)
    parser.add_argument("--clients", type=bounded_int(1, MAX_CLIENTS), default=1000)
    parser.add_argument(
        "--target", type=bounded_int(1, 2_000_000_000), default=1_000_000
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--latency-ms",
        type=bounded_int(0, 5000),
        default=20,
        help="how long each field client takes to answer (its network), default 20",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--checkin-threads", type=bounded_int(1, 256), default=4)
    parser.add_argument("--skip-pull", action="store_true")
    parser.add_argument("--skip-inserts", action="store_true")
    return parser.parse_args(argv)


def say(text: str = "") -> None:
    print(text, flush=True)


def insert_section(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: µs per insert with and without QuotaMixin, per database."""
    say(f"1. Insert cost: {args.inserts} inserts per variant, one commit each")
    say(
        f"   {'database':<11} {'with quota':>12} {'without':>12} {'overhead':>11}"
        f" {'ratio':>7}   median with/without"
    )
    results: dict[str, Any] = {}
    runs: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("sqlite", lambda: measure_sqlite(directory, args.inserts))
    ]
    if not args.skip_postgres:
        runs.append(("postgresql", lambda: measure_postgres(args.inserts)))
    for name, run in runs:
        result = run()
        results[name] = result
        if "skipped" in result:
            say(f"   {name:<11} skipped: {result['skipped']}")
            continue
        with_q, without = result["with_quota"], result["without_quota"]
        say(
            f"   {name:<11} {with_q['mean_us']:>9.1f} µs {without['mean_us']:>9.1f} µs"
            f" {result['overhead_us']:>+8.1f} µs {result['ratio']:>6.2f}x"
            f"   {with_q['median_us']:.1f} / {without['median_us']:.1f} µs"
            f" ({result['median_ratio']:.2f}x)"
            + ("" if result["quota_count_matches"] else "  COUNT MISMATCH")
        )
    say(
        "   sqlite: the field app's defaults (rollback journal, synchronous=FULL);"
        " postgresql: fsync=off, synchronous_commit=off"
    )
    return results


def _check(stats: dict[str, Any], target: int) -> list[str]:
    """What is wrong with the fake clients' state after a pull (empty: nothing)."""
    problems = []
    if stats["sum_ceiling"] > target:
        problems.append(f"sum of ceilings {stats['sum_ceiling']} > target {target}")
    for key in ("count_over_ceiling", "unauthorized", "bad", "refused"):
        if stats[key]:
            problems.append(f"{key}: {stats[key]}")
    return problems


def pull_section(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 2: run_pull over N fake clients, then the naive loop, two pulls each."""
    count, target = args.clients, args.target
    say()
    say(
        f"2. One pull over {count} clients on loopback (target {target:,}), "
        f"each answering after {args.latency_ms} ms"
    )
    raise_open_files(count + SPARE_FDS)
    fake = FakeClientsProcess(
        count, args.seed, directory / "clients.log", args.latency_ms / 1000
    )
    app = None
    results: dict[str, Any] = {"clients": count, "target": target}
    try:
        started = time.perf_counter()
        fake.start()
        say(
            f"   fake clients: 1 process, {fake.addresses[0]} .. {fake.addresses[-1]}"
            f" port {fake.port}, up in {time.perf_counter() - started:.1f} s"
        )
        clients = [(fake.url(i), secret_for(i, args.seed)) for i in range(count)]
        app = controller_app(directory / "controller")
        quota_id = add_quota(app, clients, target)
        window = quota_window(app, quota_id)
        url, secret = clients[0]
        requests.get(
            f"{url}/quota/visit",
            headers={"Authorization": f"Bearer {secret}"},
            timeout=TIMEOUT,
        )
        initial = fake.ask("stats")
        results["initial_sum_count"] = initial["sum_count"]

        ours: list[dict[str, Any]] = []
        naive: list[dict[str, Any]] = []
        puller = NaivePuller(
            clients, target, window, TIMEOUT, Policy.from_config(app.config)
        )
        ways: list[tuple[list[dict[str, Any]], Callable[[], dict[str, Any]]]] = [
            (ours, lambda: pull_ours(app, quota_id, TIMEOUT)),
            (naive, puller.pull),
        ]
        for runs, pull in ways:
            fake.ask("reset")
            for number in (1, 2):
                created = 0
                if number == 2:
                    advance = fake.ask("advance", most=ADVANCE_MOST, seed=args.seed + 1)
                    created = advance["created"]
                result = pull()
                result["created_before"] = created
                result["clients_state"] = fake.ask("stats")
                result["problems"] = _check(result["clients_state"], target)
                result["clients_per_s"] = count / result["seconds"]
                runs.append(result)
        results["ours"], results["naive"] = ours, naive
        results["naive_over_ours"] = [
            n["seconds"] / o["seconds"] for o, n in zip(ours, naive, strict=True)
        ]
        _print_pulls(ours, naive, results["naive_over_ours"], target)
    finally:
        fake.stop()
        if app is not None:
            with app.app_context():
                db.engine.dispose()
    return results


def _print_pulls(
    ours: list[dict[str, Any]],
    naive: list[dict[str, Any]],
    ratios: list[float],
    target: int,
) -> None:
    say(
        f"   {'pull':<22} {'ours':>8} {'clients/s':>10} {'naive':>8} {'clients/s':>10}"
        f" {'naive/ours':>11}   HTTP calls (ours | naive)"
    )
    labels = ("1 (ceilings from 0)", "2 (steady state)")
    for label, o, n, ratio in zip(labels, ours, naive, ratios, strict=True):
        calls = (
            f"{o['calls']['get']}+{o['calls']['put']} |"
            f" {n['calls']['get']}+{n['calls']['put']}"
        )
        say(
            f"   {label:<22} {o['seconds']:>6.2f} s {o['clients_per_s']:>10.0f}"
            f" {n['seconds']:>6.2f} s {n['clients_per_s']:>10.0f} {ratio:>10.2f}x"
            f"   {calls}"
        )
    say(f"   before pull 2 the clients created {ours[1]['created_before']:,} records")
    for way, runs in (("ours", ours), ("naive", naive)):
        for number, run in enumerate(runs, start=1):
            state = run["clients_state"]
            verdict = "ok" if state["sum_ceiling"] <= target else "VIOLATED"
            extra = "; ".join(run["problems"]) or "no refusals or errors"
            say(
                f"   {way} pull {number}: sum of ceilings on the clients"
                f" {state['sum_ceiling']:,} <= target {target:,}: {verdict}"
                f" (counts {state['sum_count']:,}; {extra})"
            )
    for number, (o, n) in enumerate(zip(ours, naive, strict=True), start=1):
        same = (
            o["clients_state"]["ceilings_digest"]
            == n["clients_state"]["ceilings_digest"]
        )
        matches = o["controller_acknowledged_sum"] == o["clients_state"]["sum_ceiling"]
        say(
            f"   pull {number}: controller's acknowledged sum"
            f" {o['controller_acknowledged_sum']:,}"
            f" {'matches' if matches else 'DIFFERS FROM'} the clients;"
            f" committed_total {o['controller_committed_total']:,};"
            f" same ceilings as naive: {'yes' if same else 'no'};"
            f" operation {o['operation_result']}"
        )
    for number, run in enumerate(ours, start=1):
        phases, sql = run["phases"], run["sql"]
        parts = [
            f"before GETs {phases.get('before_gets_s', 0):.2f} s",
            f"GETs {phases.get('gets_wall_s', 0):.2f} s",
        ]
        if "puts_wall_s" in phases:
            parts += [
                f"GETs->first PUT {phases['gets_to_first_put_s']:.2f} s",
                f"PUTs {phases['puts_wall_s']:.2f} s"
                f" (in HTTP {phases['puts_http_s']:.2f} s,"
                f" between {phases['puts_between_s']:.2f} s)",
            ]
        parts.append(f"after {phases['after_calls_s']:.2f} s")
        parts.append(f"controller CPU {run['cpu_seconds']:.2f} s")
        say(f"   ours pull {number} time: " + ", ".join(parts))
        say(
            f"   ours pull {number} SQL: {sql['statements']:,} statements"
            f" ({sql['seconds']:.2f} s in execute), {sql['commits']:,} commits"
            f" ({sql['commit_seconds']:.2f} s in commit, flush included)"
        )


def checkin_section(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: check-ins per second from N clients, against a refused baseline."""
    count = args.clients
    say()
    say(
        f"3. Check-ins from {count} clients ({args.checkin_threads} at a time) to the"
        " controller served on loopback (werkzeug, threaded, SQLite)"
    )
    app = controller_app(directory / "checkins")
    clients = [(f"http://127.0.81.1:{9000 + i}", f"secret-{i}") for i in range(count)]
    quota_id = add_quota(app, clients, args.target)
    try:
        result = measure_checkins(app, quota_id, args.checkin_threads)
    finally:
        with app.app_context():
            db.engine.dispose()
    base = result["baseline_wrong_secret"]
    say(f"   {'round':<34} {'seconds':>8} {'per second':>11} {'baseline/this':>14}")
    say(
        f"   {'baseline: wrong secret (401)':<34} {base['seconds']:>8.2f}"
        f" {base['per_s']:>11.0f} {1:>13.2f}x   {base['statuses']}"
    )
    for label, key, ratio in (
        ("check-in 1 (no ceiling yet)", "first", "ratio_first"),
        ("check-in 2 (steady)", "second", "ratio_second"),
    ):
        run = result[key]
        say(
            f"   {label:<34} {run['seconds']:>8.2f} {run['per_s']:>11.0f}"
            f" {result[ratio]:>13.2f}x   {run['statuses']}"
        )
    verdict = "ok" if result["held_after"] <= result["target"] else "VIOLATED"
    say(
        f"   held after the check-ins {result['held_after']:,}"
        f" <= target {result['target']:,}: {verdict}"
    )
    return result


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> None:
    """Run both parts, print them and write the JSON results."""
    args = parse_args(argv)
    info = machine()
    say(f"Quota benchmark ({info['cpus']} CPUs, Python {info['python']})")
    say()
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": info, "settings": vars(args)}
    with tempfile.TemporaryDirectory(prefix="bench-quota-") as tmp:
        directory = Path(tmp)
        if not args.skip_inserts:
            results["inserts"] = insert_section(directory, args)
        if not args.skip_pull:
            results["pull"] = pull_section(directory, args)
        results["checkins"] = checkin_section(directory, args)
    results["seconds"] = time.perf_counter() - started
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2) + "\n")
    say()
    say(f"Total {results['seconds']:.0f} s; results in {RESULTS_PATH}")
