#!/usr/bin/env python3
"""Benchmark section 4, "order saga": orders placed -> confirmed through the gateway of a
running stack.

1. Saturation (closed loop): C concurrent clients, each POSTs an order with its own
   Idempotency-Key and polls GET /api/v1/orders/{id} until the order is terminal, then
   places the next one; confirmed orders per second over the whole run, for several C.
2. Latency (open loop): orders started on a fixed schedule at a rate below saturation
   (half the best closed-loop rate unless BENCH_ORDERS_RATE says otherwise); placed ->
   confirmed latency measured from each order's *scheduled* start (so a late start counts
   against the stack, no coordinated omission), and late starts counted.

Orders are spread over several freshly registered users and several bench products
created for the purpose (big stock, low price), so neither a user nor a product row is a
hot spot and the seeded catalog is left alone. Orders consume stock for good; a bench
product with too little stock left is replaced by a new one.

Environment: MSCTL_PROJECT (default msctl-bench), MSCTL (default target/release/msctl),
BENCH_QUICK=1 (short run), BENCH_MD=FILE (append a Markdown section), and optional
BENCH_ORDERS_CONCURRENCY (e.g. "4,16,32"), BENCH_ORDERS_DURATION (s per closed-loop level),
BENCH_ORDERS_OPEN_DURATION (s), BENCH_ORDERS_RATE (orders/s of the open loop),
BENCH_ORDERS_USERS, BENCH_ORDERS_PRODUCTS. `bench/orders.py GATEWAY_PORT` skips the `msctl ps`
lookup. Traffic goes to 127.0.0.1 only; every load is bounded in count and time.
"""
import concurrent.futures
import datetime
import http.client
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = os.environ.get("MSCTL_PROJECT", "msctl-bench")
MSCTL = os.environ.get("MSCTL", "target/release/msctl")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")


def env_num(name, default, kind=float):
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return kind(v)
    except ValueError:
        die("%s=%r is not a number" % (name, v))


def die(msg):
    print("bench/orders.py: " + msg, file=sys.stderr)
    sys.exit(1)


CONCURRENCY = [
    int(c)
    for c in os.environ.get("BENCH_ORDERS_CONCURRENCY", "16" if QUICK else "4,16,32").split(",")
    if c.strip()
]
CLOSED_SECS = env_num("BENCH_ORDERS_DURATION", 8.0 if QUICK else 20.0)
OPEN_SECS = env_num("BENCH_ORDERS_OPEN_DURATION", 10.0 if QUICK else 30.0)
RATE = env_num("BENCH_ORDERS_RATE", 0.0)
USERS = env_num("BENCH_ORDERS_USERS", 4 if QUICK else 8, int)
PRODUCTS = env_num("BENCH_ORDERS_PRODUCTS", 4, int)
# Hard caps so that no run can grow without bound.
MAX_ORDERS_PER_LEVEL = 5000
MAX_OPEN_ORDERS = 5000
ORDER_DEADLINE = 60.0  # an order not terminal after this is counted as stalled
CLOSED_POLL = 0.05  # closed loop: polling costs the stack; throughput is what counts
OPEN_POLL = 0.02  # open loop: latency resolution
LATE = 0.02  # a start later than this after its schedule is "late"
PRICE_CENTS = 100
BENCH_STOCK = 1_000_000
CARD = "4242424242424242"


