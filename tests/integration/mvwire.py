"""mvwire — just enough of meshvisor's wire format to speak it from Python.

The wire is documented in proto/meshvisor.proto: inside TLS 1.3, frames of a
4-byte big-endian length followed by one protobuf mv.Envelope. This module
hand-encodes the few messages the tests and the fuzz seed generator need, so
the tests depend on nothing but the Python standard library. It is also a
check that the documented framing is enough for a client in another
language.
"""
import struct

FRAME_MAX = 4 * 1024 * 1024

# mv.MemberState / mv.SwimType / mv.RpcCode
ALIVE, SUSPECT, DEAD, LEFT = 0, 1, 2, 3
PING, ACK, PING_REQ, NACK, PUSH_PULL, PUSH_PULL_REPLY = range(6)
RPC_OK, RPC_ERR_INVALID, RPC_ERR_PERMISSION = 0, 1, 2


# ---- protobuf primitives -------------------------------------------------

def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(field, n, always=False):
    if n == 0 and not always:
        return b""
    return varint(field << 3) + varint(n)


def f_bytes(field, data, always=False):
    if isinstance(data, str):
        data = data.encode()
    if not data and not always:
        return b""
    return varint(field << 3 | 2) + varint(len(data)) + data


def parse(buf):
    """Generic protobuf parse: {field: [values]} (int for varints, bytes for
    length-delimited). Raises ValueError on malformed input."""
    out = {}
    i = 0

    def rd_varint():
        nonlocal i
        shift = 0
        v = 0
        while True:
            if i >= len(buf):
                raise ValueError("truncated varint")
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << shift
            if not b & 0x80:
                return v
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    while i < len(buf):
        key = rd_varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            val = rd_varint()
        elif wt == 2:
            n = rd_varint()
            if i + n > len(buf):
                raise ValueError("truncated field")
            val = bytes(buf[i:i + n])
            i += n
        elif wt == 1:
            val = buf[i:i + 8]
            i += 8
        elif wt == 5:
            val = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("bad wire type %d" % wt)
        out.setdefault(field, []).append(val)
    return out


def _one(d, f, default):
    v = d.get(f)
    return v[-1] if v else default


def _str(d, f):
    return _one(d, f, b"").decode("utf-8", "replace")


# ---- messages --------------------------------------------------------------

def member_update(name, addr, incarnation=0, state=ALIVE, origin="", proof=b"", left_proof=b""):
    # proof (field 6): the member's signature of (name, incarnation), issue 13;
    # left_proof (field 7): a LEFT's proof of leaving, certificate included
    return (f_bytes(1, name) + f_bytes(2, addr) + f_varint(3, incarnation) +
            f_varint(4, state) + f_bytes(5, origin) + f_bytes(6, proof) +
            f_bytes(7, left_proof))


def swim_message(type_, seq=0, from_addr="", to="", target="", target_addr="",
                 join=False, updates=(), refused=False, digest=(), want=(), buckets=0):
    # digest: packed fixed64 (field 10), want: packed varints (11): issue 12
    return (f_varint(1, type_) + f_varint(2, seq) + f_bytes(3, from_addr) +
            f_bytes(4, to) + f_bytes(5, target) + f_bytes(6, target_addr) +
            f_varint(7, 1 if join else 0) +
            b"".join(f_bytes(8, u, always=True) for u in updates) +
            f_varint(9, 1 if refused else 0) +
            f_bytes(10, b"".join(struct.pack("<Q", d) for d in digest)) +
            f_bytes(11, b"".join(varint(x) for x in want)) +
            f_varint(12, buckets))


def envelope(from_="", swim=None, request=None, response=None, version=1):
    body = b""
    if swim is not None:
        body = f_bytes(10, swim, always=True)
    elif request is not None:
        body = f_bytes(20, request, always=True)
    elif response is not None:
        body = f_bytes(21, response, always=True)
    return f_varint(1, version) + f_bytes(2, from_) + body


