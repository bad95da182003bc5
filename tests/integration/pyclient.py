"""pyclient.py: a minimal partisan IPC client in Python, from nothing but
proto/ipc.proto (compiled by protoc into build/py) and the framing in SPEC:
a 4-byte big-endian length, then one protobuf message. It proves that any
language can attach to partisand."""
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.environ.get("PARTISAN_BUILD", "build"), "py"))
import ipc_pb2  # noqa: E402  (generated)

IPC_VERSION = 1


class PyClient:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.next_id = 0
        self.events = []
        hello = self.request(hello=ipc_pb2.Hello(version=IPC_VERSION, client="pyclient"))
        self.node = hello.hello.node
        self.self_ref = hello.hello.self

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("daemon closed the connection")
            buf += chunk
        return buf

    def _read(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        msg = ipc_pb2.ServerMsg()
        msg.ParseFromString(self._recv_exact(n))
        return msg

    def request(self, **body):
        self.next_id += 1
        rq = ipc_pb2.Request(id=self.next_id, **body)
        data = rq.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(data)) + data)
        while True:
            msg = self._read()
            if msg.WhichOneof("body") == "event":
                self.events.append(msg.event)
                continue
            if msg.response.id != self.next_id:
                continue
            if msg.response.error:
                raise RuntimeError("%s: %s" % (ipc_pb2.Error.Name(msg.response.error), msg.response.error_msg))
            return msg.response

    def event(self, timeout=10):
        if self.events:
            return self.events.pop(0)
        self.sock.settimeout(timeout)
        try:
            msg = self._read()
        finally:
            self.sock.settimeout(None)
        return msg.event

    def register(self, name):
        self.request(register=ipc_pb2.Name(name=name))

    def monitor(self, ref):
        return self.request(monitor=ipc_pb2.Monitor(target=ref)).ref.ref

    def close(self):
        self.request(bye=ipc_pb2.Empty())
        self.sock.close()
