#!/usr/bin/env python3
"""Benchmark section 6, "msctl itself": resident memory and CPU of msctl's own processes,
each next to a reference tool doing comparable work in the same run.

(a) `msctl dash` in a detached tmux session (private tmux socket, 200x50) for 30 s against
    the running stack while a light load flows (20 req/s of GET /api/v1/products?limit=5
    from this script). Reference: `docker stats` on the project's containers, in the same
    tmux setup for the same time — the stock live terminal view of the same engine data.
(b) `msctl scenario run FILE` of a scenario written to a temp dir with one `load` step
    (rate 200/s for 20 s of GET {{gateway}}/api/v1/products?limit=5). Reference: wrk, one
    thread, the same number of connections, the same URL and duration, paced with a Lua
    `delay()` to about the same rate (wrk has no fixed-rate mode); CPU is also given per
    1000 requests, since the two do not send exactly the same number.

Every 200 ms: VmRSS and VmHWM from /proc/PID/status and utime+stime from /proc/PID/stat.
CPU % is (utime+stime) / wall time, 100 % = one core.

Environment: MSCTL_PROJECT (default msctl-bench), MSCTL (default target/release/msctl),
BENCH_QUICK=1 (10 s / 8 s instead of 30 s / 20 s), BENCH_MD=FILE (append a Markdown section).
Traffic goes to 127.0.0.1 only; every process is bounded in time and stopped on exit.
"""
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MSCTL_PROJECT", "msctl-bench")
MSCTL = os.path.join(ROOT, os.environ.get("MSCTL", "target/release/msctl"))
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
DASH_SECS = 10.0 if QUICK else 30.0
LOAD_SECS = 8 if QUICK else 20
LOAD_RATE = 200
LIGHT_RATE = 20
SAMPLE = 0.2
TMUX_SOCKET = "msctl-bench-usage-%d" % os.getpid()
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def run(cmd, timeout=60, check=True):
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("`%s` did not finish within %ds" % (" ".join(cmd), timeout))
    except OSError as e:
        raise BenchError("cannot run %s: %s" % (cmd[0], e))
    if check and out.returncode != 0:
        raise BenchError("`%s` failed (exit %d): %s" % (" ".join(cmd), out.returncode, (out.stderr or out.stdout).strip()))
    return out


def proc_sample(pid):
    """(cpu seconds, rss kB, hwm kB) of a live process, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    rss = re.search(r"^VmRSS:\s+(\d+)", status, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+)", status, re.M)
    if not rss or not hwm:
        return None  # a zombie
    return cpu, int(rss.group(1)), int(hwm.group(1))


class Sampler:
    """Samples one pid every 200 ms from `start` until it exits or `stop()`."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []  # (t, cpu, rss, hwm)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.halt.is_set():
            s = proc_sample(self.pid)
            if s is None:
                return
            self.samples.append((time.time(),) + s)
            self.halt.wait(SAMPLE)

    def stop(self):
        self.halt.set()
        self.thread.join(5)

    def summary(self, skip=0.0):
        """Figures over the samples after `skip` seconds (startup), memory over all."""
        if len(self.samples) < 2:
            raise BenchError("process %d left too few samples (%d)" % (self.pid, len(self.samples)))
        t_first = self.samples[0][0]
        body = [s for s in self.samples if s[0] - t_first >= skip] or self.samples
        if len(body) < 2:
            body = self.samples
        wall = body[-1][0] - body[0][0]
        cpu = body[-1][1] - body[0][1]
        return {
            "wall": wall, "cpu": cpu, "cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
            "cpu_total": self.samples[-1][1],
            "rss_avg": sum(s[2] for s in body) / len(body) / 1024.0,
            "rss_max": max(s[2] for s in self.samples) / 1024.0,
            "hwm": self.samples[-1][3] / 1024.0,
            "n": len(self.samples),
        }


def ports():
    out = run([MSCTL, "-p", PROJECT, "ps", "-o", "json"])
    rows = json.loads(out.stdout or "[]")
    gw = None
    for c in rows:
        if c.get("component") == "gateway" and c.get("state") == "running":
            for p in c.get("ports", []):
                if p.get("container") == 8080:
                    gw = p["host"]
    if gw is None:
        raise BenchError("project %s has no running gateway; start it with `./msctl -p %s up`" % (PROJECT, PROJECT))
    return gw, [c["name"] for c in rows if c.get("state") == "running"]


class LightLoad:
    """20 req/s of GET /api/v1/products?limit=5 on one keep-alive connection, bounded."""

    def __init__(self, port, secs):
        self.port, self.end = port, time.time() + secs
        self.halt = threading.Event()
        self.count = 0
        self.errors = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        conn = None
        t0 = time.time()
        i = 0
        while not self.halt.is_set() and time.time() < self.end:
            d = t0 + i / LIGHT_RATE - time.time()
            if d > 0:
                self.halt.wait(d)
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/api/v1/products?limit=5")
                r = conn.getresponse()
                r.read()
                self.count += 1
                if r.status != 200:
                    self.errors += 1
            except (http.client.HTTPException, OSError):
                self.errors += 1
                conn = None

    def stop(self):
        self.halt.set()
        self.thread.join(10)


