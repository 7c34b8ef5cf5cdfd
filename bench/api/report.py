"""Print the benchmark's tables and write its results as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, TextIO

RESULT_COLUMNS = (
    ("db", "<10"),
    ("server", "<9"),
    ("op", "<9"),
    ("clients", ">7"),
    ("req/s", ">8"),
    ("p50 ms", ">8"),
    ("p99 ms", ">8"),
    ("errors", ">7"),
    ("busy %", ">6"),
    ("client %", ">8"),
    ("steal %", ">7"),
    ("srv ms/req", ">10"),
    ("cli ms/req", ">10"),
    ("cpu-bound req/s", ">15"),
)
RATIO_COLUMNS = (
    ("db", "<10"),
    ("op", "<9"),
    ("clients", ">7"),
    ("gunicorn req/s", ">15"),
    ("baseline", "<9"),
    ("req/s", ">8"),
    ("ratio", ">7"),
)
BASELINES = ("sync", "naive")
# What the shipped server must reach at GOAL_CLIENTS clients, on each database.
GOAL_CLIENTS = 50
GOALS = {"register": 1000.0, "get": 2500.0}
GOAL_P99_MS = 100.0


def _line(values: list[str], columns: tuple[tuple[str, str], ...]) -> str:
    """Format one table row."""
    return "  ".join(
        f"{value:{spec}}" for value, (_, spec) in zip(values, columns, strict=True)
    )


def _number(value: float, digits: int = 1) -> str:
    """Format a figure, or '-' when there is none."""
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair gunicorn rows with each baseline's by (db, op, clients); answer
    throughput ratios."""
    by_key = {(r["db"], r["server"], r["op"], r["clients"]): r for r in rows}
    paired = []
    for row in rows:
        if row["server"] != "gunicorn":
            continue
        for baseline in BASELINES:
            other = by_key.get((row["db"], baseline, row["op"], row["clients"]))
            if other is None:
                continue
            ours, theirs = row["req_per_s"], other["req_per_s"]
            paired.append(
                {
                    "db": row["db"],
                    "op": row["op"],
                    "clients": row["clients"],
                    "gunicorn_req_per_s": ours,
                    "baseline": baseline,
                    "baseline_req_per_s": theirs,
                    "ratio": ours / theirs if theirs else math.nan,
                }
            )
    return paired


def goals(rows: list[dict[str, Any]]) -> list[str]:
    """One line per shipped-server row at GOAL_CLIENTS: met or by how much not."""
    lines = []
    for row in rows:
        if row["server"] != "gunicorn" or row["clients"] != GOAL_CLIENTS:
            continue
        wanted = GOALS.get(row["op"])
        if wanted is None:
            continue
        met = row["req_per_s"] >= wanted and row["p99_ms"] < GOAL_P99_MS
        bound = row.get("cpu_bound_req_per_s", math.nan)
        lines.append(
            f"goal {row['db']} {row['op']}: {row['req_per_s']:.0f} req/s "
            f"(goal {wanted:.0f}, x{row['req_per_s'] / wanted:.2f}), p99 "
            f"{row['p99_ms']:.1f} ms (goal < {GOAL_P99_MS:.0f}), load generator "
            f"{row.get('client_cpu_pct', math.nan):.0f}% of the machine: "
            f"{'met' if met else 'not met'}; by CPU per request (server "
            f"{row.get('server_cpu_ms_per_req', math.nan):.2f} ms + load generator "
            f"{row.get('client_cpu_ms_per_req', math.nan):.2f} ms) the cores "
            f"would serve {bound:.0f} req/s (x{bound / wanted:.2f})"
        )
    return lines


def print_results(rows: list[dict[str, Any]], out: TextIO) -> None:
    """Print one row per (db, server, op, clients)."""
    print(_line([name for name, _ in RESULT_COLUMNS], RESULT_COLUMNS), file=out)
    for row in rows:
        values = [
            row["db"],
            row["server"],
            row["op"],
            str(row["clients"]),
            _number(row["req_per_s"]),
            _number(row["p50_ms"], 2),
            _number(row["p99_ms"], 2),
            str(row["errors"]),
            _number(row["cpu_busy_pct"], 0),
            _number(row.get("client_cpu_pct", math.nan), 0),
            _number(row["cpu_steal_pct"]),
            _number(row.get("server_cpu_ms_per_req", math.nan), 3),
            _number(row.get("client_cpu_ms_per_req", math.nan), 3),
            _number(row.get("cpu_bound_req_per_s", math.nan), 0),
        ]
        print(_line(values, RESULT_COLUMNS), file=out)


def print_ratios(paired: list[dict[str, Any]], out: TextIO) -> None:
    """Print the throughput of gunicorn over each baseline per level."""
    print(_line([name for name, _ in RATIO_COLUMNS], RATIO_COLUMNS), file=out)
    for pair in paired:
        values = [
            pair["db"],
            pair["op"],
            str(pair["clients"]),
            _number(pair["gunicorn_req_per_s"]),
            pair["baseline"],
            _number(pair["baseline_req_per_s"]),
            _number(pair["ratio"], 2) + "x",
        ]
        print(_line(values, RATIO_COLUMNS), file=out)


def print_errors(rows: list[dict[str, Any]], out: TextIO) -> None:
    """Print what went wrong, per row that had errors."""
    for row in rows:
        if not row["errors"]:
            continue
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(row["error_kinds"].items()))
        label = f"{row['db']} {row['server']} {row['op']} clients={row['clients']}"
        print(f"errors: {label}: {kinds}", file=out)


def _clean(value: Any) -> Any:
    """Replace NaN, which JSON cannot hold, with null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, document: dict[str, Any]) -> None:
    """Write the results document, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(document), indent=2) + "\n", encoding="utf-8")
