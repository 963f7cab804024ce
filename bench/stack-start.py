#!/usr/bin/env python3
"""Benchmark section 1, "stack start": `msctl up` to all-healthy against `docker-compose up`
on the equivalent compose file (`msctl config compose`: same images, commands,
environment, ports, volumes, health checks, restart policies, depends_on conditions and
replicas).

Three modes, each timed for both tools:
  cold   no container or volume of the project exists (both projects are removed with
         their volumes before every cold run);
  warm   the containers exist but are stopped (`docker stop` of the project's own
         containers, right after a cold start);
  no-op  everything is already up and healthy.

msctl: the wall time of `msctl -p bench-msctl up`, which returns once every component is
healthy (and, when it created the user and product services, after seeding them; compose
does no seeding, so the seed share is shown from msctl's own progress lines).
compose: the wall time of `docker-compose -p bench-compose -f FILE up -d` (which itself
waits for `service_healthy` dependencies before starting dependents) plus the wait until
every container of the project is healthy, or running when it has no health check (or
exited 0 for a `restart: "no"` job). The wait polls the engine's API over its unix socket
every 100 ms with one `GET /containers/json` filtered on the compose project label: one
cheap request per poll, no docker CLI process per poll, so the timer's own cost and
resolution (<= 100 ms, like compose's own dependency polling) stay small.

One run = cold, no-op, stop, warm for one tool, then the same for the other (the order
alternates between runs), so both tools see the same background load back to back; only
one of the two stacks runs at a time. Median, min and max of N runs.

Environment: MSCTL (default target/release/msctl), MSCTL_FILE (default stack.toml),
BENCH_RUNS (default 3; BENCH_QUICK=1 -> 1), BENCH_MD=FILE (append a Markdown section),
BENCH_TIMEOUT (s per start, default 600), BENCH_COMPONENTS (space-separated components, with
what they depend on, for both tools; default the whole stack). Prerequisite: the stack's images exist
(`msctl images build`). Projects: bench-msctl and bench-compose, removed on exit. Exit 1
with a message on any failure.
"""
import atexit
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MSCTL = os.environ.get("MSCTL", "target/release/msctl")
STACK_FILE = os.environ.get("MSCTL_FILE", "stack.toml")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
MSCTL_PROJECT = "bench-msctl"
COMPOSE_PROJECT = "bench-compose"
MSCTL_LABEL = "io.msctl.project=" + MSCTL_PROJECT
COMPOSE_LABEL = "com.docker.compose.project=" + COMPOSE_PROJECT
POLL = 0.1
MODES = ["cold", "warm", "no-op"]
SELECTION = os.environ.get("BENCH_COMPONENTS", "").split()


def die(msg):
    print("bench/stack-start.py: " + msg, file=sys.stderr)
    sys.exit(1)


def env_int(name, default):
    v = os.environ.get(name, "")
    if v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        die("%s=%r is not a whole number" % (name, v))
    if n < 1:
        die("%s must be at least 1" % name)
    return n


RUNS = 1 if QUICK else env_int("BENCH_RUNS", 3)
TIMEOUT = env_int("BENCH_TIMEOUT", 600)


# --- the engine's API, for the wait and the checks (no CLI process per poll) -------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def docker_socket():
    host = os.environ.get("DOCKER_HOST", "")
    if host == "":
        return "/var/run/docker.sock"
    if host.startswith("unix://"):
        return host[len("unix://"):]
    die("DOCKER_HOST=%s: this benchmark talks to the engine over a unix socket only" % host)


class Engine:
    def __init__(self):
        self.conn = UnixHTTPConnection(docker_socket())

    def get(self, path):
        for attempt in (1, 2):
            try:
                self.conn.request("GET", path)
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    die("engine: GET %s answered %d: %s" % (path, resp.status, body[:200]))
                return json.loads(body)
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                if attempt == 2:
                    raise
        return None

    def exists(self, path):
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status == 200

    def containers(self, label):
        f = urllib.parse.quote(json.dumps({"label": [label]}))
        return self.get("/containers/json?all=1&filters=" + f)

    def volumes(self, label):
        f = urllib.parse.quote(json.dumps({"label": [label]}))
        return self.get("/volumes?filters=" + f).get("Volumes") or []