OPS = {"status": 10, "members": 11, "join": 12, "leave": 13,
       # node-to-node operations, refused from clients: the last step of a
       # move (issue 4) and the failover's replicas (issue 5)
       "vm_receive": 24, "replica_put": 29, "replica_get": 31}


def rpc_request(id_, op, seeds=(), forwarded=False, caller=None):
    """caller: (name, role) a forwarding agent names (fields 32, 33: issue 13)."""
    inner = b"".join(f_bytes(1, s) for s in seeds) if op == "join" else b""
    out = f_varint(1, id_) + f_bytes(OPS[op], inner, always=True)
    if forwarded:
        out += f_varint(30, 1)
    if caller:
        out += f_bytes(32, caller[0]) + f_bytes(33, caller[1])
    return out


def fo_entry(uuid, name, target, epoch, vcpus=1, memory_kib=512 * 1024):
    """A FoPlanEntry (proto/meshvisor.proto): VM `uuid` to `target` at
    new epoch `epoch`."""
    return (f_bytes(1, uuid) + f_bytes(2, name) + f_bytes(3, target) + f_varint(5, vcpus) +
            f_varint(6, memory_kib) + f_varint(7, epoch))


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def request_frame(id_, op, seeds=()):
    return frame(envelope(request=rpc_request(id_, op, seeds)))


def decode_response(payload):
    """Envelope{response} -> dict(id, code, error, kind, body) where body is
    the parsed StatusReply/MembersReply fields."""
    env = parse(payload)
    if 21 not in env:
        raise ValueError("envelope carries no response (fields %s)" % sorted(env))
    r = parse(env[21][-1])
    out = {"id": _one(r, 1, 0), "code": _one(r, 2, 0), "error": _str(r, 3),
           "more": bool(_one(r, 4, 0)), "keepalive": bool(_one(r, 5, 0)),
           "kind": None, "body": None}
    if 18 in r:
        e = parse(r[18][-1])
        out["kind"] = "event"
        out["body"] = {"seq": _one(e, 1, 0), "kind": _str(e, 3), "node": _str(e, 4),
                       "vm": _str(e, 5), "text": _str(e, 6)}
    elif 10 in r:
        s = parse(r[10][-1])
        out["kind"] = "status"
        out["body"] = {"name": _str(s, 1), "version": _str(s, 2),
                       "incarnation": _one(s, 7, 0),
                       "members_alive": _one(s, 9, 0), "role": _str(s, 17),
                       # the loop's lag (30 s window) and stalls since start
                       "loop_lag_p99_us": _one(s, 40, 0), "loop_lag_max_us": _one(s, 41, 0),
                       "loop_lag_max_ever_us": _one(s, 42, 0), "loop_stalls": _one(s, 43, 0)}
    elif 11 in r:
        mr = parse(r[11][-1])
        members = []
        for raw in mr.get(1, []):
            m = parse(raw)
            members.append({"name": _str(m, 1), "addr": _str(m, 2),
                            "state": _one(m, 3, 0), "incarnation": _one(m, 4, 0)})
        out["kind"] = "members"
        out["body"] = members
    return out


def read_response(sock_recv):
    """The next response that is not an event stream's keepalive
    (RpcResponse.keepalive), decoded; None on a clean EOF."""
    while True:
        p = read_frame(sock_recv)
        if p is None:
            return None
        r = decode_response(p)
        if not r["keepalive"]:
            return r


def read_frame(sock_recv):
    """Reads one frame with a recv(n) callable; returns the payload, or None
    on a clean EOF before any byte."""
    hdr = _read_exact(sock_recv, 4, eof_ok=True)
    if hdr is None:
        return None
    (n,) = struct.unpack(">I", hdr)
    if n == 0 or n > FRAME_MAX:
        raise ValueError("bad frame length %d" % n)
    return _read_exact(sock_recv, n)


def _read_exact(recv, n, eof_ok=False):
    buf = b""
    while len(buf) < n:
        chunk = recv(n - len(buf))
        if not chunk:
            if eof_ok and not buf:
                return None
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf
