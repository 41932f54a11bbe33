#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/ (checked in; rerun after a
wire change): a few valid frames, envelopes, SWIM message sequences and
config files, so fuzzing starts from inputs that reach deep code paths.

    python3 tests/fuzz/gen_corpus.py
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import mvwire as w  # noqa: E402

OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def envelopes():
    up_a = w.member_update("n1", "127.0.0.1:7001", 3, w.ALIVE)
    up_s = w.member_update("n2", "127.0.0.1:7002", 1, w.SUSPECT, "n1")
    up_d = w.member_update("n3", "127.0.0.1:7003", 0, w.DEAD, "n1")
    up_l = w.member_update("n4", "127.0.0.1:7004", 2, w.LEFT, "n4")
    up_self = w.member_update("self", "127.0.0.1:7946", 0, w.SUSPECT, "n1")
    return {
        "ping": w.envelope("n1", swim=w.swim_message(w.PING, 7, "127.0.0.1:7001", "self",
                                                     updates=[up_a])),
        "ack": w.envelope("n1", swim=w.swim_message(w.ACK, 1, "127.0.0.1:7001", "self")),
        "ping_req": w.envelope("n1", swim=w.swim_message(w.PING_REQ, 9, "127.0.0.1:7001", "self",
                                                         "n2", "127.0.0.1:7002")),
        "nack": w.envelope("n1", swim=w.swim_message(w.NACK, 9, "127.0.0.1:7001", "self", "n2")),
        "join": w.envelope("n1", swim=w.swim_message(w.PUSH_PULL, 0, "127.0.0.1:7001", "",
                                                     join=True, updates=[up_a, up_s])),
        "push_pull_reply": w.envelope("n1", swim=w.swim_message(
            w.PUSH_PULL_REPLY, 0, "127.0.0.1:7001", "self", updates=[up_a, up_s, up_d, up_l])),
        "suspect_self": w.envelope("n2", swim=w.swim_message(w.PING, 3, "127.0.0.1:7002", "self",
                                                             updates=[up_self])),
        "req_status": w.envelope(request=w.rpc_request(1, "status")),
        "req_members": w.envelope(request=w.rpc_request(2, "members")),
        "req_join": w.envelope(request=w.rpc_request(3, "join", ["127.0.0.1:7001"])),
        "req_leave": w.envelope(request=w.rpc_request(4, "leave")),
        "resp_err": w.envelope(response=w.f_varint(1, 4) + w.f_varint(2, 2) +
                               w.f_bytes(3, "permission denied")),
    }


def main():
    envs = envelopes()
    for name, payload in envs.items():
        put("fuzz_envelope", name, payload)

    # frame stream: [split seed][cap selector] + frames
    allf = b"".join(w.frame(p) for p in envs.values())
    put("fuzz_frame", "many", b"\x01\x09" + allf)
    put("fuzz_frame", "one", b"\x07\x09" + w.frame(envs["ping"]))
    put("fuzz_frame", "over_cap", b"\x02\x05" + w.frame(envs["push_pull_reply"]))
    put("fuzz_frame", "truncated", b"\x03\x09" + w.frame(envs["ack"])[:-3])
    put("fuzz_frame", "zero_len", b"\x04\x09" + w.frame(envs["ack"]) + b"\x00\x00\x00\x00")
    put("fuzz_frame", "huge_len", b"\x05\x09" + struct.pack(">I", w.FRAME_MAX + 1) + b"x")

    # swim sequences: [flags] + frames to a core named "self"
    fr = {k: w.frame(v) for k, v in envs.items()}
    put("fuzz_swim", "join_then_ping", b"\x01" + fr["push_pull_reply"] + fr["ping"] + fr["ack"])
    put("fuzz_swim", "suspect_self", b"\x00" + fr["join"] + fr["suspect_self"])
    put("fuzz_swim", "ping_req", b"\x00" + fr["join"] + fr["ping_req"] + fr["nack"])
    put("fuzz_swim", "leave", b"\x02" + fr["push_pull_reply"] + fr["ping"])

    cfg = {
        "name": "n1", "bind": "127.0.0.1", "advertise": "127.0.0.1", "peer_port": 7946,
        "rpc_port": 7947, "join": ["127.0.0.1:7948"],
        "tls": {"ca": "/tmp/ca.pem", "cert": "/tmp/n1.pem", "key": "/tmp/n1.key"},
        "data_dir": "/tmp/n1", "log_level": "debug", "libvirt_uri": "test:///default",
        "max_peer_connections": 64, "peer_idle_timeout_ms": 60000, "leave_timeout_ms": 3000,
        "swim": {"probe_interval_ms": 500, "probe_timeout_ms": 200, "indirect_probes": 3,
                 "retransmit_mult": 4, "suspicion_min_mult": 4, "suspicion_max_mult": 6,
                 "awareness_max": 8, "push_pull_interval_ms": 30000,
                 "gossip_interval_ms": 200, "gossip_fanout": 3, "join_retry_ms": 1000,
                 "reap_ms": 86400000},
    }
    put("fuzz_config", "full.json", json.dumps(cfg, indent=1).encode())
    put("fuzz_config", "min.json", b'{"name": "a"}')
    put("fuzz_config", "bad_key.json", b'{"nmae": "a", "swim": {"probe_interval_ms": "fast"}}')
    put("fuzz_config", "empty.json", b"{}")


if __name__ == "__main__":
    main()
