#!/usr/bin/env python3
"""Soak test of `folio serve` (issue #13): a server on the CPU backend with a small KV pool,
driven for a bounded time by clients that mix streaming and non-streaming completions and
chat, n > 1, stop strings, logprobs, multi-turn sessions, more load than the KV pool holds
(preemption), clients that vanish mid-stream / mid-wait / mid-upload, malformed bodies, slow
and stalled uploads, oversized headers, unknown fields; then SIGTERM with streams in flight.

Checks (each failure names its check):
  text        every surviving request's output (text, token ids, logprob tokens, finish) equals
              the same request run alone at the start (temperature 0, or seeded); tokens lost = 0
  status      valid requests answer 200, malformed ones 4xx with a JSON error, never 5xx
  format      every streamed chunk has the fields of OpenAI's schema that clients read
  health      /health answers 200 within HEALTH_LIMIT_S throughout (probed every 0.1 s)
  gauges      num_requests_running/waiting, kv_cache_blocks_used and num_sessions back at their
              idle value (sessions end by end_session, DELETE, or --session-idle-timeout)
  sessions    every session ended (by its last turn's end_session, a DELETE, or idle expiry);
              a turn naming an ended session answers 404
  fds         /proc/PID/fd back at its idle count
  rss         VmRSS after the run <= RSS after warm-up + RSS_GROWTH_MB
  log         the log's bytes <= LOG_FIXED_BYTES + LOG_BYTES_PER_CONNECTION * connections made;
              no line over LOG_MAX_LINE bytes; no line a client forged
  shutdown    after SIGTERM the streams in flight finish (and equal their references), new
              connections are refused, exit status 0 within the shutdown timeout

Only loopback traffic; every loop is bounded in time. Prints the figures at the end (and as
JSON with --figures FILE). Exit 0 when every check passed, 1 otherwise.

usage: soak.py --folio build/folio --model DIR --log FILE [--duration S] [--clients N] [--seed N]
(tests/soak/soak.sh runs it on stories260K with a chat template)
"""
import argparse
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HEALTH_LIMIT_S = 1.0
RSS_GROWTH_MB = 16
LOG_FIXED_BYTES = 32 * 1024
LOG_BYTES_PER_CONNECTION = 256
LOG_MAX_LINE = 1024
IO_TIMEOUT_S = 120           # no single request may take longer (a hang is a failure)
FORGED = "folio: error: engine step failed: forged by a soak client"

# ---------------------------------------------------------------------------- reporting

lock = threading.Lock()
failures = {}                # check -> [count, first messages]
counts = {}                  # figure -> number (the soak phase's)
http_total = [0]             # connections opened, over the server's whole life


def fail(check, msg):
    with lock:
        f = failures.setdefault(check, [0, []])
        f[0] += 1
        if len(f[1]) < 5:
            f[1].append(msg)
    if failures[check][0] <= 5:
        print(f"FAIL [{check}]: {msg}", file=sys.stderr, flush=True)


def count(name, n=1):
    with lock:
        counts[name] = counts.get(name, 0) + n


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

# ---------------------------------------------------------------------------- raw HTTP


