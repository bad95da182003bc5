"""serfrpc.py: just enough of HashiCorp serf's agent RPC (msgpack over TCP,
https://www.serf.io/docs/agent/rpc.html) for bench/run.py to drive serf as
cheaply as partisan is driven through libpartisan-client: join, stats,
members, user events, event streams, leave. Standard library only.
"""
import socket
import struct


class NeedMore(Exception):
    pass


def pack(o):
    """msgpack-encode dicts, lists, str, bytes (as raw), int, bool, None."""
    if o is None:
        return b"\xc0"
    if o is True:
        return b"\xc3"
    if o is False:
        return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128:
            return bytes([o])
        if 0 <= o < 1 << 32:
            return b"\xce" + struct.pack(">I", o)
        return b"\xd3" + struct.pack(">q", o)
    if isinstance(o, str):
        o = o.encode()
    if isinstance(o, (bytes, bytearray)):  # old-spec raw: what serf's codec reads as string or []byte
        n = len(o)
        if n < 32:
            return bytes([0xA0 | n]) + o
        if n < 1 << 16:
            return b"\xda" + struct.pack(">H", n) + o
        return b"\xdb" + struct.pack(">I", n) + o
    if isinstance(o, (list, tuple)):
        return b"\xdc" + struct.pack(">H", len(o)) + b"".join(pack(x) for x in o)
    if isinstance(o, dict):
        return b"\xde" + struct.pack(">H", len(o)) + b"".join(pack(k) + pack(v) for k, v in o.items())
    raise TypeError(type(o))


def unpack(b, i=0):
    """Decode one object at b[i:]; return (object, next index). Strings come
    back as str when they are UTF-8, else bytes. NeedMore when b is short."""
    if i >= len(b):
        raise NeedMore()
    t = b[i]
    i += 1

    def take(n):
        if i + n > len(b):
            raise NeedMore()
        return b[i:i + n]

    if t < 0x80:
        return t, i
    if t >= 0xE0:
        return t - 0x100, i
    if 0x80 <= t <= 0x8F:
        return unpack_map(b, i, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return unpack_array(b, i, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return text(take(n)), i + n
    if t == 0xC0:
        return None, i
    if t in (0xC2, 0xC3):
        return t == 0xC3, i
    fixed = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i",
             0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if t in fixed:
        n = struct.calcsize(fixed[t])
        return struct.unpack(fixed[t], take(n))[0], i + n
    sized = {0xD9: 1, 0xDA: 2, 0xDB: 4, 0xC4: 1, 0xC5: 2, 0xC6: 4}
    if t in sized:
        w = sized[t]
        n = int.from_bytes(take(w), "big")
        i += w
        data = take(n)
        return (text(data) if t >= 0xD9 else bytes(data)), i + n
    if t in (0xDC, 0xDD):
        w = 2 if t == 0xDC else 4
        n = int.from_bytes(take(w), "big")
        return unpack_array(b, i + w, n)
    if t in (0xDE, 0xDF):
        w = 2 if t == 0xDE else 4
        n = int.from_bytes(take(w), "big")
        return unpack_map(b, i + w, n)
    ext = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if t in ext:
        take(ext[t] + 1)
        return None, i + ext[t] + 1
    if t in (0xC7, 0xC8, 0xC9):
        w = {0xC7: 1, 0xC8: 2, 0xC9: 4}[t]
        n = int.from_bytes(take(w), "big")
        i += w
        take(n + 1)
        return None, i + n + 1
    raise ValueError("msgpack: bad type byte 0x%02x" % t)


def text(data):
    try:
        return bytes(data).decode()
    except UnicodeDecodeError:
        return bytes(data)


def unpack_array(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


def unpack_map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i)
        v, i = unpack(b, i)
        out[k] = v
    return out, i


class Serf:
    """One RPC connection to a serf agent."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.seq = 0
        self.request("handshake", {"Version": 1}, body=False)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, command, args=None):
        self.seq += 1
        msg = pack({"Command": command, "Seq": self.seq})
        if args is not None:
            msg += pack(args)
        self.sock.sendall(msg)
        return self.seq

    def read_obj(self):
        while True:
            try:
                obj, n = unpack(self.buf)
                del self.buf[:n]
                return obj
            except NeedMore:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("serf agent closed the RPC connection")
                self.buf += data

    def pending(self):
        """True when a whole object is already buffered."""
        try:
            unpack(self.buf)
            return True
        except NeedMore:
            return False

    def fill(self):
        """Read what the socket holds (call when select says readable)."""
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("serf agent closed the RPC connection")
        self.buf += data

    def response(self, body=True):
        """The response to the oldest request. Commands with a body (join,
        stats, members) send it even with an error: read it before raising,
        or the next response would be read out of step."""
        hdr = self.read_obj()
        data = self.read_obj() if body else None
        if hdr.get("Error"):
            raise RuntimeError("serf rpc: %s" % hdr["Error"])
        return data

    def request(self, command, args=None, body=True):
        self.send(command, args)
        return self.response(body)

    def stats(self):
        return self.request("stats")

    def members(self):
        return self.request("members")["Members"]

    def join(self, addrs):
        return self.request("join", {"Existing": list(addrs), "Replay": False})

    def event(self, name, payload):
        return self.request("event", {"Name": name, "Payload": payload, "Coalesce": False}, body=False)

    def stream(self, kind):
        """Start an event stream; events then come as (header, body) pairs."""
        return self.request("stream", {"Type": kind}, body=False)