def ms(x):
    return "-" if x is None else "%.0f" % (x * 1000)


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list; None when empty."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def gateway_port():
    if len(sys.argv) > 1:
        return int(sys.argv[1])
    try:
        out = subprocess.run(
            [MSCTL, "-p", PROJECT, "ps", "-o", "json"], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        die("cannot run %s: %s (set MSCTL to the msctl binary)" % (MSCTL, e))
    if out.returncode != 0:
        die("`msctl -p %s ps -o json` failed (exit %d): %s" % (PROJECT, out.returncode, out.stderr.strip()))
    for c in json.loads(out.stdout or "[]"):
        if c.get("component") == "gateway" and c.get("state") == "running":
            for p in c.get("ports", []):
                if p.get("container") == 8080:
                    return p["host"]
    die("project %s has no running gateway with port 8080 published; start it with `./msctl -p %s up`" % (PROJECT, PROJECT))


class Http:
    """One keep-alive connection per thread to the gateway on 127.0.0.1."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def request(self, method, path, body=None, token=None, headers=None, timeout=30):
        h = {"content-type": "application/json"} if body is not None else {}
        if token:
            h["authorization"] = "Bearer " + token
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                conn.request(method, path, body=data, headers=h)
                resp = conn.getresponse()
                raw = resp.read()
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                return resp.status, payload
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                # A keep-alive connection closed by the server: try once on a fresh one.
                # Only safe for requests that are idempotent (orders carry a key).
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")


def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def setup(gw, run_id):
    st, _ = gw.request("GET", "/health")
    if st != 200:
        die("gateway /health answered %s" % st)
    st, login = gw.request("POST", "/api/v1/users/login", {"email": "admin@msctl.local", "password": "admin-password"})
    if st != 200:
        die("cannot log in as the seeded admin (admin@msctl.local): %s %s; run `msctl -p %s seed`" % (st, login, PROJECT))
    admin = login["token"]
    need = MAX_ORDERS_PER_LEVEL * len(CONCURRENCY) + MAX_OPEN_ORDERS
    products = []
    for i in range(PRODUCTS):
        pid = "00000000-0000-4000-8000-0000000b%04x" % (i + 1)
        st, p = gw.request("GET", "/api/v1/products/" + pid)
        if st == 200 and p["stock"]["available"] >= need // PRODUCTS + 1:
            products.append(pid)
            continue
        if st == 200:  # used up by earlier runs: a fresh product rather than rewriting stock
            pid = str(uuid.uuid4())
        st, p = gw.request(
            "POST",
            "/api/v1/products",
            {"id": pid, "name": "Bench item %d" % (i + 1), "description": "benchmark stock",
             "price_cents": PRICE_CENTS, "stock": BENCH_STOCK},
            admin,
        )
        if st != 201:
            die("cannot create bench product %s: %s %s" % (pid, st, p))
        products.append(pid)
    tokens = []
    for i in range(USERS):
        email = "bench-orders-%s-%d@example.com" % (run_id, i)
        st, r = gw.request("POST", "/api/v1/users/register", {"email": email, "password": "bench-password-123", "name": "Bench %d" % i})
        if st != 201:
            die("cannot register %s: %s %s" % (email, st, r))
        st, r = gw.request("POST", "/api/v1/users/login", {"email": email, "password": "bench-password-123"})
        if st != 200:
            die("cannot log in %s: %s %s" % (email, st, r))
        tokens.append(r["token"])
    return products, tokens


def place_and_wait(gw, token, product, poll):
    """One order: POST, then poll until terminal. Returns a result dict (times are
    time.monotonic(); `server` is updated_at - created_at of a terminal order)."""
    key = str(uuid.uuid4())
    res = {"outcome": None, "t_end": None, "server": None}
    body = {"items": [{"product_id": product, "quantity": 1}], "card": CARD}
    t_post = time.monotonic()
    try:
        st, o = gw.request("POST", "/api/v1/orders", body, token, {"idempotency-key": key})
    except (OSError, http.client.HTTPException) as e:
        res["outcome"] = "transport: " + type(e).__name__
        res["t_end"] = time.monotonic()
        return res
    if st != 202:
        res["outcome"] = "http %d%s" % (st, (" " + o["code"]) if isinstance(o, dict) and "code" in o else "")
        res["t_end"] = time.monotonic()
        return res
    oid = o["id"]
    deadline = time.monotonic() + ORDER_DEADLINE
    poll_errors = 0
    while True:
        res["poll_errors"] = poll_errors
        if o and o.get("status") in ("confirmed", "cancelled"):
            res["t_end"] = time.monotonic()
            res["outcome"] = o["status"]
            try:
                res["server"] = parse_ts(o["updated_at"]) - parse_ts(o["created_at"])
            except (KeyError, ValueError):
                pass
            if o["status"] == "cancelled":
                res["reason"] = o.get("reason")
            return res
        if time.monotonic() > deadline:
            res["outcome"] = "stalled (not terminal in %.0fs)" % ORDER_DEADLINE
            res["t_end"] = time.monotonic()
            return res
        # Poll at `poll`, backing off to a tenth of the time waited so far (at most 0.5 s):
        # about 10 % resolution on slow orders without the polls themselves loading the
        # stack (and the gateway's per-client rate limit) when many orders are in flight.
        time.sleep(min(0.5, max(poll, 0.1 * (time.monotonic() - t_post))))
        try:
            st, o2 = gw.request("GET", "/api/v1/orders/" + oid, None, token)
            if st == 200:
                o = o2
            else:
                poll_errors += 1
                if st == 429:
                    time.sleep(0.2)
        except (OSError, http.client.HTTPException):
            poll_errors += 1


def tally(results):
    counts = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    polls = sum(r.get("poll_errors", 0) for r in results)
    if polls:
        counts["(failed polls, retried)"] = polls
    return counts


def fmt_counts(counts):
    c = dict(counts)
    parts = ["confirmed %d" % c.pop("confirmed", 0), "cancelled %d" % c.pop("cancelled", 0)]
    parts += ["%s %d" % (k, v) for k, v in sorted(c.items())]
    return ", ".join(parts)


def closed_loop(gw, products, tokens, clients, secs):
    results = []
    lock = threading.Lock()
    started = [0]
    t0 = time.monotonic()
    stop_at = t0 + secs

    def worker(w):
        token = tokens[w % len(tokens)]
        product = products[w % len(products)]
        while time.monotonic() < stop_at:
            with lock:
                if started[0] >= MAX_ORDERS_PER_LEVEL:
                    return
                started[0] += 1
            t = time.monotonic()
            r = place_and_wait(gw, token, product, CLOSED_POLL)
            r["t_start"] = t
            with lock:
                results.append(r)
            if r["outcome"].startswith("http 429") or r["outcome"].startswith("transport"):
                time.sleep(0.1)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(secs + ORDER_DEADLINE + 30)
    elapsed = time.monotonic() - t0
    counts = tally(results)
    lat = sorted(r["t_end"] - r["t_start"] for r in results if r["outcome"] == "confirmed")
    srv = sorted(r["server"] for r in results if r["outcome"] == "confirmed" and r["server"] is not None)
    return {
        "clients": clients, "elapsed": elapsed, "orders": len(results), "counts": counts,
        "confirmed_per_s": counts.get("confirmed", 0) / elapsed,
        "p50": pct(lat, 50), "p99": pct(lat, 99), "srv_p50": pct(srv, 50), "srv_p99": pct(srv, 99),
    }


def open_loop(gw, products, tokens, rate, secs):
    n = min(MAX_OPEN_ORDERS, max(1, int(rate * secs)))
    results = []
    lock = threading.Lock()
    late = [0, 0.0]  # count, worst lateness
    # Enough workers that a free one is always there at this rate and latency; a start that
    # still waits for one shows up as late.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(512, max(32, int(rate * 20))))
    t0 = time.monotonic() + 0.2

    def one(i, sched):
        t = time.monotonic()
        lateness = t - sched
        r = place_and_wait(gw, tokens[i % len(tokens)], products[i % len(products)], OPEN_POLL)
        r["t_start"] = sched
        r["late"] = lateness
        with lock:
            results.append(r)
            if lateness > LATE:
                late[0] += 1
            late[1] = max(late[1], lateness)

    futures = []
    for i in range(n):
        sched = t0 + i / rate
        delay = sched - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        futures.append(pool.submit(one, i, sched))
    concurrent.futures.wait(futures, timeout=ORDER_DEADLINE + 60)
    pool.shutdown(wait=False, cancel_futures=True)
    elapsed = time.monotonic() - t0
    counts = tally(results)
    lat = sorted(r["t_end"] - r["t_start"] for r in results if r["outcome"] == "confirmed")
    srv = sorted(r["server"] for r in results if r["outcome"] == "confirmed" and r["server"] is not None)
    return {
        "rate": rate, "scheduled": n, "secs": n / rate, "elapsed": elapsed, "counts": counts,
        "late": late[0], "worst_late": late[1], "achieved": len(results) / (n / rate),
        "p50": pct(lat, 50), "p90": pct(lat, 90), "p99": pct(lat, 99), "max": lat[-1] if lat else None,
        "srv_p50": pct(srv, 50), "srv_p99": pct(srv, 99),
    }


def main():
    port = gateway_port()
    gw = Http(port)
    run_id = uuid.uuid4().hex[:8]
    products, tokens = setup(gw, run_id)
    print("4. Order saga — gateway 127.0.0.1:%d, project %s, %d users, %d products%s"
          % (port, PROJECT, len(tokens), len(products), " (BENCH_QUICK)" if QUICK else ""))
    # Warm up connections, caches and the saga engine; not counted.
    for i in range(5):
        place_and_wait(gw, tokens[i % len(tokens)], products[i % len(products)], CLOSED_POLL)

    closed = []
    print("\nclosed loop (each client: POST, poll every %.0f ms, backing off to a tenth of the wait, until terminal; next)" % (CLOSED_POLL * 1000))
    print("%8s %8s %7s %12s %9s %9s %9s %9s  %s" % ("clients", "secs", "orders", "confirmed/s", "p50 ms", "p99 ms", "srv p50", "srv p99", "statuses"))
    for c in CONCURRENCY:
        r = closed_loop(gw, products, tokens, c, CLOSED_SECS)
        closed.append(r)
        print("%8d %8.1f %7d %12.1f %9s %9s %9s %9s  %s" % (c, r["elapsed"], r["orders"], r["confirmed_per_s"], ms(r["p50"]), ms(r["p99"]), ms(r["srv_p50"]), ms(r["srv_p99"]), fmt_counts(r["counts"])))
    best = max(closed, key=lambda r: r["confirmed_per_s"])
    if best["confirmed_per_s"] <= 0:
        die("no order was confirmed in the closed loop: %s" % fmt_counts(best["counts"]))
    rate = RATE if RATE > 0 else max(1.0, round(best["confirmed_per_s"] / 2.0, 1))
    print("\nsaturation: %.1f confirmed orders/s (%d clients)" % (best["confirmed_per_s"], best["clients"]))

    print("\nopen loop at %.1f orders/s for %.0f s (latency from the scheduled start; poll every %.0f ms, backing off)" % (rate, OPEN_SECS, OPEN_POLL * 1000))
    o = open_loop(gw, products, tokens, rate, OPEN_SECS)
    print("%10s %9s %9s %9s %9s %9s %9s %9s %11s  %s" % ("scheduled", "late", "p50 ms", "p90 ms", "p99 ms", "max ms", "srv p50", "srv p99", "worst late", "statuses"))
    print("%10d %9d %9s %9s %9s %9s %9s %9s %11s  %s" % (o["scheduled"], o["late"], ms(o["p50"]), ms(o["p90"]), ms(o["p99"]), ms(o["max"]), ms(o["srv_p50"]), ms(o["srv_p99"]), ms(o["worst_late"]), fmt_counts(o["counts"])))

    failed = []
    for r in closed + [o]:
        for k in r["counts"]:
            if k.startswith("stalled"):
                failed.append("%d orders stalled (not terminal within %.0f s)" % (r["counts"][k], ORDER_DEADLINE))
    md = os.environ.get("BENCH_MD")
    if md:
        lines = [
            "## 4. Order saga", "",
            "Method: orders of one item (a bench product with ample stock, card 4242…) through the gateway "
            "from %d registered users, each POSTed with its own Idempotency-Key and polled until terminal; "
            "saturation with C closed-loop clients for %.0f s each, then latency in an open loop at a fixed "
            "arrival rate (half the saturation) for %.0f s, measured from each order's scheduled start. "
            "`srv` is the order's own `updated_at - created_at`; client-side figures include the polling "
            "(every %.0f ms closed loop, %.0f ms open loop, backing off to a tenth of the time waited)."
            % (len(tokens), CLOSED_SECS, OPEN_SECS, CLOSED_POLL * 1000, OPEN_POLL * 1000),
            "",
            "| clients | orders | confirmed/s | p50 ms | p99 ms | srv p50 ms | srv p99 ms | statuses |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in closed:
            lines.append("| %d | %d | %.1f | %s | %s | %s | %s | %s |" % (r["clients"], r["orders"], r["confirmed_per_s"], ms(r["p50"]), ms(r["p99"]), ms(r["srv_p50"]), ms(r["srv_p99"]), fmt_counts(r["counts"])))
        lines += [
            "",
            "Saturation: **%.1f confirmed orders/s** (%d clients)." % (best["confirmed_per_s"], best["clients"]),
            "",
            "| open loop | orders | late starts (>%.0f ms) | p50 ms | p90 ms | p99 ms | max ms | srv p50 ms | srv p99 ms | statuses |" % (LATE * 1000),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            "| %.1f orders/s, %.0f s | %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (rate, o["secs"], o["scheduled"], o["late"], ms(o["p50"]), ms(o["p90"]), ms(o["p99"]), ms(o["max"]), ms(o["srv_p50"]), ms(o["srv_p99"]), fmt_counts(o["counts"])),
            "",
            "Placed → confirmed at %.1f orders/s: **p50 %s ms, p99 %s ms**." % (rate, ms(o["p50"]), ms(o["p99"])),
            "",
        ]
        with open(md, "a") as f:
            f.write("\n".join(lines) + "\n")
    if failed:
        die("; ".join(failed))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        die("interrupted")
