#!/usr/bin/env python3
"""End-to-end order throughput through the gateway of a running stack: N orders from C
concurrent clients, each polled until terminal. Usage: bench/orders.py GATEWAY_PORT N C
(the gateway port is in `msctl ps`). Traffic goes to 127.0.0.1 only."""
import json, time, threading, urllib.request, uuid, sys, statistics
GW = "http://127.0.0.1:%s" % sys.argv[1]
N = int(sys.argv[2]); C = int(sys.argv[3])
def req(method, path, body=None, token=None, headers=None):
    h = {"content-type": "application/json"}
    if token: h["authorization"] = "Bearer " + token
    h.update(headers or {})
    r = urllib.request.Request(GW + path, data=json.dumps(body).encode() if body is not None else None, headers=h, method=method)
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
email = "bench-%s@example.com" % uuid.uuid4().hex[:8]
print(req("POST", "/api/v1/users/register", {"email": email, "password": "bench-password-123", "name": "Bench"})[0])
st, login = req("POST", "/api/v1/users/login", {"email": email, "password": "bench-password-123"})
tok = login["token"]
st, prods = req("GET", "/api/v1/products?limit=100")
items = [p for p in prods["items"] if p["stock"]["available"] > 50] if "stock" in prods["items"][0] else prods["items"]
pid = max(prods["items"], key=lambda p: p.get("stock", {}).get("available", 0))["id"]
lat = []; lock = threading.Lock(); statuses = {}
def worker(k):
    for i in range(k):
        t0 = time.time()
        st, o = req("POST", "/api/v1/orders", {"items": [{"product_id": pid, "quantity": 1}], "card": "4242424242424242"}, tok, {"idempotency-key": str(uuid.uuid4())})
        if st != 202:
            with lock: statuses[st] = statuses.get(st, 0) + 1
            continue
        oid = o["id"]
        while True:
            st, o = req("GET", "/api/v1/orders/" + oid, None, tok)
            if o and o.get("status") in ("confirmed", "cancelled"):
                break
            time.sleep(0.05)
        with lock:
            lat.append(time.time() - t0); statuses[o["status"]] = statuses.get(o["status"], 0) + 1
t0 = time.time()
ts = [threading.Thread(target=worker, args=(N // C,)) for _ in range(C)]
[t.start() for t in ts]; [t.join() for t in ts]
el = time.time() - t0
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("orders=%d concurrency=%d elapsed=%.1fs throughput=%.1f orders/s placed->terminal p50=%.0fms p99=%.0fms statuses=%s" % (len(lat), C, el, len(lat) / el, q(0.5) * 1000, q(0.99) * 1000, statuses))