def tmux(*args, check=True):
    return run(["tmux", "-L", TMUX_SOCKET, *args], check=check)


def in_tmux(name, command, secs, expect_comm):
    """Run `command` in a detached 200x50 tmux session for `secs`, sampled; returns the
    summary (startup's first 2 s left out of CPU) and the last screen."""
    session = "bench-%s" % name
    tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "50", "-c", ROOT, "exec " + command)
    try:
        pid = int(tmux("list-panes", "-t", session, "-F", "#{pane_pid}").stdout.split()[0])
        # `exec` replaces the shell; make sure we sample the program itself.
        for _ in range(50):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == expect_comm:
                        break
            except OSError:
                raise BenchError("%s exited at once in tmux" % command)
            time.sleep(0.05)
        sampler = Sampler(pid)
        time.sleep(secs + 2.0)
        sampler.stop()
        screen = tmux("capture-pane", "-p", "-t", session, check=False).stdout
        if proc_sample(pid) is None:
            raise BenchError("%s exited before the end of its %.0f s; its screen:\n%s" % (command, secs, screen))
        return sampler.summary(skip=2.0), screen
    finally:
        tmux("kill-session", "-t", session, check=False)


SCENARIO = """name = "bench-msctl-usage"
description = "benchmark section 6: msctl's own cost while it drives a fixed-rate load"

[[steps]]
name = "load"
load.rate = %d
load.duration = "%ds"
load.max_requests = %d
load.requests = [{ url = "{{gateway}}/api/v1/products?limit=5" }]
"""

WRK_LUA = """-- paced: each connection waits %d ms between requests, about %d req/s over %d connections
function delay()
  return %d
end
"""


def sampled_run(cmd, timeout):
    """Run cmd to completion, sampling it; returns (summary, stdout, exit code)."""
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(p.pid)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise BenchError("`%s` did not finish within %ds" % (" ".join(cmd), timeout))
    sampler.stop()
    return sampler.summary(), out, p.returncode


