#!/usr/bin/env python3
"""Benchmark section 5, "recovery": how fast the gateway stops and resumes sending traffic to
a product-service replica that dies and comes back, and how fast a breaker opens under an
upstream that answers only errors.

A steady client load runs through the gateway the whole time (open loop, RATE requests/s of
GET /api/v1/products?limit=5, each request's time and status recorded) while a watcher
polls the gateway's GET /admin/upstreams every 50 ms. Each trial is repeated (3 times, once
with BENCH_QUICK=1) and the median is reported:

(a) `msctl chaos kill product-service#2`: from the kill (Docker's `kill` event: the signal sent)
    until the gateway stops sending it traffic (its breaker open, or the instance gone from
    the gateway's view), the last error a client saw, and the clients' error rate in between;
(b) `msctl chaos heal`: from the heal until the replica is running and healthy in `msctl ps`,
    and until the gateway routes to it again (breaker closed, its `requests` counter rising);
(c) a dead upstream: `msctl chaos http-fault product-service#1 --status 503 --error-rate 1`
    (errors only), then `msctl chaos pause product-service#1` (no answer at all): from the
    fault until the gateway shows that instance's breaker open, what clients saw meanwhile;
    then heal, and the time until its breaker closes again;
(d) a short outage: kill product-service#2 and heal it 2 s later, before the registry
    notices; the time from the heal's end (replica ready) until the gateway routes to it.

The stack is always healed on exit (finally + SIGTERM/SIGINT) and left healthy.

Environment: MSCTL_PROJECT (default msctl-bench), MSCTL (default target/release/msctl),
BENCH_QUICK=1, BENCH_MD=FILE (append a Markdown section), BENCH_RECOVERY_RATE (50),
BENCH_RECOVERY_REPEAT (3; 1 when quick), BENCH_RECOVERY_HOLD (s a replica stays dead; 15).
Traffic goes to 127.0.0.1 only; the load stops by itself at a hard deadline.
"""
import http.client
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MSCTL_PROJECT", "msctl-bench")
MSCTL = os.environ.get("MSCTL", "target/release/msctl")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
RATE = float(os.environ.get("BENCH_RECOVERY_RATE", "50"))
REPEAT = int(os.environ.get("BENCH_RECOVERY_REPEAT", "1" if QUICK else "3"))
HOLD = float(os.environ.get("BENCH_RECOVERY_HOLD", "15"))
SHORT = 2.0
ADMIN_TOKEN = "msctl-admin"
SERVICE = "product-service"
POLL = 0.05
PS_POLL = 0.2
PATH = "/api/v1/products?limit=5"
# The whole section must finish within this, whatever happens (the load stops by itself).
SECTION_DEADLINE = 240 + REPEAT * 240
STEADY_TIMEOUT = 90.0


class BenchError(Exception):
    pass


def log(msg):
    print("  " + msg, flush=True)


