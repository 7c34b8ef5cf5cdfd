"""RSS growth of the web process for large and hostile request bodies.

    python -m bench.bodies

The app runs under gunicorn with the shipped gunicorn.conf.py and one worker
process, on SQLite. For each body the worker's peak resident memory is reset
(``/proc/PID/clear_refs``), the request is sent, and the growth is the peak
(``VmHWM``) less the resident memory before. Each case is set against the
unbounded way the same body used to be read (``json.loads`` of the whole body,
every gzip line parsed into one list, the whole text split into lines),
measured in the same run in a process of its own:

- a 32 MiB anonymous push of ``{}`` objects (``POST /api/sync/push``);
- gzip bombs uploaded as sync files (``POST /api/sync/files``): 15 MiB of
  ``{}`` lines in 15 KB, and 1 GiB with no line end in 1 MB;
- a forged file announcing 100,000 transactions (refused on its first line);
- a 16 MiB ``sacct --parsable2`` upload (``POST /api/allocation/usage/sacct``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests

from bench.api.servers import (
    HOST,
    REPO_ROOT,
    app_environment,
    free_port,
    log_tail,
    migrate,
    stop_process_group,
    temp_directory,
)

MIB = 1024 * 1024
LIMIT_MB = 150
RESULTS = REPO_ROOT / "bench" / "results" / "bodies.json"


def push_of_empty_objects(size: int) -> bytes:
    """``{"transactions": [{}, {}, ...]}`` of about ``size`` bytes."""
    count = max(1, (size - 20) // 3)
    return b'{"transactions": [' + b",".join([b"{}"] * count) + b"]}"


def gzip_of(chunks, level: int = 9) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=level, mtime=0) as out:
        for chunk in chunks:
            out.write(chunk)
    return buffer.getvalue()


def bomb_of_lines(inflated: int) -> bytes:
    manifest = json.dumps({"manifest": {}, "signature": "x"}).encode() + b"\n"
    block = b"{}\n" * (MIB // 3)
    return gzip_of([manifest, *[block] * (inflated // len(block))])


def bomb_of_transactions(count: int) -> bytes:
    """A forged manifest announcing ``count`` transactions, and as many lines."""
    manifest = {
        "format": "instance-tracker-sync/1",
        "producer": "laptop-7",
        "first_sequence": 1,
        "last_sequence": count,
        "count": count,
        "models": {"Household": count},
        "sha256": "0" * 64,
        "created": "2100-01-01T00:00:00+00:00",
    }
    head = json.dumps({"manifest": manifest, "signature": "forged"}).encode()
    line = {
        "producer": "laptop-7",
        "model": "Household",
        "natural_key": ["H"],
        "action": "insert",
        "schema_version": 1,
        "payload": "{}",
        "encrypted": False,
        "hash": "0" * 64,
        "created": "2100-01-01T00:00:00+00:00",
    }
    lines = (
        json.dumps({**line, "sequence": n}).encode() + b"\n" for n in range(1, count)
    )
    return gzip_of([head + b"\n", *lines])


def bomb_of_one_line(inflated: int) -> bytes:
    block = b" " * MIB
    return gzip_of([b"[", *[block] * (inflated // MIB)])


SACCT_HEADER = "JobID|Cluster|Account|User|Partition|Start|End|Elapsed|AllocCPUS|State"


def sacct_text(size: int) -> bytes:
    """sacct --parsable2 lines for a cluster that is not registered."""
    lines = [SACCT_HEADER]
    total, job = len(SACCT_HEADER), 0
    while total < size:
        job += 1
        line = (
            f"{job}|bench|ProjectB|user{job % 50}|main|2100-01-01T09:00:00"
            f"|2100-01-01T10:00:00|01:00:00|4|COMPLETED"
        )
        lines.append(line)
        total += len(line) + 1
    return ("\n".join(lines) + "\n").encode()


# The unbounded way each body used to be read, run in a child process of its
# own: its peak memory growth is the baseline.
UNBOUNDED = {
    "json": "import json\nkept = json.loads(body)",
    "gzip-lines": (
        "import gzip, io, json\n"
        "items = []\n"
        "for line in gzip.GzipFile(fileobj=io.BytesIO(body)):\n"
        "    try:\n"
        "        items.append(json.loads(line))\n"
        "    except ValueError:\n"
        "        break"
    ),
    "text": "lines = body.decode('utf-8-sig').splitlines()",
}
BASELINE_SCRIPT = """
import sys
def peak():  # VmHWM: ru_maxrss would start at the parent's peak
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
body = open(sys.argv[1], "rb").read()
before = peak()
{code}
print(peak() - before)
"""


def unbounded_growth(body: bytes, way: str, workdir: Path) -> float:
    """MB a child process grows by reading ``body`` the unbounded way."""
    path = workdir / "body.bin"
    path.write_bytes(body)
    script = BASELINE_SCRIPT.format(code=UNBOUNDED[way])
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        return float("nan")
    return int(done.stdout.strip()) / 1e6


class Worker:
    """The one gunicorn worker process and its memory."""

    def __init__(self, master: subprocess.Popen) -> None:
        deadline = time.monotonic() + 30
        while True:
            children = psutil.Process(master.pid).children()
            if children or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.pid = children[0].pid

    def reset_peak(self) -> int:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self._status("VmRSS")

    def peak(self) -> int:
        return self._status("VmHWM")

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {key} for {self.pid}")


def manage(env, cwd, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "manage.py"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def measure(worker: Worker, send) -> tuple[float, int]:
    """Send one request; its RSS growth in MB and the answer's status."""
    before = worker.reset_peak()
    status = send()
    return (worker.peak() - before) / 1e6, status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with temp_directory() as workdir:
        env = app_environment(f"sqlite:///{workdir / 'bench.sqlite'}", workdir / "i")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        migrate(env, workdir)
        manage(env, workdir, "create_usr", "bench", "bench-password-long-enough")
        token = manage(env, workdir, "create-token", "bench").splitlines()[-1]
        port = free_port()
        log = workdir / "gunicorn.log"
        with log.open("wb") as output:
            master = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gunicorn"),
                    *("-c", str(REPO_ROOT / "gunicorn.conf.py")),
                    *("--bind", f"{HOST}:{port}", "--workers", "1"),
                ],
                env=env,
                cwd=workdir,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            base = f"http://{HOST}:{port}"
            _wait(base, master, log)
            run_cases(base, token, Worker(master), workdir)
        finally:
            stop_process_group(master)


