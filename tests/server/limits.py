#!/usr/bin/env python3
"""Socket-level probes of `folio serve`'s limits (issue #13), run by tests/cli/server_limits.sh.

usage: limits.py SCENARIO PORT [ARGS...]; prints "ok: ..." or "FAIL: ..." lines and exits 1
when any check failed. Scenarios:
  fd_flood PORT PID LOG N      N idle connections held past the open-file limit: no spinning,
                               no log flood, a bounded number of threads, served again after
  cheap_reject PORT N          N idle connections fill --max-connections N: the next request
                               gets 503 at once; served again once they close
  idle_close PORT S            a silent connection is closed after about S seconds
  forged_field PORT LOG        an unknown field holding a newline, ESC and a forged log line
  unknown_rss PORT PID         30 requests with distinct 3 MB unknown field names
  early_401 PORT               with --api-key: a 10 MB upload without the key is answered 401
                               before its body is sent
  budget PORT BODY TOTAL CLIENT  stalled uploads fill the per-client and total body budgets
  stalled_rss PORT PID         20 stalled 16 MB uploads from one address: RSS stays bounded
  tokenize_stall PORT          /health stays quick under a flood of full-size /tokenize calls
FOLIO_TEST_API_KEY: sent as the Bearer key with every request (not by early_401).
"""
import json
import os
import socket
import sys
import threading
import time

failures = 0
KEY = os.environ.get("FOLIO_TEST_API_KEY")
AUTH = f"Authorization: Bearer {KEY}\r\n" if KEY else ""


def ok(msg):
    print("ok: " + msg, flush=True)


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, flush=True)


def check(cond, msg, detail=""):
    (ok if cond else fail)(msg + ("" if cond or not detail else ": " + detail))


def connect(port, src="127.0.0.1", timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_status(s, timeout):
    """The status of the response on s within timeout seconds: an int, 'closed' or 'none'."""
    s.settimeout(timeout)
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                return "closed" if not data else data.decode(errors="replace")
            data += chunk
    except (socket.timeout, TimeoutError):
        return "none"
    except ConnectionResetError:
        return "closed"
    try:
        return int(data.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return data[:40].decode(errors="replace")


def http(port, method, path, body=b"", headers=None, src="127.0.0.1", timeout=10.0):
    """(status, body) of one request on a fresh connection."""
    s = connect(port, src, timeout)
    h = {"Host": "127.0.0.1", "Connection": "close"}
    if KEY:
        h["Authorization"] = "Bearer " + KEY
    if body:
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    h["Content-Length"] = str(len(body))
    head = "".join(f"{k}: {v}\r\n" for k, v in h.items())
    s.sendall(f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, TimeoutError):
        pass
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), rest
    except (IndexError, ValueError):
        return None, data


def proc_stat(pid):
    """(cpu seconds, threads, rss MB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    threads = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
    return cpu, threads, rss


def open_idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    return socks


def health_within(port, seconds):
    """Seconds until /health answered 200 (polling), or None."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        try:
            st, _ = http(port, "GET", "/health", timeout=1.0)
            if st == 200:
                return time.time() - t0
        except OSError:
            pass
        time.sleep(0.1)
    return None


def close_and_serve(port, socks):
    """Closes the held connections: /health must answer again soon."""
    for s in socks:
        s.close()
    t = health_within(port, 10.0)
    check(t is not None, f"served again once they closed ({t and round(t, 2)} s)")


# ---- item 1: connections and descriptors ----

def fd_flood(port, pid, log, n):
    port, pid, n = int(port), int(pid), int(n)
    size0 = os.path.getsize(log)
    cpu0, _, _ = proc_stat(pid)
    socks = open_idle(port, n)
    time.sleep(3.0)
    cpu1, threads, _ = proc_stat(pid)
    size1 = os.path.getsize(log)
    check(cpu1 - cpu0 < 0.3, f"{n} connections past the open-file limit: the server used "
          f"{cpu1 - cpu0:.2f} s of CPU in 3 s (no spinning)")
    check(size1 - size0 < 4096, f"... and logged {size1 - size0} bytes (no flood)")
    check(threads < 32, f"... with {threads} threads (no thread per connection)")
    close_and_serve(port, socks)


def cheap_reject(port, n):
    port, n = int(port), int(n)
    socks = open_idle(port, n)
    time.sleep(0.5)
    t0 = time.time()
    st, body = http(port, "GET", "/health", timeout=3.0)
    dt = time.time() - t0
    check(st == 503 and b"too many connections" in body and dt < 1.0,
          f"with {n} connections open (--max-connections {n}) the next request gets 503 at "
          f"once ({dt:.3f} s)", f"status {st}: {body[:200]!r}")
    close_and_serve(port, socks)


def idle_close(port, secs):
    port, secs = int(port), float(secs)
    s = connect(port)
    t0 = time.time()
    st = read_status(s, secs + 5)
    dt = time.time() - t0
    check(st == "closed" and secs - 0.5 <= dt <= secs + 3,
          f"a silent connection is closed after {dt:.1f} s (--idle-timeout {secs:g})", str(st))


# ---- item 2: unknown fields ----

def forged_field(port, log):
    port = int(port)
    forged = "x" * 200000 + "\nfolio: error: engine step failed: forged\x1b[31m" + "y" * 1000
    body = json.dumps({"prompt": "Once", "max_tokens": 2, forged: 1}).encode()
    st, rb = http(port, "POST", "/v1/completions", body)
    check(st == 200, "a request with a 200 KB unknown field name is served", f"{st} {rb[:200]!r}")
    time.sleep(0.3)
    with open(log, "rb") as f:
        text = f.read()
    lines = text.split(b"\n")
    check(not any(l.startswith(b"folio: error: engine step failed: forged") for l in lines),
          "a newline in a field name forges no log line")
    check(b"\x1b" not in text, "no ESC reaches the log")
    ours = [l for l in lines if b"unknown request field" in l]
    check(len(ours) == 1 and len(ours[0]) < 600 and b"\\n" not in ours[0][:100] and
          b"..." in ours[0], f"the name is logged once, cut short and escaped "
          f"({len(ours[0]) if ours else 0} bytes)", repr(ours[:1])[:300])


def under_asan(what):
    """AddressSanitizer's quarantine keeps freed memory: RSS bounds mean nothing there."""
    if os.environ.get("ASAN_OPTIONS"):
        print(f"ok: {what}: skipped under AddressSanitizer (its quarantine holds freed memory)")
        return True
    return False


def unknown_rss(port, pid):
    port, pid = int(port), int(pid)
    if under_asan("unknown field names and RSS"):
        return
    # warm up: the same work with one name, so allocator growth is not counted
    for i in range(3):
        http(port, "POST", "/v1/completions",
             json.dumps({"prompt": "a", "max_tokens": 1, "w" * (3 << 20): i}).encode())
    _, _, rss0 = proc_stat(pid)
    for i in range(30):
        name = f"{i:04d}" + "k" * (3 << 20)
        st, _ = http(port, "POST", "/v1/completions",
                     json.dumps({"prompt": "a", "max_tokens": 1, name: 1}).encode())
        if st != 200:
            fail(f"request {i} with a 3 MB unknown field: status {st}")
            return
    time.sleep(0.3)
    _, _, rss1 = proc_stat(pid)
    check(rss1 - rss0 < 40, f"30 distinct 3 MB unknown field names grew RSS by "
          f"{rss1 - rss0:.0f} MB (names are not kept)")


# ---- item 4: request bodies ----

def early_401(port):
    port = int(port)
    s = connect(port)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 10000000\r\n\r\n")
    t0 = time.time()
    st = read_status(s, 3.0)
    check(st == 401, f"with --api-key a 10 MB upload without the key is answered 401 before its "
          f"body is sent ({time.time() - t0:.3f} s)", str(st))
    s.close()


def stalled_upload(port, cl, send, src="127.0.0.1", path="/v1/completions"):
    """A connection that declared cl bytes and sent `send` of them; (socket, early status)."""
    s = connect(port, src)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{AUTH}"
              f"Content-Length: {cl}\r\n\r\n".encode())
    sent = 0
    s.settimeout(5.0)
    try:
        while sent < send:
            n = min(1 << 16, send - sent)
            s.sendall(b" " * n)
            sent += n
    except OSError:
        pass
    return s, read_status(s, 0.5)


