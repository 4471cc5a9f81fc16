"""Benchmark the HTTP decision service: /decide latency for single-customer requests at a constant request rate.

Run:  .venv/bin/python scripts/bench_serving.py --bundle BUNDLE [--rate 200] [--users 20] [--duration 60]
      [--warmup 5] [--seed 0] [--json out.json]

Starts ``offerpilot serve`` on a free loopback port, then locust (headless) with ``--users`` users each holding
``rate / users`` requests per second (``constant_throughput``), every request one customer with random features
and allowed offers. p50 and p99 come from every request locust timed after the warm-up (its unrounded times);
the achieved rate is the requests completed per second over the same span. On a machine with 2 or more cores the
server is pinned to the first core and locust to the others, so the load tool does not take the server's CPU.
This file is also the locustfile: locust imports it and finds :class:`DecideUser`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

if __name__ != "__main__":  # imported by locust as the locustfile (locust patches the process with gevent on import)
    from locust import FastHttpUser, constant_throughput, events, task

    _rate = float(os.environ["BENCH_RATE_PER_USER"])
    _features = int(os.environ["BENCH_FEATURES"])
    _offers = json.loads(os.environ["BENCH_OFFERS"])
    _rng = np.random.default_rng(int(os.environ["BENCH_SEED"]))
    _times: list[tuple[float, float, bool]] = []

    @events.request.add_listener
    def _record(request_type, name, response_time, response_length, exception=None, **kwargs) -> None:
        _times.append((time.time(), response_time, exception is None))

    @events.quitting.add_listener
    def _dump(environment, **kwargs) -> None:
        Path(os.environ["BENCH_TIMES"]).write_text(json.dumps(_times))

    class DecideUser(FastHttpUser):
        """One customer per request, at a constant per-user rate."""

        wait_time = constant_throughput(_rate)

        @task
        def decide(self) -> None:
            customer = {"user_id": f"u{_rng.integers(1_000_000)}", "features": _rng.random(_features).round(5).tolist(),
                        "allowed_offers": [o for o in _offers if _rng.random() < 0.6]}
            self.client.post("/decide", json={"customers": [customer]})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pinned(cores: set[int] | None):
    """A ``preexec_fn`` pinning the child to ``cores`` (None: leave it)."""
    return None if cores is None else (lambda: os.sched_setaffinity(0, cores))


def _wait_until_up(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start: {server.stderr.read().decode() if server.poll() is not None else 'timeout'}")
        time.sleep(0.1)


def main() -> None:
    from bench_simulator import cpu_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder from 'offerpilot export'")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second to hold, over all users")
    parser.add_argument("--users", type=int, default=20, help="locust users (each holds rate / users requests per second)")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load, warm-up included")
    parser.add_argument("--warmup", type=float, default=5.0, help="first seconds left out of the figures")
    parser.add_argument("--seed", type=int, default=0, help="seeds the requests' features and the server's decisions")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cores, load_cores = ({cores[0]}, set(cores[1:])) if len(cores) >= 2 else (None, None)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "offerpilot", "serve", "--bundle", str(args.bundle), "--port", str(port),
                               "--log-level", "warning", "--threads", "1", "--seed", str(args.seed)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_pinned(server_cores))
    try:
        _wait_until_up(url, server)
        with tempfile.TemporaryDirectory() as folder:
            times_file = Path(folder, "times.json")
            env = {**os.environ, "BENCH_RATE_PER_USER": str(args.rate / args.users), "BENCH_FEATURES": str(len(manifest["features"]["names"])),
                   "BENCH_OFFERS": json.dumps(manifest["actions"]["ids"][1:]), "BENCH_SEED": str(args.seed), "BENCH_TIMES": str(times_file)}
            locust = [sys.executable, "-m", "locust", "-f", __file__, "--headless", "--users", str(args.users), "--spawn-rate", str(args.users),
                      "--run-time", f"{args.duration}s", "--host", url, "--only-summary", "--loglevel", "WARNING"]
            subprocess.run(locust, env=env, check=True, stdout=subprocess.DEVNULL, preexec_fn=_pinned(load_cores))
            records = json.loads(times_file.read_text())
    finally:
        server.terminate()
        server.wait(timeout=30)
    stamps, latency, ok = (np.asarray(column) for column in zip(*records))
    kept = stamps >= stamps.min() + args.warmup
    span = stamps[kept].max() - stamps[kept].min()
    latency_ms = latency[kept & ok]
    result = {
        "target_rate": args.rate,
        "achieved_rate": float((kept.sum() - 1) / span),
        "requests": int(kept.sum()),
        "failures": int((kept & ~ok).sum()),
        "p50_ms": float(np.percentile(latency_ms, 50)),
        "p99_ms": float(np.percentile(latency_ms, 99)),
        "max_ms": float(latency_ms.max()),
        "users": args.users,
        "measured_s": float(span),
    }
    machine = (f"{cpu_name()}, {os.cpu_count()} cores (server on core {sorted(server_cores) if server_cores else 'any'}, locust on "
               f"{sorted(load_cores) if load_cores else 'any'}), Python {platform.python_version()}")
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"machine: {machine}")
    print(f"command: {command}")
    print(f"bundle: {manifest['policy_id']}; locust {args.users} users, constant throughput, {args.duration} s ({args.warmup:g} s warm-up left out)")
    print(f"POST /decide, one customer per request: target {args.rate:g} req/s, achieved {result['achieved_rate']:.1f} req/s over "
          f"{span:.1f} s ({result['requests']:,} requests, {result['failures']} failed); p50 {result['p50_ms']:.2f} ms, "
          f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms")
    if result["achieved_rate"] < 0.97 * args.rate:
        print("warning: the rate was not held (achieved < 97 % of the target): the latencies are those of an overloaded system")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "policy_id": manifest["policy_id"], **result}, f, indent=2)


if __name__ == "__main__":
    main()