def _wait(base: str, master: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if master.poll() is not None:
            raise SystemExit(f"gunicorn exited: {log_tail(log)}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def run_cases(base: str, token: str, worker: Worker, workdir: Path) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    json_type = {"Content-Type": "application/json"}
    gzip_type = {**auth, "Content-Type": "application/gzip"}
    text_type = {**auth, "Content-Type": "text/plain"}
    forged = bomb_of_transactions(100_000)
    # (case, path, headers, body, what the body is, the unbounded way to read it)
    cases = [
        (
            "push of {} objects",
            "/api/sync/push",
            json_type,
            push_of_empty_objects(32 * MIB),
            "32 MiB",
            "json",
        ),
        (
            "sync file, gzip bomb of lines",
            "/api/sync/files",
            gzip_type,
            bomb_of_lines(15 * MIB),
            "15 MiB inflated",
            "gzip-lines",
        ),
        (
            "sync file, forged 100,000 lines",
            "/api/sync/files",
            gzip_type,
            forged,
            f"{len(forged) // 1024} KB gzip",
            "gzip-lines",
        ),
        (
            "sync file, gzip bomb of one line",
            "/api/sync/files",
            gzip_type,
            bomb_of_one_line(1024 * MIB),
            "1 GiB inflated",
            "gzip-lines",
        ),
        (
            "sacct upload",
            "/api/allocation/usage/sacct",
            text_type,
            sacct_text(16 * MIB),
            "16 MiB",
            "text",
        ),
    ]

    def sender(path: str, headers: dict, body: bytes):
        def send() -> int:
            return requests.post(
                base + path, data=body, headers=headers, timeout=600
            ).status_code

        return send

    # Warm the worker up (imports, first connections) before measuring.
    for _name, path, headers, body, _size, _way in cases:
        sender(path, headers, body[:1024])()
    rows = []
    print(f"{'case':34} {'body':>16} {'unbounded MB':>12} {'now MB':>8} {'ratio':>7}")
    for name, path, headers, body, size, way in cases:
        baseline = unbounded_growth(body, way, workdir)
        growth, status = measure(worker, sender(path, headers, body))
        ratio = growth / baseline if baseline else float("nan")
        verdict = "ok" if growth < LIMIT_MB else "OVER"
        print(
            f"{name:34} {size:>16} {baseline:12.1f} {growth:8.1f} {ratio:7.3f}"
            f"  HTTP {status} {verdict}"
        )
        rows.append(
            {
                "case": name,
                "body": size,
                "unbounded_growth_mb": round(baseline, 1),
                "growth_mb": round(growth, 1),
                "status": status,
            }
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=2) + "\n")
    print(
        f"(growth of the gunicorn worker's peak RSS; each must stay under"
        f" {LIMIT_MB} MB. 'unbounded' reads the same body the way it was read"
        f" before, in a process of its own. Written to {RESULTS})"
    )


if __name__ == "__main__":
    main()