ENGINE = None


# --- processes ----------------------------------------------------------------------------


def run(args, what, timeout=None, quiet=False):
    """Runs a command; returns (seconds, stdout+stderr). Dies with its output on failure."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout or TIMEOUT + 60,
        )
    except subprocess.TimeoutExpired:
        die("%s: no answer after %ds (%s)" % (what, timeout or TIMEOUT + 60, " ".join(args)))
    dt = time.monotonic() - t0
    if p.returncode != 0:
        die("%s failed (exit %d): %s\n%s" % (what, p.returncode, " ".join(args), p.stdout[-3000:]))
    if not quiet and os.environ.get("BENCH_VERBOSE"):
        print(p.stdout, file=sys.stderr)
    return dt, p.stdout


def msctl(*args):
    return [MSCTL, "-f", STACK_FILE, "-p", MSCTL_PROJECT] + list(args)


COMPOSE_FILE = None


def compose(*args):
    return ["docker-compose", "-p", COMPOSE_PROJECT, "-f", COMPOSE_FILE] + list(args)


# --- what is measured ---------------------------------------------------------------------


SEED_LINE = re.compile(r"^seed (\S+): ok: .* \[(\d+(?:\.\d+)?)s\]$", re.M)


def msctl_up():
    """`msctl up` to all-healthy; returns (seconds, seconds spent seeding, output)."""
    dt, out = run(msctl("up", "--timeout", "%ds" % TIMEOUT, *SELECTION), "msctl up")
    if re.search(r"^building \S+: ", out, re.M):
        die("msctl up built an image during the benchmark (was one removed or rebuilt by "
            "someone else?); build them first and rerun:\n" + out)
    seed = sum(float(m.group(2)) for m in SEED_LINE.finditer(out))
    return dt, seed, out


def compose_services():
    with open(COMPOSE_FILE) as f:
        return json.load(f)["services"]


def compose_up(services):
    """`docker-compose up -d`, then the wait until every container is ready; returns
    (total seconds, seconds of `up -d` alone)."""
    t0 = time.monotonic()
    run(compose("up", "-d"), "docker-compose up -d")
    t_up = time.monotonic() - t0
    wait_compose_ready(services, t0 + TIMEOUT)
    return time.monotonic() - t0, t_up


def wait_compose_ready(services, deadline):
    """Polls the project's containers every 100 ms until each service has `scale`
    containers that are healthy (health check), running (none), or exited 0 (restart
    "no"). Dies on an unhealthy container or at the deadline."""
    while True:
        by_service = {}
        for c in ENGINE.containers(COMPOSE_LABEL):
            svc = c["Labels"].get("com.docker.compose.service")
            by_service.setdefault(svc, []).append(c)
        pending = []
        for name, svc in services.items():
            cs = by_service.get(name, [])
            if len(cs) < svc.get("scale", 1):
                pending.append("%s (%d/%d containers)" % (name, len(cs), svc.get("scale", 1)))
                continue
            for c in cs:
                status = c.get("Status", "")
                if "(unhealthy)" in status:
                    die("compose: %s is unhealthy (%s)" % (c["Names"][0], status))
                if c["State"] == "running":
                    if "healthcheck" not in svc or "(healthy)" in status:
                        continue
                elif c["State"] == "exited" and svc.get("restart") == "no" and "(0)" in status:
                    continue
                pending.append("%s %s" % (c["Names"][0].lstrip("/"), status))
        if not pending:
            return
        if time.monotonic() > deadline:
            die("compose: not ready after %ds: %s" % (TIMEOUT, ", ".join(pending)))
        time.sleep(POLL)


def stop_own_containers(label):
    """`docker stop` of the project's own running containers (and nothing else)."""
    ids = [c["Id"] for c in ENGINE.containers(label) if c["State"] == "running"]
    if ids:
        run(["docker", "stop"] + ids, "docker stop (%s)" % label, quiet=True)


