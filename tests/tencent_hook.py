#!/usr/bin/env python3
"""nginx-rtmp's on_publish hook applying Tencent's push authentication, written
apart from pushprobe's own signing: txSecret = MD5(KEY + STREAM + txTime) in
lowercase hex (hashlib), txTime hexadecimal Unix seconds not in the past.
Answers 200 to a good publish and 403 otherwise; each decision is one line in
OUT: "200 NAME" or "403 NAME: why".

Usage: tencent_hook.py PORT_FILE OUT   (key in TENCENT_HOOK_KEY)
"""
import hashlib
import http.server
import os
import sys
import time
import urllib.parse

KEY = os.environ["TENCENT_HOOK_KEY"]
PORT_FILE, OUT = sys.argv[1], sys.argv[2]


def decide(form):
    """(status, why) for nginx's publish form: name, and the publish query
    (nginx sends it in `args` and also as fields of the form)."""
    name = form.get("name", [""])[0]
    args = urllib.parse.parse_qs(form.get("args", [""])[0])
    tx_time = (form.get("txTime") or args.get("txTime") or [""])[0]
    tx_secret = (form.get("txSecret") or args.get("txSecret") or [""])[0]
    if not tx_time or not tx_secret:
        return 403, "no txTime or txSecret"
    try:
        expiry = int(tx_time, 16)
    except ValueError:
        return 403, "txTime is not hexadecimal"
    if expiry < time.time():
        return 403, "txTime expired"
    want = hashlib.md5((KEY + name + tx_time).encode()).hexdigest()
    if tx_secret != want:
        return 403, "txSecret mismatch"
    return 200, ""


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        status, why = decide(form)
        name = form.get("name", [""])[0]
        with open(OUT, "a") as f:
            f.write(f"{status} {name}: {why}\n" if why else f"{status} {name}\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
