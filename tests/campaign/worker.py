"""worker.py: the client programs of one campaign host, in one process (so
the nemesis can pause them all with one SIGSTOP). Each role is a thread with
its own IPC session to the host's partisand (proto/ipc.proto, as
tests/integration/pyclient.py speaks it), reconnecting when the daemon goes
away:

  inbox    registers "inbox", records every message it receives
  sender   sends `ack` messages with sequence numbers to the other hosts'
           inboxes, records each send's result and every ack_lost event
  echo     registers "echo" and answers every call with its payload
  caller   calls the other hosts' "echo" with a timeout, records the result
           and the latency
  victim   registers "victim" for a few seconds, closes (bye), again
  monitor  monitors the other hosts' current victims, records every DOWN
  nodemon  records every nodeup and nodedown the daemon reports
  sub      subscribes to the topic "campaign", records every broadcast
  bcast    broadcasts on "campaign" once a second

Every observation is one JSON line on stdout with "t" (CLOCK_MONOTONIC,
the clock the campaign uses too), "host" and "kind". stdin: "stop" ends the
traffic (sends, calls, broadcasts, victim turnover, new monitors; receiving
goes on), "quit" closes every session and exits."""
import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.environ.get("PARTISAN_BUILD", "build"), "py"))
import ipc_pb2  # noqa: E402  (generated)

IPC_VERSION = 1
TOPIC = "campaign"
CALL_TIMEOUT_MS = 1000
# A call that has not returned this long after its timeout is recorded as
# hung (and its session dropped): the checker flags it.
CALL_HANG_S = 20.0

out_lock = threading.Lock()
stopping = threading.Event()   # "stop": no new traffic
quitting = threading.Event()   # "quit": close and exit


def emit(kind, **rec):
    rec["t"] = round(time.monotonic(), 4)
    rec["host"] = ARGS.host
    rec["kind"] = kind
    line = json.dumps(rec, separators=(",", ":"))
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def runqueue_wait_ms(pid, tid):
    """How long thread tid of process pid has waited, runnable, for a CPU
    (the second field of /proc/PID/task/TID/schedstat), in ms; None if it is
    gone. On a shared machine a late answer can be starvation, not the
    daemon (one thread): the caller records its daemon's and its own."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
            return int(f.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


class Lost(Exception):
    """The session to the daemon is gone (it died, or closed us)."""


class Session:
    """One IPC session. request() waits for its response, queueing the events
    that come first; event() returns the next event or None on timeout."""

    def __init__(self, path, client):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise Lost(str(e))
        self.buf = b""
        self.next_id = 0
        self.events = []
        hello = self.request(hello=ipc_pb2.Hello(version=IPC_VERSION, client=client))
        self.node = hello.hello.node
        self.self_ref = hello.hello.self
        # the daemon's pid, from the socket's peer credentials
        cred = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        self.daemon_pid = struct.unpack("3i", cred)[0]

    def _read(self, timeout):
        """One ServerMsg, or None if none is complete within timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    msg = ipc_pb2.ServerMsg()
                    msg.ParseFromString(self.buf[4:4 + n])
                    self.buf = self.buf[4 + n:]
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError as e:
                raise Lost(str(e))
            if not chunk:
                raise Lost("daemon closed the session")
            self.buf += chunk

    def request(self, timeout=10.0, **body):
        """The response (RuntimeError(code name, detail) on an error); Lost if
        the session goes or nothing answers within timeout."""
        self.next_id += 1
        rq = ipc_pb2.Request(id=self.next_id, **body)
        data = rq.SerializeToString()
        try:
            self.sock.sendall(struct.pack(">I", len(data)) + data)
        except OSError as e:
            raise Lost(str(e))
        deadline = time.monotonic() + timeout
        while True:
            msg = self._read(deadline - time.monotonic())
            if msg is None:
                raise Lost("no response within %.0fs" % timeout)
            if msg.WhichOneof("body") == "event":
                self.events.append(msg.event)
                continue
            if msg.response.id != self.next_id:
                continue
            if msg.response.error:
                raise RuntimeError(ipc_pb2.Error.Name(msg.response.error), msg.response.error_msg)
            return msg.response

    def event(self, timeout):
        if self.events:
            return self.events.pop(0)
        msg = self._read(timeout)
        if msg is None:
            return None
        return msg.event if msg.WhichOneof("body") == "event" else None

    def bye(self):
        try:
            self.request(timeout=2.0, bye=ipc_pb2.Empty())
        except (Lost, RuntimeError):
            pass
        self.sock.close()

    def close(self):
        self.sock.close()


def connect(role, counter=[0]):
    """A new session for role, waiting (until quit) for the daemon to answer:
    it may be down or paused by the nemesis."""
    while not quitting.is_set():
        try:
            s = Session(ARGS.sock, "campaign-" + role)
        except Lost:
            quitting.wait(0.1)  # the retry interval while the daemon is away
            continue
        counter[0] += 1
        s.sid = "h%d.%s%d" % (ARGS.host, role, counter[0])
        emit("session_up", role=role, sid=s.sid, ref=s.self_ref)
        return s
    return None


def role_loop(role, body):
    """Run body(session) with a fresh session each time the old one is lost."""
    def run():
        while not quitting.is_set():
            s = connect(role)
            if s is None:
                return
            try:
                body(s)
                s.bye()
                return
            except Lost as e:
                emit("session_lost", role=role, sid=s.sid, err=str(e))
                s.close()
    t = threading.Thread(target=run, name=role, daemon=True)
    t.start()
    return t


def others():
    return [j for j in range(len(NODES)) if j != ARGS.host]


def inbox(s):
    s.request(register=ipc_pb2.Name(name="inbox"))
    emit("registered", role="inbox", sid=s.sid)
    while not quitting.is_set():
        ev = s.event(0.2)
        if ev is None or ev.WhichOneof("body") != "message":
            continue
        p = ev.message.payload.decode(errors="replace").split("|")
        if len(p) == 4 and p[0] == "S":
            emit("deliver", rid=s.sid, sender=p[1], to_host=int(p[2]), seq=int(p[3]))
        else:
            emit("deliver_bad", rid=s.sid, payload=ev.message.payload.decode(errors="replace"))


def sender(s):
    seq = {j: 0 for j in others()}
    rng = random.Random(ARGS.seed * 100 + ARGS.host)
    targets = others()
    k = 0
    while not quitting.is_set():
        for ev in s.events:
            if ev.WhichOneof("body") == "ack_lost":
                a = ev.ack_lost
                emit("ack_lost", sid=s.sid, to=a.to, reason=a.reason, count=a.count or 1)
        s.events = []
        if stopping.is_set():
            ev = s.event(0.2)
            if ev is not None:
                s.events.append(ev)
            continue
        j = targets[k % len(targets)]
        k += 1
        seq[j] += 1
        to = "partisan:name:%s:inbox" % NODES[j]
        payload = ("S|%s|%d|%d" % (s.sid, j, seq[j])).encode()
        # the sender's own id as partition key: its messages keep their order
        opts = ipc_pb2.SendOpts(ack=True, partition_key=s.sid.encode())
        try:
            s.request(send=ipc_pb2.Send(to=to, payload=payload, opts=opts))
            emit("send", sid=s.sid, to_host=j, seq=seq[j], ok=True)
        except RuntimeError as e:
            emit("send", sid=s.sid, to_host=j, seq=seq[j], ok=False, err=e.args[0])
        ev = s.event(rng.uniform(0.02, 0.08))  # the send rate; ack_lost events meanwhile
        if ev is not None:
            s.events.append(ev)


def echo(s):
    s.request(register=ipc_pb2.Name(name="echo"))
    emit("registered", role="echo", sid=s.sid)
    while not quitting.is_set():
        ev = s.event(0.2)
        if ev is not None and ev.WhichOneof("body") == "message" and ev.message.call_ref:
            try:
                s.request(reply=ipc_pb2.Reply(to=ev.message.__getattribute__("from"),
                                              call_ref=ev.message.call_ref, payload=ev.message.payload))
            except RuntimeError:
                pass  # the caller's node went away meanwhile


def caller(s):
    rng = random.Random(ARGS.seed * 100 + 50 + ARGS.host)
    n = 0
    while not quitting.is_set():
        if stopping.is_set():
            quitting.wait(0.2)
            continue
        j = rng.choice(others())
        n += 1
        cid = "%s.%d" % (s.sid, n)
        payload = ("C|" + cid).encode()
        emit("call_start", cid=cid, to_host=j, timeout_ms=CALL_TIMEOUT_MS)
        t0 = time.monotonic()
        me = (os.getpid(), threading.get_native_id())
        w0 = (runqueue_wait_ms(s.daemon_pid, s.daemon_pid), runqueue_wait_ms(*me))

        def waits():
            """The runqueue waits of the daemon and of this thread during the call."""
            w1 = (runqueue_wait_ms(s.daemon_pid, s.daemon_pid), runqueue_wait_ms(*me))
            return {"daemon_wait_ms": round(w1[0] - w0[0], 1) if None not in (w0[0], w1[0]) else None,
                    "caller_wait_ms": round(w1[1] - w0[1], 1) if None not in (w0[1], w1[1]) else None}
        try:
            r = s.request(timeout=CALL_TIMEOUT_MS / 1000 + CALL_HANG_S,
                          call=ipc_pb2.Call(to="partisan:name:%s:echo" % NODES[j], payload=payload,
                                            timeout_ms=CALL_TIMEOUT_MS))
            result = "ok" if r.call.payload == payload else "wrong_reply"
        except RuntimeError as e:
            result = e.args[0]
        except Lost as e:
            result = "hung" if "no response" in str(e) else "EIO"
            emit("call_end", cid=cid, to_host=j, result=result,
                 latency_ms=round((time.monotonic() - t0) * 1000, 1), **waits())
            raise
        emit("call_end", cid=cid, to_host=j, result=result,
             latency_ms=round((time.monotonic() - t0) * 1000, 1), **waits())
        quitting.wait(rng.uniform(0.05, 0.25))  # the call rate


def victim_loop():
    """Not role_loop: a victim session lives a few seconds and closes on
    purpose, then the next one opens."""
    rng = random.Random(ARGS.seed * 100 + 70 + ARGS.host)

    def run():
        while not quitting.is_set():
            s = connect("victim")
            if s is None:
                return
            try:
                s.request(register=ipc_pb2.Name(name="victim"))
                emit("victim_up", sid=s.sid, ref=s.self_ref)
                until = time.monotonic() + rng.uniform(2.0, 6.0)
                while not quitting.is_set() and (stopping.is_set() or time.monotonic() < until):
                    s.event(0.2)
                emit("victim_bye", sid=s.sid, ref=s.self_ref)
                s.bye()
            except (Lost, RuntimeError) as e:
                emit("victim_lost", sid=s.sid, ref=s.self_ref, err=str(e.args[0]))
                s.close()
    t = threading.Thread(target=run, name="victim", daemon=True)
    t.start()
    return t


def monitor(s):
    watching = {}  # target ref -> mref
    next_scan = 0.0
    while not quitting.is_set():
        ev = s.event(0.1)
        if ev is not None and ev.WhichOneof("body") == "down":
            d = ev.down
            emit("mon_down", sid=s.sid, mref=d.mref, target=d.target, reason=d.reason)
            watching.pop(d.target, None)
        if stopping.is_set() or time.monotonic() < next_scan:
            continue
        next_scan = time.monotonic() + 0.5  # the scan period for new victims
        for j in others():
            try:
                ref = s.request(whereis=ipc_pb2.Whereis(node=NODES[j], name="victim")).ref.ref
            except RuntimeError:
                continue  # none there now, or not reachable
            if ref in watching:
                continue
            try:
                mref = s.request(monitor=ipc_pb2.Monitor(target=ref)).ref.ref
            except RuntimeError as e:
                emit("mon_err", sid=s.sid, target=ref, to_host=j, err=e.args[0])
                continue
            watching[ref] = mref
            emit("mon_set", sid=s.sid, mref=mref, target=ref, to_host=j)


def nodemon(s):
    """Every nodeup and nodedown this host's daemon reports: the links that
    went down, whoever's fault (a DOWN noconnection fits one)."""
    s.request(monitor_nodes=ipc_pb2.MonitorNodes(flag=True, with_reason=True))
    emit("nodemon_up", sid=s.sid)
    while not quitting.is_set():
        ev = s.event(0.2)
        if ev is not None and ev.WhichOneof("body") == "node":
            emit("nodeup" if ev.node.up else "nodedown", sid=s.sid, node=ev.node.node, reason=ev.node.reason)


def sub(s):
    s.request(subscribe=ipc_pb2.Topic(topic=TOPIC))
    emit("sub_up", sid=s.sid)
    while not quitting.is_set():
        ev = s.event(0.2)
        if ev is not None and ev.WhichOneof("body") == "broadcast":
            emit("bcast_recv", sid=s.sid, bid=ev.broadcast.payload.decode(errors="replace"),
                 origin=ev.broadcast.__getattribute__("from"))


def bcast(s):
    n = 0
    while not quitting.is_set():
        quitting.wait(1.0)  # one broadcast a second
        if stopping.is_set() or quitting.is_set():
            continue
        n += 1
        bid = "B|%s|%d" % (s.sid, n)
        try:
            s.request(broadcast=ipc_pb2.Broadcast(topic=TOPIC, payload=bid.encode()))
            emit("bcast", sid=s.sid, bid=bid, ok=True)
        except RuntimeError as e:
            emit("bcast", sid=s.sid, bid=bid, ok=False, err=e.args[0])


def main():
    global ARGS, NODES
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", type=int, required=True)
    ap.add_argument("--sock", required=True)
    ap.add_argument("--nodes", required=True, help="every host's node name, comma-separated")
    ap.add_argument("--seed", type=int, default=1)
    ARGS = ap.parse_args()
    NODES = ARGS.nodes.split(",")
    threads = [role_loop(r, f) for r, f in (("inbox", inbox), ("echo", echo), ("sub", sub),
                                            ("monitor", monitor), ("nodemon", nodemon), ("sender", sender),
                                            ("caller", caller), ("bcast", bcast))]
    threads.append(victim_loop())
    emit("worker_up", pid=os.getpid())
    for line in sys.stdin:
        if line.strip() == "stop":
            stopping.set()
            emit("worker_stopped")
        elif line.strip() == "quit":
            break
    stopping.set()
    quitting.set()
    for t in threads:
        t.join(5)
    emit("worker_quit")


if __name__ == "__main__":
    main()