def msctl(*args, timeout=180, check=True):
    try:
        out = subprocess.run([MSCTL, "-p", PROJECT, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError("`msctl %s` did not finish within %ds" % (" ".join(args), timeout))
    except OSError as e:
        raise BenchError("cannot run %s: %s (set MSCTL to the msctl binary)" % (MSCTL, e))
    if check and out.returncode != 0:
        raise BenchError("`msctl -p %s %s` failed (exit %d): %s" % (PROJECT, " ".join(args), out.returncode, (out.stderr or out.stdout).strip()))
    return out


def ps():
    return json.loads(msctl("ps", "-o", "json", timeout=60).stdout or "[]")


def port_of(rows, component, container_port):
    for c in rows:
        if c.get("component") == component and c.get("state") == "running":
            for p in c.get("ports", []):
                if p.get("container") == container_port:
                    return p["host"]
    raise BenchError("project %s has no running %s with port %d published; start it with `./msctl -p %s up`" % (PROJECT, component, container_port, PROJECT))


def replica_row(rows, component, n):
    for c in rows:
        if c.get("component") == component and c.get("replica") == n:
            return c
    return None


def healthy(row):
    return row is not None and row.get("state") == "running" and row.get("health") in ("healthy", None)


class Load:
    """Open-loop GETs at a fixed rate on a pool of keep-alive connections; every request's
    scheduled time, send time, end time and outcome ('200', '503', 'exc:...') is kept."""

    def __init__(self, port, rate, deadline):
        self.port, self.rate, self.deadline = port, rate, deadline
        self.records = []
        self.lock = threading.Lock()
        self.q = queue.Queue()
        self.stop = threading.Event()
        # Enough workers that requests hung on a paused upstream (up to the gateway's 5 s
        # timeout) do not hold back the schedule: rate x 5 s.
        self.workers = max(16, int(rate * 6))
        self.threads = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.workers)]
        self.threads.append(threading.Thread(target=self.schedule, daemon=True))

    def start(self):
        for t in self.threads:
            t.start()

    def schedule(self):
        t0 = time.time()
        i = 0
        while not self.stop.is_set():
            sched = t0 + i / self.rate
            if sched > self.deadline:
                break
            d = sched - time.time()
            if d > 0:
                self.stop.wait(d)
            self.q.put(sched)
            i += 1
        for _ in range(self.workers):
            self.q.put(None)

    def worker(self):
        conn = None
        while True:
            sched = self.q.get()
            if sched is None:
                return
            t = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", PATH)
                resp = conn.getresponse()
                resp.read()
                outcome = str(resp.status)
            except (http.client.HTTPException, OSError) as e:
                outcome = "exc:" + type(e).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self.lock:
                self.records.append((sched, t, time.time(), outcome))

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def between(self, a, b):
        with self.lock:
            return [r for r in self.records if a <= r[1] <= b]


class Watch:
    """Polls GET /admin/upstreams every 50 ms; keeps (time, {instance address: instance})
    for product-service."""

    def __init__(self, port, deadline):
        self.port, self.deadline = port, deadline
        self.samples = []
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conn = None
        while not self.stop.is_set() and time.time() < self.deadline:
            t = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/admin/upstreams", headers={"X-Admin-Token": ADMIN_TOKEN})
                resp = conn.getresponse()
                body = json.loads(resp.read())
                view = {}
                for s in body.get("services", []):
                    if s["service"] == SERVICE:
                        for i in s["instances"]:
                            view[i["address"]] = i
                with self.lock:
                    self.samples.append((t, view))
            except (http.client.HTTPException, OSError, ValueError, KeyError):
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
            self.stop.wait(max(0.0, POLL - (time.time() - t)))

    def latest(self):
        with self.lock:
            return self.samples[-1] if self.samples else (0.0, {})

    def since(self, t0):
        with self.lock:
            return [s for s in self.samples if s[0] >= t0]

    def wait_for(self, t0, pred, timeout):
        """First sample at or after t0 for which pred(view) holds, waiting up to timeout."""
        end = time.time() + timeout
        seen = 0
        while True:
            samples = self.since(t0)
            for t, view in samples[seen:]:
                if pred(view):
                    return t
            seen = len(samples)
            if time.time() > end:
                return None
            time.sleep(POLL / 2)


def is_open(inst):
    return inst is not None and (inst.get("breaker") == "open" or (inst.get("ejected_for_ms") or 0) > 0)


def is_closed(inst):
    return inst is not None and inst.get("breaker") == "closed"