def budget(port, body, total, client):
    port, body, total, client = int(port), int(body), int(total), int(client)
    per = client // body  # stalled uploads one address may hold
    held = []
    for i in range(per):
        s, st = stalled_upload(port, body, body // 2)
        held.append(s)
        check(st == "none", f"stalled upload {i + 1} of 127.0.0.1 is being read", str(st))
    s, st = stalled_upload(port, body, 0)
    check(st == 429, f"the next one from 127.0.0.1 passes --max-buffered-bytes-per-client "
          f"{client}: 429 before its body is read", str(st))
    s.close()
    src = 2
    while (len(held) + 1) * body <= total:
        s, st = stalled_upload(port, body, body // 2, f"127.0.0.{src}")
        held.append(s)
        src += 1
    s, st = stalled_upload(port, body, 0, f"127.0.0.{src}")
    check(st == 503, f"with {len(held)} stalled uploads from {src - 1} addresses the next one "
          f"passes --max-buffered-bytes {total}: 503", str(st))
    s.close()
    for s in held:
        s.close()
    time.sleep(0.3)
    st, rb = http(port, "POST", "/v1/completions", b'{"prompt": "a", "max_tokens": 2}',
                  src=f"127.0.0.{src}")
    check(st == 200, "the budget is given back when the stalled uploads go away", str(st))


def stalled_rss(port, pid):
    port, pid = int(port), int(pid)
    if under_asan("stalled uploads and RSS"):
        return
    _, _, rss0 = proc_stat(pid)
    held, codes = [], {}
    for _ in range(20):
        s, st = stalled_upload(port, 16 << 20, 12 << 20)
        held.append(s)
        codes[st] = codes.get(st, 0) + 1
    time.sleep(0.5)
    _, _, rss1 = proc_stat(pid)
    check(rss1 - rss0 < 150, f"20 stalled 16 MB uploads from one address grew RSS by "
          f"{rss1 - rss0:.0f} MB ({codes})")
    for s in held:
        s.close()


def tokenize_stall(port):
    port = int(port)
    text = "Once upon a time. " * 3300  # about 60 KB: under the 64 KiB limit
    body = json.dumps({"prompt": text}).encode()
    stop = time.time() + 2.0
    codes = {}

    def flood():
        while time.time() < stop:
            st, _ = http(port, "POST", "/tokenize", body)
            codes[st] = codes.get(st, 0) + 1

    threads = [threading.Thread(target=flood) for _ in range(8)]
    for t in threads:
        t.start()
    worst = 0.0
    while time.time() < stop:
        t0 = time.time()
        st, _ = http(port, "GET", "/health", timeout=5.0)
        worst = max(worst, time.time() - t0 if st == 200 else 99.0)
        time.sleep(0.05)
    for t in threads:
        t.join()
    check(worst < 1.0 and set(codes) == {200}, f"/health within {worst:.3f} s throughout a flood "
          f"of 60 KB /tokenize calls ({codes})")


if __name__ == "__main__":
    scenario, args = sys.argv[1], sys.argv[2:]
    globals()[scenario](*args)
    sys.exit(1 if failures else 0)
