#!/usr/bin/env python3
"""An independent Tencent push-callback receiver (issue 3), written apart from
pushprobe's own: checks sign = MD5(key + t), t not in the past, and the fields
of seeds 002/003; answers {"code":0}. Each verified event is one JSON line in
OUT; each refusal one line starting with "REFUSED".

Usage: independent_receiver.py PORT_FILE OUT   (key in PUSHPROBE_CALLBACK_KEY)
"""
import hashlib
import http.server
import json
import os
import sys
import time

KEY = os.environ["PUSHPROBE_CALLBACK_KEY"]
PORT_FILE, OUT = sys.argv[1], sys.argv[2]
FIELDS = {
    "appid": int, "app": str, "appname": str, "stream_id": str, "channel_id": str,
    "event_time": int, "event_type": int, "sequence": str, "node": str, "user_ip": str,
    "stream_param": str, "errcode": int, "errmsg": str, "set_id": int,
    "width": int, "height": int, "t": int, "sign": str,
}


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def refuse(self, code, why):
        with open(OUT, "a") as f:
            f.write(f"REFUSED {why}\n")
        self.send_response(code)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            ev = json.loads(body)
        except ValueError:
            return self.refuse(400, "not JSON")
        for name, kind in FIELDS.items():
            if not isinstance(ev.get(name), kind):
                return self.refuse(400, f"field {name} missing or not {kind.__name__}")
        if ev["event_type"] == 0 and not isinstance(ev.get("push_duration"), str):
            return self.refuse(400, "push_duration must be a string on event 0")
        want = hashlib.md5((KEY + str(ev["t"])).encode()).hexdigest()
        if ev["sign"] != want:
            return self.refuse(403, "bad sign")
        if ev["t"] < time.time():
            return self.refuse(403, "stale t")
        with open(OUT, "a") as f:
            f.write(json.dumps(ev) + "\n")
        out = b'{"code":0}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