class DockerEvents:
    """`docker events` for one container, streamed from before a fault (the engine keeps
    only a short backlog, so asking afterwards with --since may find nothing)."""

    def __init__(self, container, actions):
        cmd = ["docker", "events", "--filter", "container=" + container, "--format", "{{.TimeNano}} {{.Action}}"]
        for a in actions:
            cmd += ["--filter", "event=" + a]
        self.seen = []
        try:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
            return
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        time.sleep(0.3)  # let the subscription start before the fault

    def read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit():
                self.seen.append((int(parts[0]) / 1e9, parts[1]))

    def first(self, action, timeout):
        end = time.time() + timeout
        while self.proc is not None:
            for t, a in list(self.seen):
                if a == action:
                    return t
            if time.time() > end:
                break
            time.sleep(0.05)
        return None

    def close(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Bench:
    def __init__(self):
        rows = ps()
        self.gw_port = port_of(rows, "gateway", 8080)
        self.admin_port = port_of(rows, "gateway", 9000)
        self.addr = {n: "%s-%s-%d" % (PROJECT, SERVICE, n) for n in (1, 2)}
        for n in (1, 2):
            if replica_row(rows, SERVICE, n) is None:
                raise BenchError("project %s has no %s#%d (the stack runs 2 replicas)" % (PROJECT, SERVICE, n))
        deadline = time.time() + SECTION_DEADLINE
        self.load = Load(self.gw_port, RATE, deadline)
        self.watch = Watch(self.admin_port, deadline)
        self.deadline = deadline

    def check_time(self):
        if time.time() > self.deadline - 30:
            raise BenchError("section 5 ran out of its %ds time budget" % SECTION_DEADLINE)

    def wait_steady(self):
        """Both replicas healthy in ps, both in the gateway's view with closed breakers and
        traffic flowing to both."""
        end = time.time() + STEADY_TIMEOUT
        while time.time() < end:
            rows = ps()
            if all(healthy(replica_row(rows, SERVICE, n)) for n in (1, 2)):
                t0, v0 = self.watch.latest()
                if all(is_closed(v0.get(self.addr[n])) for n in (1, 2)):
                    time.sleep(1.0)
                    t1, v1 = self.watch.latest()
                    if all(is_closed(v1.get(self.addr[n])) and v0.get(self.addr[n]) and
                           v1[self.addr[n]]["requests"] > v0[self.addr[n]]["requests"] for n in (1, 2)):
                        return
            time.sleep(0.5)
        t, v = self.watch.latest()
        raise BenchError("the stack did not settle within %.0fs (both %s replicas healthy, breakers closed, traffic on both); gateway view: %s" % (STEADY_TIMEOUT, SERVICE, json.dumps(v)))

    def fault(self, args):
        """Apply a fault with msctl; if the engine refuses it (e.g. `unable to freeze` from a
        pause on an overloaded host), heal, let the stack settle and try once more."""
        try:
            msctl("chaos", *args, timeout=60)
        except BenchError as e:
            log("fault failed, healing and trying once more: %s" % e)
            msctl("chaos", "heal", timeout=180)
            self.wait_steady()
            msctl("chaos", *args, timeout=60)

    def requests_of(self, view, n):
        inst = view.get(self.addr[n])
        return None if inst is None else inst["requests"]

    def kill_and_heal(self):
        addr = self.addr[2]
        container = addr
        events = DockerEvents(container, ["kill", "die"])
        try:
            t_cmd0 = time.time()
            self.fault(["kill", "%s#2" % SERVICE])
            t_cmd1 = time.time()
            t_signal = events.first("kill", 5)
            t_die = events.first("die", 5)
        finally:
            events.close()
        # The moment the signal was sent; else when the engine saw it die; else the command's end.
        t_kill = t_signal or t_die or t_cmd1
        # The gateway stops sending it traffic: breaker open, or instance gone from the view.
        t_open = self.watch.wait_for(t_kill, lambda v: is_open(v.get(addr)), HOLD)
        t_gone = self.watch.wait_for(t_kill, lambda v: addr not in v, max(0.0, t_kill + HOLD - time.time()))
        rest = t_kill + HOLD - time.time()
        if rest > 0:
            time.sleep(rest)
        stops = [t for t in (t_open, t_gone) if t is not None]
        t_stop = min(stops) if stops else None
        window = self.load.between(t_kill, time.time())
        errors = [r for r in window if r[3] != "200"]
        t_last_err = max((r[2] for r in errors), default=None)
        upto = t_stop if t_stop is not None else time.time()
        w_stop = [r for r in window if r[1] <= upto]
        err_stop = [r for r in w_stop if r[3] != "200"]
        slow = sorted(r[2] - r[0] for r in window)
        # Attempts the gateway still sent the dead replica after it "stopped": half-open probes.
        after = [self.requests_of(v, 2) for t, v in self.watch.since(t_stop or time.time())]
        after = [x for x in after if x is not None]
        probes = (after[-1] - after[0]) if len(after) > 1 else 0
        res = {
            "kill_cmd": t_cmd1 - t_cmd0,
            "kill_ref": "kill event" if t_signal else ("die event" if t_die else "command end"),
            "die_after": (t_die - t_signal) if (t_die and t_signal) else None,
            "to_open": None if t_open is None else t_open - t_kill,
            "to_gone": None if t_gone is None else t_gone - t_kill,
            "to_stop": None if t_stop is None else t_stop - t_kill,
            "last_err": None if t_last_err is None else t_last_err - t_kill,
            "errors_to_stop": len(err_stop), "requests_to_stop": len(w_stop),
            "err_rate_to_stop": (len(err_stop) / len(w_stop)) if w_stop else 0.0,
            "errors_hold": len(errors), "requests_hold": len(window),
            "err_rate_hold": (len(errors) / len(window)) if window else 0.0,
            "max_latency_hold": slow[-1] if slow else None,
            "p99_latency_hold": slow[min(len(slow) - 1, int(0.99 * len(slow)))] if slow else None,
            "probes_after_stop": probes,
            "error_kinds": sorted(set(r[3] for r in errors)),
        }
        log("kill: stop routing after %s (breaker open %s, gone from view %s), last client error %s, errors until stop %d/%d"
            % (s(res["to_stop"]), s(res["to_open"]), s(res["to_gone"]), s(res["last_err"]), len(err_stop), len(w_stop)))
        # (b) heal
        self.check_time()
        _, v = self.watch.latest()
        base = self.requests_of(v, 2)
        healthy_at = {}
        stop_ps = threading.Event()

        def poll_ps(t_from):
            while not stop_ps.is_set() and time.time() < t_from + 120:
                t_call = time.time()
                try:
                    rows = ps()
                except BenchError:
                    rows = []
                if healthy(replica_row(rows, SERVICE, 2)):
                    # The end of the first `ps` that shows it (an upper bound by one ps call).
                    healthy_at["t"] = time.time()
                    healthy_at["call"] = time.time() - t_call
                    return
                stop_ps.wait(PS_POLL)

        t_h0 = time.time()
        th = threading.Thread(target=poll_ps, args=(t_h0,), daemon=True)
        th.start()
        msctl("chaos", "heal", timeout=180)
        t_h1 = time.time()

        def routed(view):
            inst = view.get(addr)
            if not is_closed(inst):
                return False
            b = base if (base is not None and inst["requests"] >= base) else 0
            return inst["requests"] > b

        t_routed = self.watch.wait_for(t_h0, routed, 90)
        th.join(120)
        stop_ps.set()
        res.update({
            "heal_cmd": t_h1 - t_h0,
            "to_healthy": (healthy_at["t"] - t_h0) if "t" in healthy_at else None,
            "to_routed": None if t_routed is None else t_routed - t_h0,
            "ps_call": healthy_at.get("call"),
        })
        log("heal: command %s, healthy in ps after %s (one ps call takes %s), routed again after %s"
            % (s(res["heal_cmd"]), s(res["to_healthy"]), s(res["ps_call"]), s(res["to_routed"])))
        return res

    def short_outage(self):
        """(d) A replica killed and healed again within SHORT s, before the registry notices:
        the gateway keeps the instance, so traffic resumes only when its breaker lets a
        trial through (GATEWAY_BREAKER_OPEN after it opened)."""
        addr = self.addr[2]
        events = DockerEvents(addr, ["kill"])
        try:
            t_cmd0 = time.time()
            self.fault(["kill", "%s#2" % SERVICE])
            t_k = events.first("kill", 5) or time.time()
        finally:
            events.close()
        # The outage lasts SHORT s from the signal (the command itself may be slow).
        time.sleep(max(0.0, t_k + SHORT - time.time()))
        t_h0 = time.time()
        msctl("chaos", "heal", timeout=180)
        t_h1 = time.time()
        # Traffic counts as resumed once the gateway has ejected the instance (breaker open
        # or gone from its view) and then, after the replica is ready, shows it closed with
        # its attempt counter rising.
        t_ejected = self.watch.wait_for(t_cmd0, lambda v: is_open(v.get(addr)) or addr not in v, 0)
        base = None
        if t_ejected is not None:
            before = [v.get(addr) for t, v in self.watch.since(t_ejected) if t <= t_h1]
            base = max((i["requests"] for i in before if i is not None), default=None)

        def routed(view):
            inst = view.get(addr)
            if t_ejected is None or not is_closed(inst):
                return False
            b = base if (base is not None and inst["requests"] >= base) else 0
            return inst["requests"] > b

        t_routed = self.watch.wait_for(t_h1, routed, 60) if t_ejected is not None else None
        removed = any(addr not in v for t, v in self.watch.since(t_k))
        trace, prev = [], None
        for t, v in self.watch.since(t_k):
            i = v.get(addr)
            key = None if i is None else (i["breaker"], i["ejections"], i["failures"])
            if key != prev:
                trace.append("+%.2fs %s" % (t - t_k, "gone" if i is None else "%s ej=%d fail=%d req=%d" % (i["breaker"], i["ejections"], i["failures"], i["requests"])))
                prev = key
            if t_routed is not None and t > t_routed:
                break
        res = {
            "heal_cmd": t_h1 - t_h0,
            "routed_after_ready": None if t_routed is None else t_routed - t_h1,
            "routed_after_kill": None if t_routed is None else t_routed - t_k,
            "removed": removed,
            "ejected": t_ejected is not None,
        }
        log("kill, heal after %.0f s: ready %s after the heal, routed again %s after it was ready (%s after the kill)%s"
            % (SHORT, s(res["heal_cmd"]), s(res["routed_after_ready"]), s(res["routed_after_kill"]),
               "; it had left the gateway's view" if removed else ""))
        log("    heal at +%.2fs, ready at +%.2fs; gateway's view of it: %s%s" % (t_h0 - t_k, t_h1 - t_k, ", ".join(trace),
            "" if t_ejected is not None else " (never ejected: the gateway did not notice the outage)"))
        return res

    def breaker_trip(self, kind):
        """(c) product-service#1 made a dead upstream — `http-fault --status 503
        --error-rate 1` (answers only errors) or `pause` (answers nothing: attempts time
        out) — until the gateway shows its breaker open; then heal."""
        addr = self.addr[1]
        container = addr
        events = DockerEvents(container, ["pause"]) if kind == "pause" else None
        try:
            if kind == "pause":
                args = ["pause", "%s#1" % SERVICE]
            else:
                args = ["http-fault", "%s#1" % SERVICE, "--status", "503", "--error-rate", "1"]
            try:
                t_cmd0 = time.time()
                msctl("chaos", *args, timeout=60)
            except BenchError as e:
                log("fault failed, healing and trying once more: %s" % e)
                msctl("chaos", "heal", timeout=180)
                self.wait_steady()
                t_cmd0 = time.time()
                msctl("chaos", *args, timeout=60)
            t_cmd1 = time.time()
            # pause: Docker's event; http-fault: the command's end (the fault is live just before).
            t0 = (events.first("pause", 5) if events else None) or t_cmd1
        finally:
            if events:
                events.close()
        t_open = self.watch.wait_for(t_cmd0, lambda v: is_open(v.get(addr)), 30)
        t_end = t_open if t_open is not None else time.time()
        failures = None
        samples = self.watch.since(t_cmd0)
        if samples and t_open is not None:
            first = samples[0][1].get(addr)
            at_open = [v for t, v in samples if t == t_open][0].get(addr)
            if first and at_open:
                failures = at_open["failures"] - first["failures"]
        self.check_time()
        t_h0 = time.time()
        msctl("chaos", "heal", timeout=120)
        t_h1 = time.time()
        t_closed = self.watch.wait_for(t_h0, lambda v: is_closed(v.get(addr)), 60)
        # Only now: requests sent before the breaker opened may have been hung until the
        # gateway's timeout (and a retry); a request is recorded when it ends.
        w = self.load.between(t0, t_end)
        err = [r for r in w if r[3] != "200"]
        lat = sorted(r[2] - r[0] for r in w)
        res = {
            "fault_cmd": t_cmd1 - t_cmd0,
            "to_open": None if t_open is None else max(0.0, t_open - t0),
            "failures_to_open": failures,
            "client_errors": len(err), "client_requests": len(w),
            "err_rate": (len(err) / len(w)) if w else 0.0,
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "max": lat[-1] if lat else None,
            "slow_rate": (sum(1 for x in lat if x > 1.0) / len(lat)) if lat else 0.0,
            "heal_cmd": t_h1 - t_h0,
            "closed_after_heal": None if t_closed is None else t_closed - t_h0,
        }
        log("%s: breaker open after %s (%s failed attempts), client errors %d/%d, slower than 1 s %d, slowest %s; after heal closed in %s"
            % ("http-fault 503" if kind != "pause" else "pause", s(res["to_open"]), res["failures_to_open"], len(err), len(w),
               sum(1 for x in lat if x > 1.0), s(res["max"]), s(res["closed_after_heal"])))
        return res


def s(x):
    return "-" if x is None else "%.2fs" % x


def med(vals):
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def fmt(x, unit="s"):
    if x is None:
        return "not seen"
    return ("%.2f s" % x) if unit == "s" else ("%.1f%%" % (100 * x) if unit == "%" else str(x))


def heal_and_settle():
    """Always: revert every fault of the project and wait until product-service is healthy."""
    try:
        msctl("chaos", "heal", timeout=180, check=False)
        end = time.time() + 120
        while time.time() < end:
            rows = ps()
            if all(healthy(replica_row(rows, SERVICE, n)) for n in (1, 2)):
                return True
            time.sleep(1)
        print("bench/recovery.py: after heal, %s is still not healthy; see `msctl -p %s ps`" % (SERVICE, PROJECT), file=sys.stderr)
    except BenchError as e:
        print("bench/recovery.py: heal failed: %s" % e, file=sys.stderr)
    return False


def main():
    def on_signal(signum, frame):
        raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_signal)
    try:
        b = Bench()
    except BenchError as e:
        print("bench/recovery.py: %s" % e, file=sys.stderr)
        sys.exit(1)
    print("5. Recovery — gateway 127.0.0.1:%d (admin %d), project %s, %.0f req/s of GET %s, %d run(s)%s"
          % (b.gw_port, b.admin_port, PROJECT, RATE, PATH, REPEAT, " (BENCH_QUICK)" if QUICK else ""), flush=True)
    kills, trips, pauses, shorts = [], [], [], []
    ok = False
    try:
        # Make sure nothing of an earlier run is still active.
        msctl("chaos", "heal", timeout=180)
        b.watch.thread.start()
        b.load.start()
        for i in range(REPEAT):
            print("run %d/%d" % (i + 1, REPEAT), flush=True)
            b.wait_steady()
            kills.append(b.kill_and_heal())
            b.check_time()
            b.wait_steady()
            trips.append(b.breaker_trip("http-fault"))
            b.check_time()
            b.wait_steady()
            pauses.append(b.breaker_trip("pause"))
            b.check_time()
            b.wait_steady()
            shorts.append(b.short_outage())
            b.check_time()
        b.wait_steady()
        ok = True
    except BenchError as e:
        print("bench/recovery.py: %s" % e, file=sys.stderr)
    except KeyboardInterrupt:
        print("bench/recovery.py: interrupted", file=sys.stderr)
    finally:
        b.load.finish()
        b.watch.stop.set()
        settled = heal_and_settle()
    if not ok or not settled:
        sys.exit(1)

    total = len(b.load.records)
    bad = sum(1 for r in b.load.records if r[3] != "200")
    rows = [
        ("(a) kill → gateway stops routing to it", [k["to_stop"] for k in kills], "s"),
        ("(a) kill → its breaker open", [k["to_open"] for k in kills], "s"),
        ("(a) kill → gone from the gateway's view (registry)", [k["to_gone"] for k in kills], "s"),
        ("(a) kill → last client error", [k["last_err"] for k in kills], "s"),
        ("(a) client error rate, kill → stop routing", [k["err_rate_to_stop"] for k in kills], "%"),
        ("(a) client error rate, %.0f s after the kill" % HOLD, [k["err_rate_hold"] for k in kills], "%"),
        ("(a) client p99 latency, %.0f s after the kill" % HOLD, [k["p99_latency_hold"] for k in kills], "s"),
        ("(a) slowest client request, %.0f s after the kill" % HOLD, [k["max_latency_hold"] for k in kills], "s"),
        ("(b) heal → replica healthy in `msctl ps` (end of that ps call)", [k["to_healthy"] for k in kills], "s"),
        ("(b) heal → gateway routes to it again", [k["to_routed"] for k in kills], "s"),
        ("(b) `msctl chaos heal` command (waits for ready)", [k["heal_cmd"] for k in kills], "s"),
        ("(c) 503 fault → breaker open", [t["to_open"] for t in trips], "s"),
        ("(c) 503 fault: heal → breaker closed again", [t["closed_after_heal"] for t in trips], "s"),
        ("(c) pause → breaker open", [t["to_open"] for t in pauses], "s"),
        ("(c) pause: slowest client request until open", [t["max"] for t in pauses], "s"),
        ("(c) pause: client error rate until open", [t["err_rate"] for t in pauses], "%"),
        ("(c) pause: client requests slower than 1 s until open", [t["slow_rate"] for t in pauses], "%"),
        ("(c) pause: heal → breaker closed again", [t["closed_after_heal"] for t in pauses], "s"),
        ("(d) kill, heal after %.0f s: ready → routed again" % SHORT, [x["routed_after_ready"] for x in shorts], "s"),
        ("(d) kill, heal after %.0f s: kill → routed again" % SHORT, [x["routed_after_kill"] for x in shorts], "s"),
    ]
    print("\n%-66s %10s   %s" % ("measure", "median", "runs"))
    for name, vals, unit in rows:
        print("%-66s %10s   %s" % (name, fmt(med(vals), unit), ", ".join(fmt(v, unit) for v in vals)))
    print("client requests during the section: %d, non-200: %d; kill errors by kind: %s"
          % (total, bad, sorted(set(e for k in kills for e in k["error_kinds"]))))
    print("kill timed from: %s; died (engine's die event) after the signal: %s; requests the gateway still sent the dead replica after ejecting it (half-open probes): %s"
          % ([k["kill_ref"] for k in kills], [s(k["die_after"]) for k in kills], [k["probes_after_stop"] for k in kills]))
    print("failed attempts before the breaker opened under the 503 fault: %s; clients' errors then: %s"
          % ([t["failures_to_open"] for t in trips], ["%d/%d" % (t["client_errors"], t["client_requests"]) for t in trips]))
    missing = [name for name, vals, unit in rows
               if name.startswith(("(a) kill → gateway", "(b)", "(c) 503 fault →", "(c) pause →", "(d)")) and any(v is None for v in vals)]
    md = os.environ.get("BENCH_MD")
    if md:
        lines = [
            "## 5. Recovery", "",
            "Method: a steady open-loop load of %.0f req/s of `GET %s` through the gateway, every request's time and "
            "status recorded, while `GET /admin/upstreams` is polled every 50 ms; `msctl chaos kill product-service#2` "
            "(timed from Docker's `kill` event, when the signal was sent), then `msctl chaos heal`, then `msctl chaos http-fault product-service#1 "
            "--status 503 --error-rate 1` and heal, `msctl chaos pause product-service#1` (timed from Docker's `pause` "
            "event) and heal, then a kill healed after %.0f s; %d run(s), median shown." % (RATE, PATH, SHORT, REPEAT),
            "",
            "| measure | median | runs |", "|---|---:|---|",
        ]
        for name, vals, unit in rows:
            lines.append("| %s | %s | %s |" % (name, fmt(med(vals), unit), ", ".join(fmt(v, unit) for v in vals)))
        lines += [
            "",
            "Client requests during the section: %d, non-200: %d. Failed attempts before the breaker opened under "
            "the 503 fault: %s. An open breaker ejects an instance for GATEWAY_BREAKER_OPEN (10 s in the stack) "
            "whatever its health, so (c) and (d) are bounded below by what is left of that period when the "
            "replica is back; a replica gone longer than the registry's health checks allow is dropped from the "
            "view and comes back as a new instance with a closed breaker, as in (b)."
            % (total, bad, ", ".join(str(t["failures_to_open"]) for t in trips)),
            "",
        ]
        with open(md, "a") as f:
            f.write("\n".join(lines) + "\n")
    if missing:
        print("bench/recovery.py: not observed within the bounds: %s" % "; ".join(missing), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
