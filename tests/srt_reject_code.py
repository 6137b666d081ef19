#!/usr/bin/env python3
"""A libsrt caller (through ctypes, no pushprobe code): connects to an SRT
listener with a streamid and prints `accepted` or `rejected <code>`, the
code libsrt's srt_getrejectreason reports (1403 for an access-control
"forbidden", 0-99 for libsrt's own reasons). Usage: HOST PORT STREAMID"""

import ctypes
import ctypes.util
import socket
import struct
import sys

SRTO_STREAMID = 46
SRTO_CONNTIMEO = 15


def main() -> int:
    host, port, stream_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    name = ctypes.util.find_library("srt-gnutls") or ctypes.util.find_library("srt")
    if not name:
        print("libsrt not found", file=sys.stderr)
        return 3
    srt = ctypes.CDLL(name)
    srt.srt_startup()
    s = srt.srt_create_socket()
    sid = stream_id.encode()
    if srt.srt_setsockflag(s, SRTO_STREAMID, sid, len(sid)) != 0:
        print("cannot set the streamid", file=sys.stderr)
        return 3
    timeout_ms = ctypes.c_int(5000)
    srt.srt_setsockflag(s, SRTO_CONNTIMEO, ctypes.byref(timeout_ms), 4)
    addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", port)
    addr += socket.inet_aton(host) + b"\0" * 8
    if srt.srt_connect(s, addr, len(addr)) == -1:
        print(f"rejected {srt.srt_getrejectreason(s)}")
    else:
        print("accepted")
    srt.srt_close(s)
    srt.srt_cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