class Http:
    """One HTTP/1.1 exchange over a raw socket (so a test can stop at any byte)."""

    def __init__(self, port, timeout=IO_TIMEOUT_S):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        count("connections")
        with lock:
            http_total[0] += 1

    def send(self, data):
        self.s.sendall(data)

    def vanish(self, rst):
        """Closes at once: with rst, an RST instead of a FIN (SO_LINGER 0)."""
        if rst:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()

    def close(self):
        self.s.close()

    def _fill(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("connection closed")
        self.buf += b

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def head(self):
        """Status and headers (lower-cased names)."""
        status = int(self._line().split(b" ")[1])
        hdrs = {}
        while True:
            line = self._line()
            if not line:
                return status, hdrs
            k, _, v = line.partition(b":")
            hdrs[k.strip().lower().decode()] = v.strip().decode()

    def body_pieces(self, hdrs):
        """The body as it arrives (chunked, by length, or to the close)."""
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            while True:
                n = int(self._line().split(b";")[0], 16)
                if n == 0:
                    self._line()
                    return
                yield self._take(n)
                self._take(2)
        elif "content-length" in hdrs:
            yield self._take(int(hdrs["content-length"]))
        else:
            while True:
                try:
                    self._fill()
                except EOFError:
                    break
            yield self.buf
            self.buf = b""


def request_bytes(method, path, body=b"", content_length=None, keep_alive=False):
    cl = len(body) if content_length is None else content_length
    return (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {cl}\r\n\r\n").encode() + body


def exchange(port, method, path, body=b"", timeout=IO_TIMEOUT_S):
    """(status, body bytes) of one whole exchange."""
    h = Http(port, timeout)
    try:
        h.send(request_bytes(method, path, body))
        status, hdrs = h.head()
        return status, b"".join(h.body_pieces(hdrs))
    finally:
        h.close()


def sse_events(h, hdrs):
    """The JSON events of a stream, then None for [DONE]."""
    pending = b""
    for piece in h.body_pieces(hdrs):
        pending += piece
        while b"\n\n" in pending:
            ev, pending = pending.split(b"\n\n", 1)
            if not ev.startswith(b"data: "):
                continue
            data = ev[6:]
            if data == b"[DONE]":
                yield None
            else:
                yield json.loads(data)

# ---------------------------------------------------------------------------- results


def new_choice():
    return {"text": "", "ids": [], "lp": [], "finish": None}


def from_response(kind, o):
    """Choices of a whole response, normalised: index -> text, ids, logprob tokens, finish."""
    out = {}
    for c in o["choices"]:
        r = new_choice()
        r["text"] = (c["message"]["content"] or "") if kind == "chat" else c["text"]
        r["ids"] = c.get("token_ids") or []
        lp = c.get("logprobs")
        if lp:
            r["lp"] = [(t["token"], t["logprob"]) for t in lp["content"]] if kind == "chat" \
                else list(zip(lp["tokens"], lp["token_logprobs"]))
        r["finish"] = c["finish_reason"]
        out[c["index"]] = r
    return out


def add_chunk(kind, acc, o):
    for c in o.get("choices") or []:
        r = acc.setdefault(c["index"], new_choice())
        if kind == "chat":
            r["text"] += c["delta"].get("content") or ""
        elif "text" not in c:  # the OpenAI schema requires it (clients read it unchecked)
            fail("format", f"a completions chunk without 'text': {json.dumps(o)[:300]}")
        else:
            r["text"] += c["text"]
        r["ids"] += c.get("token_ids") or []
        lp = c.get("logprobs")
        if lp:
            r["lp"] += [(t["token"], t["logprob"]) for t in lp["content"]] if kind == "chat" \
                else list(zip(lp["tokens"], lp["token_logprobs"]))
        if c.get("finish_reason"):
            r["finish"] = c["finish_reason"]


def compare(what, got, ref, usage=None, ref_usage=None, ids=True):
    """Checks a result against its reference (token ids too when the request asked for them);
    counts tokens lost. True when equal."""
    ok = True
    if sorted(got) != sorted(ref):
        fail("text", f"{what}: choices {sorted(got)} vs {sorted(ref)}")
        return False
    if usage and ref_usage and usage["prompt_tokens"] != ref_usage["prompt_tokens"]:
        fail("text", f"{what}: prompt_tokens {usage['prompt_tokens']} vs alone "
                     f"{ref_usage['prompt_tokens']}")
        ok = False
    if usage and ref_usage and usage["completion_tokens"] < ref_usage["completion_tokens"]:
        count("tokens_lost", ref_usage["completion_tokens"] - usage["completion_tokens"])
        fail("text", f"{what}: completion_tokens {usage['completion_tokens']} vs alone "
                     f"{ref_usage['completion_tokens']}")
        ok = False
    for i in ref:
        g, r = got[i], ref[i]
        if not usage and ids and len(g["ids"]) < len(r["ids"]):
            count("tokens_lost", len(r["ids"]) - len(g["ids"]))
        if g["text"] != r["text"] or g["finish"] != r["finish"] or (ids and g["ids"] != r["ids"]):
            fail("text", f"{what} choice {i}: {json.dumps([g['text'], g['finish']])[:300]} vs "
                         f"alone {json.dumps([r['text'], r['finish']])[:300]} (ids {len(g['ids'])} "
                         f"vs {len(r['ids'])})")
            ok = False
        elif [t for t, _ in g["lp"]] != [t for t, _ in r["lp"]] or any(
                abs(a - b) > 1e-4 for (_, a), (_, b) in zip(g["lp"], r["lp"])):
            fail("text", f"{what} choice {i}: logprobs differ from the request run alone")
            ok = False
    count("choices_checked", len(ref))
    count("tokens_checked", ref_usage["completion_tokens"] if ref_usage else 0)
    return ok

# ---------------------------------------------------------------------------- the workload

PATHS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park", "One day, a bird",
           "The sun was hot and", "Tim had a big red ball", "Sue liked to sing", "There was a tree"]


def make_templates():
    """The distinct requests (each run alone first for its reference)."""
    t = []
    for i in range(16):
        r = {"prompt": PROMPTS[i % 8] + " and then" * (i % 3),
             "max_tokens": [8, 16, 24, 32, 48, 64][i % 6], "temperature": 0}
        if i % 2:
            r["ignore_eos"] = True
        if i % 4 == 1:
            r["n"] = 2
        if i % 7 == 3:
            r["n"] = 3
        if i % 5 == 2:
            r["stop"] = [" the", "."]
        if i % 5 == 4:
            r["stop"] = ["Lily", "!"]
        if i % 3 == 0:
            r["logprobs"] = 2
        if i % 6 == 5:  # seeded sampling: as reproducible as greedy
            r.update(temperature=0.8, seed=1000 + i, n=2)
        if i % 8 == 7 and "logprobs" not in r:   # echo with logprobs: not supported
            r["echo"] = True
        t.append(("completions", r))
    # stopped at its first token: the stream's last chunk has no text of its own
    t.append(("completions", {"prompt": "There was a tree", "max_tokens": 8, "temperature": 0,
                              "stop": ["."]}))
    for i in range(4):
        r = {"messages": [{"role": "user", "content": PROMPTS[(i * 3) % 8]}],
             "max_tokens": [16, 32, 48][i % 3], "temperature": 0}
        if i % 2:
            r["n"] = 2
        if i % 3 == 1:
            r.update(logprobs=True, top_logprobs=2)
        if i % 3 == 2:
            r["stop"] = ["."]
        t.append(("chat", r))
    return t


# in flight at SIGTERM: long enough to be mid-stream when the signal comes
SHUTDOWN_REQ = {"prompt": "Once upon a time", "max_tokens": 64, "ignore_eos": True,
                "temperature": 0, "return_token_ids": True}
# Sessions left idle end after this long (--session-idle-timeout); the server looks once a second.
SESSION_IDLE_S = 3

SESSIONS = [  # turns of a conversation kept in the server's KV between turns
    [("Once upon a time", 16), (" Then the dog ran", 24), (" The end.", 12)],
    [("Lily had a cat", 24), (" One day", 16)],
    [("Tom went to school", 12), (" He saw a bird", 20), (" The bird said", 16)],
]


class Soak:
    def __init__(self, a):
        self.a = a
        self.port = None
        self.proc = None
        self.templates = make_templates()
        self.refs = {}            # key -> (choices, usage)
        self.session_refs = []    # [session][turn] -> (choices, usage)
        self.next_session = 1_000_000
        self.ended = {}           # how a session was ended ("client", "expired") -> one such id
        self.stop_at = 0
        self.health_max = 0.0
        self.health_n = 0
        self.health_stop = threading.Event()
        self.peak = {"running": 0, "waiting": 0, "kv_used": 0, "fds": 0}
        self.rss_trend = []       # RSS (MB) every 30 s of the load

    # ---- server

    def start(self):
        cmd = [self.a.folio, "serve", "--model", self.a.model, "--port", "0",
               "--served-model-name", "stories", "--num-kv-blocks", str(self.a.kv_blocks),
               "--max-model-len", "256", "--max-num-seqs", "16", "--shutdown-timeout", "30",
               "--session-idle-timeout", str(SESSION_IDLE_S)]
        self.logf = open(self.a.log, "wb")
        env = dict(os.environ)
        # glibc's fatal messages (heap corruption, stack smashing) go to the log, not /dev/tty:
        # one CI run saw the server end by SIGABRT with nothing in its log
        env["LIBC_FATAL_STDERR_"] = "1"
        if "ASAN_OPTIONS" in env:  # under AddressSanitizer: a quarantine that cannot pass for
            env["ASAN_OPTIONS"] += ":quarantine_size_mb=8"  # growth (256 MB by default)
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server died: {open(self.a.log).read()}")
            for line in open(self.a.log, errors="replace"):
                if "on http://127.0.0.1:" in line:
                    self.port = int(line.split("on http://127.0.0.1:")[1].split(" ")[0])
            if self.port:
                try:
                    if exchange(self.port, "GET", "/health", timeout=5)[0] == 200:
                        log(f"server pid {self.proc.pid} on port {self.port}: {' '.join(cmd)}")
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise SystemExit("server did not come up")

    def metrics(self):
        """/metrics: each sample by its name with labels, and each name's sum over them."""
        st, body = exchange(self.port, "GET", "/metrics", timeout=10)
        m = {}
        for line in body.decode().splitlines():
            if line.startswith("folio:"):
                sample, value = line[len("folio:"):].rsplit(" ", 1)
                name = sample.split("{")[0]
                m[sample] = float(value)
                if sample != name:
                    m[name] = m.get(name, 0.0) + float(value)
        return m

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_mb(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0

    # ---- one request

    def run(self, kind, req, stream, vanish_after=None, rst=False):
        """Runs one request: (choices, usage), or None when it vanished on purpose."""
        body = dict(req, model="stories")
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        path = PATHS[kind]
        try:
            h = Http(self.port)
        except OSError as e:
            fail("status", f"{kind}: cannot connect: {e}")
            return "error"
        try:
            h.send(request_bytes("POST", path, json.dumps(body).encode()))
            status, hdrs = h.head()
            if status != 200:
                fail("status", f"{kind} {json.dumps(body)[:200]}: status {status} "
                               f"{b''.join(h.body_pieces(hdrs))[:300]!r}")
                return "error"
            if not stream:
                o = json.loads(b"".join(h.body_pieces(hdrs)))
                return from_response(kind, o), o["usage"]
            acc, usage, done, events = {}, None, False, 0
            for ev in sse_events(h, hdrs):
                if ev is None:
                    done = True
                    break
                if "error" in ev:
                    fail("status", f"stream error event: {json.dumps(ev)[:300]}")
                    return "error"
                events += 1
                if vanish_after is not None and events >= vanish_after:
                    h.vanish(rst)
                    count("vanished_streams")
                    return None
                if ev.get("usage"):
                    usage = ev["usage"]
                add_chunk(kind, acc, ev)
            if not done:
                fail("text", f"{kind} stream ended without [DONE]")
                return "error"
            if vanish_after is not None:   # finished before the client could vanish
                count("vanish_too_late")
            count("streams_completed")
            return acc, usage
        except (OSError, EOFError, ValueError) as e:
            fail("status", f"{kind} {'stream' if stream else 'request'} "
                           f"{json.dumps(body)[:160]}: {type(e).__name__}: {e}")
            return "error"
        finally:
            h.close()

    def answer_checked(self, what, h, kind, req):
        """Reads a whole (not streamed) answer from h and compares it with req's reference;
        True when it was a 200."""
        status, hdrs = h.head()
        body = b"".join(h.body_pieces(hdrs))
        if status != 200:
            fail("status", f"{what}: status {status} {body[:200]!r}")
            return False
        o = json.loads(body)
        ref = self.refs[self.key(kind, req)]
        compare(f"{what} {json.dumps(req)[:100]}", from_response(kind, o), ref[0], o["usage"],
                ref[1], ids=False)
        return True

    @staticmethod
    def key(kind, req):
        """The reference's key: what changes the output (not how it is delivered)."""
        r = {k: v for k, v in req.items() if k not in ("return_token_ids", "stream",
                                                        "stream_options")}
        return kind + json.dumps(r, sort_keys=True)

    def checked(self, what, kind, req, res):
        """Compares a finished request with its reference (run alone)."""
        if res is None or res == "error":
            return
        ref = self.refs[self.key(kind, req)]
        compare(what, res[0], ref[0], res[1], ref[1], ids=req.get("return_token_ids", False))
        count("requests_ok")

    def session(self, turns, stream_turns, vanish_turn=None, end="turn"):
        """One conversation under a fresh session id, a turn after the other: the turns'
        results (fewer after an error), or None when the client vanished mid-turn. end: how
        the session ends: "turn" (end_session on the last turn), "delete" (DELETE after it),
        "idle" (left to --session-idle-timeout, as is a session whose client vanished)."""
        with lock:
            sid = self.next_session
            self.next_session += 1
        out = []
        for k, (prompt, max_tokens) in enumerate(turns):
            req = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                   "session_id": sid, "ignore_eos": True, "return_token_ids": True}
            if end == "turn" and k == len(turns) - 1:
                req["end_session"] = True
            res = self.run("completions", req, k in stream_turns,
                           vanish_after=2 if k == vanish_turn else None, rst=True)
            if res is None:   # vanished: the session is never used again
                return None
            if res == "error":
                return out
            out.append(res)
        if end == "delete":
            st, body = exchange(self.port, "DELETE", f"/v1/sessions/{sid}")
            if st != 200 or json.loads(body) != {"id": sid, "object": "session", "deleted": True}:
                fail("sessions", f"DELETE /v1/sessions/{sid}: {st} {body[:200]!r}")
        with lock:
            self.ended["expired" if end == "idle" else "client"] = sid
        return out

    # ---- the actions of a client

    def act_request(self, rng, stream, vanish=False):
        kind, req = rng.choice(self.templates)
        req = dict(req)
        if rng.random() < 0.5:
            req["return_token_ids"] = True
        if vanish:
            res = self.run(kind, req, True, vanish_after=rng.randint(1, 4), rst=rng.random() < 0.5)
        else:
            res = self.run(kind, req, stream)
        self.checked(f"{kind} {'stream' if stream else 'request'} {json.dumps(req)[:120]}",
                     kind, req, res)

    def act_session(self, rng):
        s = rng.randrange(len(SESSIONS))
        turns = SESSIONS[s]
        stream_turns = {k for k in range(len(turns)) if rng.random() < 0.5}
        vanish = rng.randrange(len(turns)) if rng.random() < 0.15 else None
        res = self.session(turns, stream_turns, vanish, rng.choice(["turn", "turn", "delete", "idle"]))
        if res is None:
            count("vanished_sessions")
            return
        for k, r in enumerate(res):
            ref = self.session_refs[s][k]
            compare(f"session {s} turn {k}", r[0], ref[0], r[1], ref[1])
            if k and r[1]["prompt_tokens_details"]["cached_tokens"] > 0:
                count("session_turns_reusing_kv")
        count("sessions_ok")
        count("session_turns", len(res))

    def act_vanish_wait(self, rng):
        """A non-streaming client that hangs up while its request runs."""
        kind, req = rng.choice(self.templates)
        h = Http(self.port)
        h.send(request_bytes("POST", PATHS[kind], json.dumps(req).encode()))
        time.sleep(rng.random() * 0.2)
        h.vanish(rng.random() < 0.5)
        count("vanished_waits")

    def act_vanish_upload(self, rng):
        body = json.dumps(dict(self.templates[0][1])).encode()
        h = Http(self.port)
        h.send(request_bytes("POST", "/v1/completions", body[:len(body) // 2],
                             content_length=len(body)))
        time.sleep(rng.random() * 0.1)
        h.vanish(rng.random() < 0.5)
        count("vanished_uploads")

    def act_stall_upload(self, rng):
        """Sends part of the headers or of the body, stalls for a while, then gives up."""
        body = json.dumps(dict(self.templates[1][1])).encode()
        data = request_bytes("POST", "/v1/completions", body)
        h = Http(self.port)
        h.send(data[:rng.randrange(1, len(data) - 1)])
        time.sleep(1 + rng.random())
        h.vanish(rng.random() < 0.5)
        count("stalled_uploads")

    def act_keep_alive(self, rng):
        """Several requests over one kept-alive connection, as pooled clients send them."""
        h = Http(self.port)
        try:
            for k in range(3):
                kind, req = rng.choice(self.templates)
                h.send(request_bytes("POST", PATHS[kind], json.dumps(req).encode(),
                                     keep_alive=True))
                if not self.answer_checked(f"keep-alive request {k}", h, kind, req):
                    return
                count("requests_ok")
        finally:
            h.close()

    def act_slow_upload(self, rng):
        """A valid request whose headers and body trickle in over about a second."""
        kind, req = rng.choice(self.templates)
        data = request_bytes("POST", PATHS[kind], json.dumps(req).encode())
        h = Http(self.port)
        try:
            step = max(1, len(data) // 20)
            for i in range(0, len(data), step):
                h.send(data[i:i + step])
                time.sleep(0.05)
            if self.answer_checked("slow upload", h, kind, req):
                count("slow_uploads")
        except (OSError, EOFError, ValueError) as e:
            fail("status", f"slow upload: {type(e).__name__}: {e}")
        finally:
            h.close()

    MALFORMED = [
        b"{", b"[]", b"null", b"", b"\x00" * 64, b'{"prompt": 5}', b'{"prompt": "a", "max_tokens": -1}',
        b'{"prompt": "a", "max_tokens": 1e400}', b'{"prompt": "\xff\xfe"}',
        b'{"prompt": "a", "temperature": "hot"}', b'{"prompt": "a", "n": 100000}',
        b'{"prompt": "a", "logprobs": 100}', b'{"prompt": [1, 2, 99999]}', b'{"prompt": []}',
        b'{"prompt": "a", "stop": [1, 2]}', b'{"prompt": "a", "model": "nope"}',
        b'{"prompt": "a", "session_id": 7, "n": 2}', b'{"prompt": "a", "top_p": 7}',
        b'{"prompt": "a", "stream_options": 3, "stream": true}', b'{"prompt": ' + b"[" * 5000,
        b'{"messages": "hi"}', b'{"prompt": "a", "max_tokens": 100000}',
        b'{"prompt": "a", "logit_bias": {"x": 1}}',
    ]

    def act_malformed(self, rng):
        body = rng.choice(self.MALFORMED)
        path = PATHS["chat" if body.startswith(b'{"messages"') else "completions"]
        try:
            status, resp = exchange(self.port, "POST", path, body)
        except (OSError, EOFError) as e:
            fail("status", f"malformed {body[:60]!r}: {type(e).__name__}: {e}")
            return
        if not 400 <= status < 500:
            fail("status", f"malformed {body[:60]!r}: status {status} {resp[:200]!r}")
            return
        try:
            json.loads(resp)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            fail("status", f"malformed {body[:60]!r}: {status} without a JSON error: {resp[:200]!r}")
        count("malformed")

    def act_big_header(self, rng):
        """Oversized headers: one huge header, many headers, or a huge URL."""
        k = rng.randrange(3)
        if k == 0:
            data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n"
        elif k == 1:
            data = b"GET /health HTTP/1.1\r\nHost: x\r\n" + \
                b"".join(b"X-H%d: v\r\n" % i for i in range(4000)) + b"\r\n"
        else:
            data = b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        h = Http(self.port)
        try:
            h.send(data)
            status, _ = h.head()
            if status not in (400, 413, 414, 431):
                fail("status", f"oversized header {k}: status {status}")
        except (OSError, EOFError):
            pass   # the server may cut the connection before all was sent
        finally:
            h.close()
        count("oversized_headers")

    def act_unknown_fields(self, rng):
        """A valid request with unknown fields: long names, and one that tries to forge a log
        line. The answer must still equal the reference."""
        kind, req = self.templates[2]
        body = dict(req)
        for i in range(3):
            body[f"x_soak_{rng.randrange(10**9)}_" + "k" * 2000] = i
        body["\n" + FORGED + "\n"] = 1
        h = Http(self.port)
        try:
            h.send(request_bytes("POST", PATHS[kind], json.dumps(body).encode()))
            if self.answer_checked("request with unknown fields", h, kind, req):
                count("unknown_field_requests")
        finally:
            h.close()

    def act_misc(self, rng):
        k = rng.randrange(3)
        if k == 0:
            st, b = exchange(self.port, "POST", "/tokenize", b'{"prompt": "Once upon a time"}')
        elif k == 1:
            st, b = exchange(self.port, "POST", "/detokenize", b'{"tokens": [1, 403, 407]}')
        else:
            st, b = exchange(self.port, "GET", "/v1/models")
        if st != 200:
            fail("status", f"misc route {k}: status {st} {b[:200]!r}")

    ACTIONS = [("request", 20), ("stream", 22), ("session", 10), ("keep_alive", 3),
               ("vanish_stream", 10), ("vanish_wait", 4), ("vanish_upload", 3), ("malformed", 8),
               ("slow_upload", 3), ("stall_upload", 2), ("big_header", 3), ("unknown_fields", 1),
               ("misc", 3)]

    def client(self, idx, n_actions=None):
        """Actions until stop_at (or n_actions of them)."""
        rng = random.Random(self.a.seed * 1000 + idx)
        names = [n for n, w in self.ACTIONS for _ in range(w)]
        done = 0
        while (time.time() < self.stop_at) if n_actions is None else done < n_actions:
            done += 1
            what = rng.choice(names)
            count("action_" + what)
            try:
                if what == "request":
                    self.act_request(rng, False)
                elif what == "stream":
                    self.act_request(rng, True)
                elif what == "vanish_stream":
                    self.act_request(rng, True, vanish=True)
                else:
                    getattr(self, "act_" + what)(rng)
            except (OSError, EOFError) as e:
                fail("status", f"{what}: {type(e).__name__}: {e}")
            except Exception as e:  # noqa: BLE001 (a malformed answer: report, go on)
                fail("client", f"{what}: {type(e).__name__}: {e}")

    # ---- observers

    def health_probe(self):
        while not self.health_stop.is_set():
            t0 = time.time()
            try:
                st, _ = exchange(self.port, "GET", "/health", timeout=HEALTH_LIMIT_S)
                if st != 200:
                    fail("health", f"/health answered {st}")
                elif time.time() - t0 > HEALTH_LIMIT_S:
                    fail("health", f"/health took {time.time() - t0:.2f} s")
            except Exception as e:  # noqa: BLE001 (a time-out, a refusal, a broken answer)
                fail("health", f"/health: no answer within {HEALTH_LIMIT_S} s "
                               f"({type(e).__name__}: {e})")
            with lock:
                self.health_max = max(self.health_max, time.time() - t0)
                self.health_n += 1
            self.health_stop.wait(0.1)

    def sampler(self, stop):
        while not stop.is_set():
            try:
                m = self.metrics()
                self.peak["running"] = max(self.peak["running"], m.get("num_requests_running", 0))
                self.peak["waiting"] = max(self.peak["waiting"], m.get("num_requests_waiting", 0))
                self.peak["kv_used"] = max(self.peak["kv_used"], m.get("kv_cache_blocks_used", 0))
                self.peak["fds"] = max(self.peak["fds"], self.fds())
            except Exception:  # noqa: BLE001 (the checks after the load say what is wrong)
                pass
            stop.wait(0.5)

    # ---- phases

    def references(self):
        """Every template and session run alone, one at a time."""
        t0 = time.time()
        for kind, req in self.templates + [("completions", SHUTDOWN_REQ)]:
            res = self.run(kind, dict(req, return_token_ids=True), False)
            if res in (None, "error"):
                raise SystemExit(f"reference run failed: {kind} {req}")
            self.refs[self.key(kind, req)] = res
        for turns in SESSIONS:
            res = self.session(turns, set())
            if res is None or len(res) != len(turns):
                raise SystemExit("reference session failed")
            self.session_refs.append(res)
            for k, (_, usage) in enumerate(res[1:], 1):  # alone, every turn reuses its KV
                if usage["prompt_tokens_details"]["cached_tokens"] == 0:
                    fail("sessions", f"turn {k} of {turns} run alone reused no KV: {usage}")
        log(f"references: {len(self.refs)} requests and {len(SESSIONS)} sessions run alone in "
            f"{time.time() - t0:.1f} s")

    def ended_sessions(self):
        """After the load: every session ended (the gauge is 0 once the idle ones expire), and
        a turn naming an ended one (by its client; by expiry) answers 404 saying so."""
        for how, sid in sorted(self.ended.items()):
            req = {"prompt": "again", "max_tokens": 2, "session_id": sid}
            st, body = exchange(self.port, "POST", "/v1/completions", json.dumps(req).encode())
            want = "expired after" if how == "expired" else "ended by the client"
            if st != 404 or want.encode() not in body:
                fail("sessions", f"a turn of session {sid} ({how}): {st} {body[:200]!r}")
        if not self.ended:
            fail("coverage", "no session ran")

    def settle(self, what):
        """Waits (up to 20 s) for the server to go idle; its gauges and fd count."""
        t0 = time.time()
        while True:
            m = self.metrics()
            fds = self.fds()
            idle = (m.get("num_requests_running") == 0 and m.get("num_requests_waiting") == 0
                    and m.get("kv_cache_blocks_used") == 0 and m.get("num_sessions") == 0)
            if (idle and fds == getattr(self, "idle_fds", fds)) or time.time() > t0 + 20:
                log(f"{what}: {'idle' if idle else 'NOT idle'} after {time.time() - t0:.1f} s")
                return m, fds
            time.sleep(0.1)

    def warm_up(self):
        """A burst of the same clients (a few actions each), then idle: the baseline."""
        threads = [threading.Thread(daemon=True, target=self.client, args=(1000 + i, self.a.warmup_actions))
                   for i in range(self.a.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        m, fds = self.settle("warm-up")
        self.idle_fds = fds
        time.sleep(0.5)
        self.idle_rss = self.rss_mb()
        self.idle_metrics = m
        log(f"after warm-up: RSS {self.idle_rss:.1f} MB, {fds} fds, "
            f"KV blocks used {m.get('kv_cache_blocks_used'):.0f} of "
            f"{m.get('kv_cache_num_blocks'):.0f}")

    def soak(self):
        with lock:
            counts.clear()
        stop = threading.Event()
        sampler = threading.Thread(daemon=True, target=self.sampler, args=(stop,))
        sampler.start()
        t0 = time.time()
        self.stop_at = t0 + self.a.duration
        threads = [threading.Thread(daemon=True, target=self.client, args=(i,)) for i in range(self.a.clients)]
        for t in threads:
            t.start()
        next_log = t0 + 30
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if time.time() >= next_log:
                next_log += 30
                self.rss_trend.append(round(self.rss_mb(), 1))
                log(f"{time.time() - t0:.0f} s: {counts.get('connections', 0)} connections, "
                    f"RSS {self.rss_trend[-1]:.1f} MB, {self.fds()} fds, "
                    f"{sum(f[0] for f in failures.values())} failures")
        for t in threads:
            t.join()
        self.soak_s = time.time() - t0
        log(f"load over after {self.soak_s:.1f} s")
        stop.set()
        sampler.join()
        m, fds = self.settle("soak")
        self.ended_sessions()
        time.sleep(0.5)
        rss = self.rss_mb()
        self.end_metrics, self.end_fds, self.end_rss = m, fds, rss
        for g in ("num_requests_running", "num_requests_waiting", "kv_cache_blocks_used",
                  "kv_cache_usage_perc", "num_sessions"):
            if m.get(g) != self.idle_metrics.get(g):
                fail("gauges", f"{g} is {m.get(g)} after the run, {self.idle_metrics.get(g)} idle")
        errors_5xx = {k: v for k, v in m.items() if k.startswith('http_errors_total{status="5')}
        if errors_5xx:
            fail("status", f"the server answered 5xx: {errors_5xx}")
        if self.proc.poll() is not None:
            fail("crash", f"the server exited during the load (status {self.proc.returncode})")
        if fds != self.idle_fds:
            fail("fds", f"{fds} open fds after the run, {self.idle_fds} after warm-up: "
                        f"{sorted(os.readlink(f'/proc/{self.proc.pid}/fd/{f}') for f in os.listdir(f'/proc/{self.proc.pid}/fd'))}")
        bound = self.idle_rss + RSS_GROWTH_MB
        if rss > bound:
            fail("rss", f"RSS {rss:.1f} MB after the run > bound {bound:.1f} MB "
                        f"(after warm-up {self.idle_rss:.1f} MB)")
        if m.get("num_preemptions_total", 0) <= self.idle_metrics.get("num_preemptions_total", 0):
            fail("coverage", "no preemption during the run (the KV pool was never short)")

    def shutdown(self):
        """SIGTERM with streams in flight: they finish, new connections are refused, exit 0."""
        kind, req = "completions", SHUTDOWN_REQ
        results = [None] * 4
        started = threading.Barrier(5)

        def one(i):
            body = dict(req, model="stories", stream=True)
            h = Http(self.port)
            acc = {}
            try:
                h.send(request_bytes("POST", "/v1/completions", json.dumps(body).encode()))
                status, hdrs = h.head()
                first = True
                for ev in sse_events(h, hdrs):
                    if first:
                        started.wait(30)
                        first = False
                    if ev is None:
                        results[i] = acc
                        break
                    add_chunk(kind, acc, ev)
            except (OSError, EOFError, ValueError, threading.BrokenBarrierError) as e:
                results[i] = f"{type(e).__name__}: {e}"
            finally:
                h.close()

        threads = [threading.Thread(daemon=True, target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            started.wait(30)
        except threading.BrokenBarrierError:
            fail("shutdown", "the streams to be in flight at SIGTERM did not start")
        t0 = time.time()
        self.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        try:
            st, _ = exchange(self.port, "GET", "/health", timeout=2)
            if st == 200:
                fail("shutdown", "a new connection was answered 200 after SIGTERM")
        except (OSError, EOFError):
            pass   # refused: what we want
        for t in threads:
            t.join(60)
        ref = self.refs[self.key(kind, req)]
        for i, r in enumerate(results):
            if not isinstance(r, dict):
                fail("shutdown", f"stream {i} in flight at SIGTERM: {r}")
            else:
                compare(f"stream in flight at SIGTERM {i}", r, ref[0])
        try:
            rc = self.proc.wait(45)
        except subprocess.TimeoutExpired:
            fail("shutdown", "still running 45 s after SIGTERM")
            self.proc.kill()
            rc = self.proc.wait()
        self.shutdown_s = time.time() - t0
        if rc != 0:
            fail("shutdown", f"exit status {rc} after SIGTERM (the log's end is below)")
        drained = [x for x in open(self.a.log, errors="replace") if "shutting down" in x]
        self.drained = int(drained[0].split("finishing ")[1].split(" ")[0]) if drained else -1
        log(f"SIGTERM with 4 streams started: exit {rc} after {self.shutdown_s:.1f} s; "
            f"{self.drained} request(s) were still running")

    def check_log(self):
        self.logf.close()
        data = open(self.a.log, "rb").read()
        self.log_bytes = len(data)
        lines = data.split(b"\n")
        self.log_lines = len(lines)
        self.log_longest = max(len(x) for x in lines)
        bound = LOG_FIXED_BYTES + LOG_BYTES_PER_CONNECTION * self.total_http
        if len(data) > bound:
            fail("log", f"{len(data)} log bytes > bound {bound} ({self.total_http} connections)")
        if self.log_longest > LOG_MAX_LINE:
            fail("log", f"a log line of {self.log_longest} bytes (limit {LOG_MAX_LINE}): "
                        f"{max(lines, key=len)[:120]!r}...")
        forged = [x for x in lines if x.startswith(FORGED.encode())]
        if forged:
            fail("log", f"a client forged {len(forged)} log line(s): {forged[0][:120]!r}")


def report_failures():
    for k, (n, msgs) in sorted(failures.items()):
        print(f"FAILED check '{k}': {n} time(s); first: {msgs[0]}", file=sys.stderr)
    sys.exit(1)


def print_log_tail(path, n=60):
    lines = open(path, errors="replace").read().splitlines()
    print(f"--- the server's log, last {min(n, len(lines))} of {len(lines)} lines:", file=sys.stderr)
    for line in lines[-n:]:
        print("    " + line[:300], file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--folio", required=True)
    p.add_argument("--model", required=True, help="stories260K with a chat template")
    p.add_argument("--log", required=True, help="where the server's log goes")
    p.add_argument("--duration", type=float,
                   default=float(os.environ.get("FOLIO_SOAK_SECONDS", "15")),
                   help="seconds of load (default $FOLIO_SOAK_SECONDS or 15)")
    p.add_argument("--warmup-actions", type=int, default=3, help="per client, before the baseline")
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--kv-blocks", type=int, default=24, help="KV pool (blocks of 16 tokens)")
    p.add_argument("--seed", type=int, default=int(os.environ.get("FOLIO_SOAK_SEED", "1")))
    p.add_argument("--figures", help="write the figures as JSON here")
    a = p.parse_args()

    t_start = time.time()
    s = Soak(a)
    s.start()
    health = threading.Thread(daemon=True, target=s.health_probe)
    health.start()
    try:
        s.references()
        s.warm_up()
        log(f"soak: {a.clients} clients for {a.duration:.0f} s (KV pool {a.kv_blocks} blocks)")
        s.soak()
        figs = dict(counts)
        s.health_stop.set()
        health.join()
        s.shutdown()
    except Exception as e:  # noqa: BLE001 (e.g. the server died: show why)
        died = s.proc.poll()
        fail("crash", f"{type(e).__name__}: {e}" +
             (f" (the server exited with status {died})" if died is not None else ""))
        print_log_tail(a.log)
        report_failures()
    finally:
        s.health_stop.set()
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
    if s.proc.returncode != 0:
        print_log_tail(a.log)
    s.total_http = http_total[0]
    s.check_log()

    c = lambda k: figs.get(k, 0)  # noqa: E731
    m0, m1 = s.idle_metrics, s.end_metrics
    fig = {
        "duration_s": round(s.soak_s, 1), "clients": a.clients, "kv_blocks": a.kv_blocks,
        "connections": c("connections"), "connections_all": s.total_http,
        "health_probes": s.health_n, "health_max_ms": round(s.health_max * 1e3, 1),
        "requests_checked": c("requests_ok"), "streams_completed": c("streams_completed"),
        "sessions": c("sessions_ok"), "session_turns": c("session_turns"),
        "session_turns_reusing_kv": c("session_turns_reusing_kv"),
        "choices_checked": c("choices_checked"), "tokens_checked": c("tokens_checked"),
        "tokens_lost": c("tokens_lost"),
        "vanished": {"streams": c("vanished_streams"), "waits": c("vanished_waits"),
                     "uploads": c("vanished_uploads"), "sessions": c("vanished_sessions"),
                     "stalled_uploads": c("stalled_uploads"),
                     "streams_done_before_vanishing": c("vanish_too_late")},
        "malformed": c("malformed"), "slow_uploads": c("slow_uploads"),
        "oversized_headers": c("oversized_headers"),
        "unknown_field_requests": c("unknown_field_requests"),
        "generation_tokens": int(m1.get("generation_tokens_total", 0) -
                                 m0.get("generation_tokens_total", 0)),
        "preemptions": int(m1.get("num_preemptions_total", 0) - m0.get("num_preemptions_total", 0)),
        "sessions_ended": {r: int(m1.get(f'sessions_ended_total{{model_name="stories",reason="{r}"}}', 0) -
                                  m0.get(f'sessions_ended_total{{model_name="stories",reason="{r}"}}', 0))
                           for r in ("client", "expired")},
        "peak": {k: int(v) for k, v in s.peak.items()},
        "rss_mb": {"after_warmup": round(s.idle_rss, 1), "after_run": round(s.end_rss, 1),
                   "growth": round(s.end_rss - s.idle_rss, 1),
                   "bound": round(s.idle_rss + RSS_GROWTH_MB, 1),
                   "every_30s": s.rss_trend},
        "fds": {"idle": s.idle_fds, "after_run": s.end_fds},
        "log": {"bytes": s.log_bytes, "lines": s.log_lines, "longest_line": s.log_longest},
        "shutdown_s": round(s.shutdown_s, 1), "drained_at_sigterm": s.drained,
        "wall_s": round(time.time() - t_start, 1),
        "failures": {k: v[0] for k, v in failures.items()},
    }
    print("figures: " + json.dumps(fig), flush=True)
    if a.figures:
        with open(a.figures, "w") as f:
            json.dump(fig, f, indent=1)
    if failures:
        report_failures()
    print("all soak checks passed")


if __name__ == "__main__":
    main()