def clean_msctl():
    run(msctl("down", "--volumes"), "msctl down --volumes", quiet=True)


def clean_compose():
    run(compose("down", "-v", "--remove-orphans"), "docker-compose down -v", quiet=True)


def assert_absent(label):
    left = [c["Names"][0] for c in ENGINE.containers(label)] + [
        v["Name"] for v in ENGINE.volumes(label)
    ]
    if left:
        die("cleanup left resources with label %s: %s" % (label, ", ".join(left)))


def cleanup_both():
    # Best effort, on exit: never die here (an atexit handler cannot exit again).
    for args in (msctl("down", "--volumes"), compose("down", "-v", "--remove-orphans")):
        if args[0] == "docker-compose" and COMPOSE_FILE is None:
            continue
        try:
            subprocess.run(
                args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=180
            )
        except Exception as e:  # noqa: BLE001 - report and go on with the other project
            print("bench/stack-start.py: cleanup %s: %s" % (" ".join(args), e), file=sys.stderr)


def cycle_msctl(results):
    clean_msctl()
    assert_absent(MSCTL_LABEL)
    dt, seed, out = msctl_up()
    if "0 created" in out:
        die("msctl cold start created nothing:\n" + out)
    results["cold"].append(dt)
    results["seed"].append(seed)
    dt, _, out = msctl_up()
    if not re.search(r" 0 created, 0 recreated, 0 started, \d+ unchanged", out):
        die("msctl no-op up changed something:\n" + out)
    results["no-op"].append(dt)
    stop_own_containers(MSCTL_LABEL)
    dt, _, out = msctl_up()
    if not re.search(r" 0 created, 0 recreated, \d+ started", out):
        die("msctl warm up did not just start the stopped containers:\n" + out)
    results["warm"].append(dt)
    clean_msctl()


def cycle_compose(results, services):
    clean_compose()
    assert_absent(COMPOSE_LABEL)
    dt, t_up = compose_up(services)
    results["cold"].append(dt)
    results["cold-up-d"].append(t_up)
    dt, t_up = compose_up(services)
    results["no-op"].append(dt)
    stop_own_containers(COMPOSE_LABEL)
    dt, t_up = compose_up(services)
    results["warm"].append(dt)
    results["warm-up-d"].append(t_up)
    clean_compose()


def check_prerequisites():
    try:
        subprocess.run(["docker-compose", "version"], stdout=subprocess.DEVNULL, check=True)
    except (OSError, subprocess.CalledProcessError):
        die("docker-compose is not installed (this benchmark needs the compose v1 CLI)")
    for img in sorted({svc["image"] for svc in compose_services().values()}):
        if not ENGINE.exists("/images/%s/json" % urllib.parse.quote(img, safe="")):
            die("image %s is missing; build the images first: %s images build" % (img, MSCTL))


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def fmt(xs):
    if not xs:
        return "-"
    med, lo, hi = stats(xs)
    return "%.2f s (%.2f–%.2f)" % (med, lo, hi)


def load_average():
    return "%.1f" % os.getloadavg()[0]


LOAD_AT_START = load_average()


