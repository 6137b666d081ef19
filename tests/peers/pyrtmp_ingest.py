#!/usr/bin/env python3
"""An RTMP ingest on PyPI's pyrtmp (pure-Python RTMP stack) for pushprobe's interop tests.

pyrtmp ships the protocol (handshake, chunking, AMF0) and leaves the publish
policy to a controller; this controller is the usual one built on it:
- a publish needs `token=TOKEN` in the stream name's query when --token is set;
  a wrong or missing one is refused with an error onStatus that says why
  (NetStream.Publish.Rejected "authentication failed: invalid token"), then the connection closes;
- a second publish on a stream that is live is refused with
  NetStream.Publish.BadName "Stream already publishing", then closed;
- with --record-dir, each accepted stream is written to DIR/NAME.flv so an
  independent player (ffprobe) can read back what arrived.
Prints `listening PORT` on stdout once it accepts connections (bind port 0).
"""

import argparse
import asyncio
import logging
import os
import sys
from urllib.parse import parse_qs

from bitstring import BitStream
from pyrtmp import StreamClosedException
from pyrtmp.amf.serializers import AMF0Serializer
from pyrtmp.flv import FLVMediaType, FLVWriter
from pyrtmp.messages import Chunk
from pyrtmp.rtmp import RTMPProtocol, SimpleRTMPController

logging.disable(logging.CRITICAL)
ARGS = None
LIVE = set()


def status(msg_stream_id, level, code, description):
    data = BitStream()
    AMF0Serializer.create_object(data, "onStatus")
    AMF0Serializer.create_object(data, 0)
    AMF0Serializer.create_object(data, None)
    AMF0Serializer.create_object(data, {"level": level, "code": code, "description": description})
    return Chunk(chunk_type=0, chunk_id=3, timestamp=0, msg_length=len(data.bytes),
                 msg_type_id=0x14, msg_stream_id=msg_stream_id, payload=data.bytes)


class Controller(SimpleRTMPController):
    async def on_ns_publish(self, session, message):
        name, _, query = str(message.publishing_name).partition("?")
        token = parse_qs(query).get("token", [""])[0]
        if ARGS.token and token != ARGS.token:
            await self.refuse(session, message, "NetStream.Publish.Rejected", "authentication failed: invalid token")
        if name in LIVE:
            await self.refuse(session, message, "NetStream.Publish.BadName", "Stream already publishing")
        LIVE.add(name)
        session.stream_name = name
        if ARGS.record_dir:
            session.flv = FLVWriter()
            session.flv_file = open(os.path.join(ARGS.record_dir, name + ".flv"), "wb")
            session.flv_file.write(session.flv.write_header())
        await super().on_ns_publish(session, message)

    async def refuse(self, session, message, code, description):
        session.write_chunk_to_stream(status(message.msg_stream_id, "error", code, description))
        await session.drain()
        raise StreamClosedException()

    def record(self, session, message, kind):
        f = getattr(session, "flv_file", None)
        if f is not None:
            f.write(session.flv.write(message.timestamp, message.payload, kind))
            f.flush()

    async def on_metadata(self, session, message):
        self.record(session, message, FLVMediaType.OBJECT)

    async def on_video_message(self, session, message):
        self.record(session, message, FLVMediaType.VIDEO)

    async def on_audio_message(self, session, message):
        self.record(session, message, FLVMediaType.AUDIO)

    async def cleanup(self, session):
        name = getattr(session, "stream_name", None)
        if name is not None:
            LIVE.discard(name)
        f = getattr(session, "flv_file", None)
        if f is not None:
            f.close()


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: RTMPProtocol(controller=Controller()),
                                      host="127.0.0.1", port=ARGS.port)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--token", default="")
    p.add_argument("--record-dir", default="")
    ARGS = p.parse_args()
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