def main():
    if not os.access(MSCTL, os.X_OK):
        raise BenchError("%s is not an executable msctl (build it with `cargo build --release -p msctl`, or set MSCTL)" % MSCTL)
    if shutil.which("tmux") is None:
        raise BenchError("tmux is not installed (scripts/install-deps.sh installs it)")
    gw, containers = ports()
    print("6. msctl itself — project %s, gateway 127.0.0.1:%d%s" % (PROJECT, gw, " (BENCH_QUICK)" if QUICK else ""), flush=True)
    rows = []

    # (a) the dashboard, and docker stats as the reference, each under the same light load.
    for label, cmd, comm in (
        ("msctl dash", "%s -p %s dash" % (MSCTL, PROJECT), "msctl"),
        ("docker stats (ref.)", "docker stats " + " ".join(containers), "docker"),
    ):
        load = LightLoad(gw, DASH_SECS + 10)
        try:
            s, screen = in_tmux(label.split()[0] + str(len(rows)), cmd, DASH_SECS, comm)
        finally:
            load.stop()
        if label == "msctl dash" and "product-service" not in screen:
            raise BenchError("the dashboard did not show the stack; its screen:\n" + screen)
        s.update(label=label, what="%.0f s, %d req/s through the gateway" % (DASH_SECS, LIGHT_RATE), requests=None)
        rows.append(s)
        print("  %s: %.1f%% CPU, RSS max %.1f MB" % (label, s["cpu_pct"], s["rss_max"]), flush=True)

    # (b) a scenario with a load phase, and wrk at about the same rate as the reference.
    tmp = tempfile.mkdtemp(prefix="msctl-bench-usage-")
    try:
        scen = os.path.join(tmp, "usage-load.toml")
        with open(scen, "w") as f:
            f.write(SCENARIO % (LOAD_RATE, LOAD_SECS, LOAD_RATE * LOAD_SECS + 100))
        report = os.path.join(tmp, "report.json")
        s, out, code = sampled_run([MSCTL, "-p", PROJECT, "scenario", "run", scen, "--report", report], LOAD_SECS + 120)
        if code != 0:
            raise BenchError("msctl scenario run failed (exit %d):\n%s" % (code, out))
        with open(report) as f:
            rep = json.load(f)
        nreq = find_requests(rep)
        s.update(label="msctl scenario run", what="load rate %d/s, %d s" % (LOAD_RATE, LOAD_SECS), requests=nreq)
        rows.append(s)
        print("  msctl scenario run: %.1f%% CPU, RSS max %.1f MB, %s requests" % (s["cpu_pct"], s["rss_max"], nreq), flush=True)

        if shutil.which("wrk") is None:
            print("  wrk is not installed (apt-get install wrk): no reference for (b)", flush=True)
        else:
            url = "http://127.0.0.1:%d/api/v1/products?limit=5" % gw

            def wrk(conns, pause, secs, sample=True):
                lua = os.path.join(tmp, "paced.lua")
                with open(lua, "w") as f:
                    f.write(WRK_LUA % (pause, LOAD_RATE, conns, pause))
                cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % secs, "-s", lua, url]
                s, out, code = sampled_run(cmd, secs + 60)
                if code != 0:
                    raise BenchError("wrk failed (exit %d):\n%s" % (code, out))
                m = re.search(r"(\d+) requests in", out)
                if not m:
                    raise BenchError("cannot read wrk's request count from:\n" + out)
                return s, int(m.group(1))

            # Calibrate the pause: a connection's cycle is pause + latency, so measure the
            # latency at about the target rate, pick connections and pause, then correct the
            # pause once more from a second trial.
            conns, pause = 16, int(16 * 1000 / LOAD_RATE)
            _, n = wrk(conns, pause, 3)
            latency = max(0.0, conns * 3.0 / max(n, 1) - pause / 1000.0)
            while conns / LOAD_RATE - latency < 0.02 and conns < 128:
                conns *= 2
            pause = max(1, int(round((conns / LOAD_RATE - latency) * 1000)))
            _, n = wrk(conns, pause, 3)
            cycle = conns * 3.0 / max(n, 1)
            pause = max(1, int(round(pause + (conns / LOAD_RATE - cycle) * 1000)))
            s, n = wrk(conns, pause, LOAD_SECS)
            s.update(label="wrk (ref.)", what="-t1 -c%d, %d ms pause per connection, %d s" % (conns, pause, LOAD_SECS), requests=n)
            rows.append(s)
            print("  wrk: %.1f%% CPU, RSS max %.1f MB, %s requests" % (s["cpu_pct"], s["rss_max"], s["requests"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def per_k(r):
        if not r.get("requests"):
            return "-"
        return "%.0f" % (1e6 * r["cpu_total"] / r["requests"])

    print("\n%-22s %-40s %7s %7s %7s %10s %10s %9s %8s %11s" % ("process", "work", "wall s", "CPU s", "CPU %", "RSS avg MB", "VmHWM MB", "requests", "req/s", "CPU ms/1k"))
    for r in rows:
        rate = "%.0f" % (r["requests"] / LOAD_SECS) if r.get("requests") else "-"
        print("%-22s %-40s %7.1f %7.2f %7.1f %10.1f %10.1f %9s %8s %11s" % (r["label"], r["what"], r["wall"], r["cpu"], r["cpu_pct"], r["rss_avg"], r["hwm"], r["requests"] if r["requests"] is not None else "-", rate, per_k(r)))
    md = os.environ.get("BENCH_MD")
    if md:
        lines = [
            "## 6. msctl itself", "",
            "Method: /proc/PID/status (VmRSS, VmHWM) and /proc/PID/stat (utime+stime) sampled every 200 ms; "
            "CPU %% = CPU time / wall time (100 %% = one core; the first 2 s of the tmux programs left out). "
            "(a) `msctl dash` in a detached 200x50 tmux session for %.0f s while %d req/s flow through the gateway, "
            "next to `docker stats` on the project's %d containers in the same setup; (b) `msctl scenario run` of one "
            "`load` step (rate %d/s, %d s, GET /api/v1/products?limit=5), next to wrk with one thread, "
            "paced to about the same rate with a Lua `delay()` per connection calibrated in two 3 s trials "
            "(CPU ms/1k = total CPU time per 1000 requests). dockerd's own work for the dashboard and for "
            "docker stats is counted in neither."
            % (DASH_SECS, LIGHT_RATE, len(containers), LOAD_RATE, LOAD_SECS),
            "",
            "| process | work | wall s | CPU s | CPU % | RSS avg MB | VmHWM MB | requests | req/s | CPU ms/1k req |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            rate = "%.0f" % (r["requests"] / LOAD_SECS) if r.get("requests") else "-"
            lines.append("| %s | %s | %.1f | %.2f | %.1f | %.1f | %.1f | %s | %s | %s |" % (r["label"], r["what"], r["wall"], r["cpu"], r["cpu_pct"], r["rss_avg"], r["hwm"], r["requests"] if r["requests"] is not None else "-", rate, per_k(r)))
        lines.append("")
        with open(md, "a") as f:
            f.write("\n".join(lines) + "\n")


def find_requests(rep):
    """The load step's request count from a `scenario run --report` JSON document."""
    found = []

    def walk(x):
        if isinstance(x, dict):
            if isinstance(x.get("requests"), int):
                found.append(x["requests"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(rep)
    return max(found) if found else None


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        print("bench/msctl-usage.py: %s" % e, file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("bench/msctl-usage.py: interrupted", file=sys.stderr)
        sys.exit(1)
    finally:
        subprocess.run(["tmux", "-L", TMUX_SOCKET, "kill-server"], capture_output=True)
        # kill-server leaves the socket file behind.
        sock = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), "tmux-%d" % os.getuid(), TMUX_SOCKET)
        try:
            os.remove(sock)
        except OSError:
            pass