def report(m, c, n_services, n_containers):
    rows = []
    for mode in MODES:
        ratio = statistics.median(m[mode]) / statistics.median(c[mode])
        rows.append((mode, fmt(m[mode]), fmt(c[mode]), "%.2f" % ratio))
    head = ("mode", "msctl up", "docker-compose up -d + wait", "msctl/compose")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(4)]
    line = lambda r: "  ".join(r[i].ljust(widths[i]) for i in range(4))  # noqa: E731
    print()
    print("Stack start, %d services / %d containers, median (min–max) of %d run(s):"
          % (n_services, n_containers, RUNS))
    print(line(head))
    for r in rows:
        print(line(r))
    load = "load average (1 min) %s at the start, %s at the end, on %d cores" % (
        LOAD_AT_START, load_average(), os.cpu_count() or 0)
    print(load)
    if any(m["seed"]):
        print("msctl cold includes seeding user-service and product-service: %s"
              % fmt(m["seed"]))
    print("compose `up -d` alone (before the health wait): cold %s, warm %s"
          % (fmt(c["cold-up-d"]), fmt(c["warm-up-d"])))
    md = os.environ.get("BENCH_MD")
    if md:
        with open(md, "a") as f:
            f.write("## 1. Stack start\n\n")
            f.write(
                "Wall time from the command to every container healthy (%d services, %d "
                "containers, images prebuilt): `msctl -p bench-msctl up` (waits by itself) vs "
                "`docker-compose up -d` on the file from `msctl config compose` plus a 100 ms "
                "API poll until all are healthy; cold = no containers or volumes, warm = "
                "containers stopped, no-op = already healthy; median (min–max) of %d run(s), "
                "both tools back to back.\n\n" % (n_services, n_containers, RUNS)
            )
            f.write("| mode | msctl up | docker-compose up -d + wait | msctl / compose |\n")
            f.write("|---|---|---|---|\n")
            for r in rows:
                f.write("| %s | %s | %s | %s |\n" % r)
            f.write("\nMachine: %s (a shared machine: compare ratios, not seconds).\n" % load)
            if any(m["seed"]):
                f.write(
                    "\nmsctl's cold start includes seeding user-service and product-service "
                    "(compose does none): %s of it.\n" % fmt(m["seed"])
                )
            f.write("\n")


def main():
    global ENGINE, COMPOSE_FILE
    os.chdir(ROOT)
    ENGINE = Engine()
    tmp = tempfile.mkdtemp(prefix="bench-stack-start-")
    COMPOSE_FILE = os.path.join(tmp, "compose.json")
    atexit.register(cleanup_both)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, _f: die("interrupted by signal %d; cleaning up" % s))

    if not os.path.exists(os.path.join(ROOT, MSCTL)):
        die("no msctl binary at %s; build it with `cargo build --release -p msctl` or set MSCTL" % MSCTL)
    _, text = run([MSCTL, "-f", STACK_FILE, "-p", COMPOSE_PROJECT, "config", "compose",
                   *SELECTION],
                  "msctl config compose", quiet=True)
    with open(COMPOSE_FILE, "w") as f:
        f.write(text)
    check_prerequisites()
    run(compose("config", "-q"), "docker-compose config (the generated file)", quiet=True)
    services = compose_services()
    n_containers = sum(s.get("scale", 1) for s in services.values())

    m = {k: [] for k in MODES + ["seed"]}
    c = {k: [] for k in MODES + ["cold-up-d", "warm-up-d"]}
    clean_msctl()
    clean_compose()
    for i in range(RUNS):
        order = ["msctl", "compose"] if i % 2 == 0 else ["compose", "msctl"]
        for tool in order:
            if tool == "msctl":
                cycle_msctl(m)
                print("run %d/%d msctl:   cold %.2fs (seed %.2fs), no-op %.2fs, warm %.2fs"
                      % (i + 1, RUNS, m["cold"][-1], m["seed"][-1], m["no-op"][-1],
                         m["warm"][-1]), flush=True)
            else:
                cycle_compose(c, services)
                print("run %d/%d compose: cold %.2fs, no-op %.2fs, warm %.2fs"
                      % (i + 1, RUNS, c["cold"][-1], c["no-op"][-1], c["warm"][-1]), flush=True)
    report(m, c, len(services), n_containers)


if __name__ == "__main__":
    main()
