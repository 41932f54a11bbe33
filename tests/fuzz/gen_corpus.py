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
        "nack_refused": w.envelope("n1", swim=w.swim_message(w.NACK, 9, "127.0.0.1:7001", "self",
                                                             "n2", refused=True)),
        "join": w.envelope("n1", swim=w.swim_message(w.PUSH_PULL, 0, "127.0.0.1:7001", "",
                                                     join=True, updates=[up_a, up_s])),
        "push_pull_reply": w.envelope("n1", swim=w.swim_message(
            w.PUSH_PULL_REPLY, 0, "127.0.0.1:7001", "self", updates=[up_a, up_s, up_d, up_l])),
        # digest push-pull (issue 12): a 4-bucket digest, an answer that
        # wants two buckets back, and a digest of 3 buckets (rejected)
        "pp_digest": w.envelope("n1", swim=w.swim_message(
            w.PUSH_PULL, 0, "127.0.0.1:7001", "self",
            digest=[0, 0x0123456789abcdef, 0xfedcba9876543210, 7])),
        "pp_want": w.envelope("n1", swim=w.swim_message(
            w.PUSH_PULL_REPLY, 0, "127.0.0.1:7001", "self", updates=[up_a, up_d],
            want=[0, 2], buckets=4)),
        "pp_digest_bad": w.envelope("n1", swim=w.swim_message(
            w.PUSH_PULL, 0, "127.0.0.1:7001", "self", digest=[1, 2, 3])),
        "suspect_self": w.envelope("n2", swim=w.swim_message(w.PING, 3, "127.0.0.1:7002", "self",
                                                             updates=[up_self])),
        # signed ALIVE claims (issue 13; fuzz_swim flag bit 3, whose fake
        # proof of (name, inc) is "name@inc"): n1's own raise to 4, a
        # forged raise to 9 (another incarnation's proof), one of self
        # with no proof, and a proof over 512 bytes (refused by the codec)
        "alive_signed": w.envelope("n2", swim=w.swim_message(
            w.PING, 4, "127.0.0.1:7002", "self", updates=[
                w.member_update("n1", "127.0.0.1:7001", 4, w.ALIVE, proof=b"n1@4"),
                w.member_update("n1", "127.0.0.1:7001", 9, w.ALIVE, proof=b"n1@8"),
                w.member_update("self", "127.0.0.1:7946", 5, w.ALIVE)])),
        "alive_proof_too_long": w.envelope("n2", swim=w.swim_message(
            w.ACK, 0, "127.0.0.1:7002", "self", updates=[
                w.member_update("n1", "127.0.0.1:7001", 5, w.ALIVE, proof=b"p" * 513)])),
        # signed LEFTs (issue 13; the fake's proof of leaving is
        # "name@(inc | 2^63)", in left_proof): n1's LEFT at 5 relayed by
        # n2 with its proof, n3's with another incarnation's proof and
        # without any (each a report to check), and a left_proof over 4096
        # bytes (refused by the codec)
        "left_signed": w.envelope("n2", swim=w.swim_message(
            w.PING, 5, "127.0.0.1:7002", "self", updates=[
                w.member_update("n1", "127.0.0.1:7001", 4, w.ALIVE),
                w.member_update("n3", "127.0.0.1:7003", 4, w.ALIVE),
                w.member_update("n1", "127.0.0.1:7001", 5, w.LEFT, "n1",
                                left_proof=b"n1@%d" % (5 | 1 << 63)),
                w.member_update("n3", "127.0.0.1:7003", 5, w.LEFT, "n3",
                                left_proof=b"n3@%d" % (4 | 1 << 63)),
                w.member_update("n3", "127.0.0.1:7003", 4, w.LEFT, "n3")])),
        "left_proof_too_long": w.envelope("n2", swim=w.swim_message(
            w.ACK, 0, "127.0.0.1:7002", "self", updates=[
                w.member_update("n1", "127.0.0.1:7001", 5, w.LEFT, "n1",
                                left_proof=b"p" * 4097)])),
        "req_status": w.envelope(request=w.rpc_request(1, "status")),
        "req_members": w.envelope(request=w.rpc_request(2, "members")),
        "req_join": w.envelope(request=w.rpc_request(3, "join", ["127.0.0.1:7001"])),
        "req_leave": w.envelope(request=w.rpc_request(4, "leave")),
        # a request of another wire version: answered with an error (issue 13)
        "req_version2": w.envelope(request=w.rpc_request(6, "status"), version=2),
        # a forwarded request naming its original caller (issue 13)
        "req_forwarded_caller": w.envelope("n1", request=w.rpc_request(
            5, "leave", forwarded=True, caller=("alice", "viewer"))),
        "resp_err": w.envelope(response=w.f_varint(1, 4) + w.f_varint(2, 2) +
                               w.f_bytes(3, "permission denied")),
    }


# ---- failover (FailoverMessage = Envelope field 13) --------------------------

FO = {"heartbeat": 0, "hb_ack": 1, "hb_nack": 2, "fence_order": 3, "prepare": 4,
      "promise": 5, "reject": 6, "accept": 7, "accepted": 8, "chosen": 9, "fenced": 10,
      "restarted": 11, "read": 12, "read_reply": 13}


def fo_entry(uuid, name, target, priority, vcpus, mem, epoch, group="", target_inc=0):
    return (w.f_bytes(1, uuid) + w.f_bytes(2, name) + w.f_bytes(3, target) +
            w.f_varint(4, priority) + w.f_varint(5, vcpus) + w.f_varint(6, mem) +
            w.f_varint(7, epoch) + w.f_bytes(8, group) + w.f_varint(9, target_inc))


def fo_adopt(entry, incarnation, round_, ballot, proposer):
    """FoAdopt: a placement held from an older recovery of the same host."""
    return (w.f_bytes(1, entry, always=True) + w.f_varint(2, incarnation) +
            w.f_varint(3, round_) + w.f_varint(4, ballot) + w.f_bytes(5, proposer))


FO_PLAN = [
    fo_entry("6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "n2", 1000, 8, 16 << 20, 9, "db"),
    fo_entry("7795eb01-f6a4-8304-79aa-97f2502e1940", "web1", "n3", -5, 2, 1 << 20, 3),
    fo_entry("8895eb01-f6a4-8304-79aa-97f2502e1941", "big", "", 0, 64, 1 << 30, 2, "db"),
]


def fo_message(type_, to="", incarnation=0, stamp=0, fenced_through=0, removed=(), dead="",
               dead_inc=0, round_=0, ballot=0, proposer="", acc_ballot=0, acc_proposer="",
               plan=None, vm_uuid="", ok=False, took_ms=0, age_ms=0, text="", superseded=(),
               adopt=()):
    out = (w.f_varint(1, FO[type_]) + w.f_bytes(2, to) + w.f_varint(3, incarnation) +
           w.f_varint(4, stamp) + w.f_varint(5, fenced_through))
    for name, inc in removed:
        out += w.f_bytes(6, w.f_bytes(1, name) + w.f_varint(2, inc), always=True)
    out += (w.f_bytes(7, dead) + w.f_varint(8, dead_inc) + w.f_varint(9, round_) +
            w.f_varint(10, ballot) + w.f_bytes(11, proposer) + w.f_varint(12, acc_ballot) +
            w.f_bytes(13, acc_proposer) + w.f_varint(14, 1 if plan is not None else 0))
    for e in plan or ():
        out += w.f_bytes(15, e, always=True)
    out += (w.f_bytes(16, vm_uuid) + w.f_varint(17, 1 if ok else 0) + w.f_varint(18, took_ms) +
            w.f_varint(19, age_ms) + w.f_bytes(20, text))
    for e in superseded:
        out += w.f_bytes(21, e, always=True)
    for a in adopt:
        out += w.f_bytes(25, a, always=True)
    return out


def fo_envelope(from_, msg):
    return w.f_varint(1, 1) + w.f_bytes(2, from_) + w.f_bytes(13, msg, always=True)


def inst_of_failover():
    return dict(dead="n4", dead_inc=5, round_=0)


def failover_messages():
    inst = inst_of_failover()
    return {
        "heartbeat": fo_message("heartbeat", "self", 3, 1700000000123, 2,
                                removed=[("n9", 4), ("n8", 1)]),
        "hb_ack": fo_message("hb_ack", "self", stamp=1700000000123),
        "hb_nack": fo_message("hb_nack", "self", stamp=99, text="you are dead to me"),
        # withholding for a non-empty value of a failover of the receiver:
        # evidence a fence order needs from a majority
        "hb_nack_withholds": fo_message("hb_nack", "self", stamp=99, dead="self", dead_inc=3,
                                        ok=True, text="failover of incarnation 3 pending"),
        "fence_order": fo_message("fence_order", "self", plan=FO_PLAN[:2], **inst),
        "prepare": fo_message("prepare", "self", ballot=7, proposer="n1", age_ms=4000, **inst),
        "promise": fo_message("promise", "self", ballot=7, proposer="n1", acc_ballot=6,
                              acc_proposer="n3", plan=FO_PLAN, **inst),
        "reject": fo_message("reject", "self", ballot=9, proposer="n2",
                             text="n4 is alive to me", **inst),
        "accept": fo_message("accept", "self", ballot=7, proposer="n1", plan=FO_PLAN,
                             age_ms=4100, **inst),
        "accepted": fo_message("accepted", "self", ballot=7, proposer="n1", **inst),
        "chosen": fo_message("chosen", "self", ballot=7, proposer="n1", plan=FO_PLAN, **inst),
        "fenced": fo_message("fenced", "self", text="libvirt: destroyed 2 domains", **inst),
        "restarted": fo_message("restarted", "self", vm_uuid="6695eb01-f6a4-8304-79aa-97f2502e193f",
                                ok=True, took_ms=5321, dead="n4", dead_inc=5, round_=1),
        "restarted_failed": fo_message("restarted", "self",
                                       vm_uuid="7795eb01-f6a4-8304-79aa-97f2502e1940",
                                       text="start failed: no such network", **inst),
        "empty_plan": fo_message("chosen", "self", ballot=1, proposer="n1", plan=[], **inst),
        # issue 9: the recovery of n4's incarnation 6 (a newer one than 5).
        # PROMISE with what the acceptor holds from older recoveries of n4
        # (adopt, field 25) and other incarnations' chosen plans (superseded)
        "promise_adopt": fo_message(
            "promise", "self", ballot=3, proposer="n1", dead="n4", dead_inc=6,
            superseded=[FO_PLAN[1]],
            adopt=[fo_adopt(fo_entry("6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "n2", 1000,
                                     8, 16 << 20, 9, "db", target_inc=3), 5, 0, 7, "n3"),
                   fo_adopt(fo_entry("8895eb01-f6a4-8304-79aa-97f2502e1941", "big", "self", 0,
                                     64, 1 << 30, 4, "db", target_inc=1), 5, 1, 2, "n2"),
                   fo_adopt(b"", 4, 0, 1, "")]),
        # an older recovery's first round refused: superseded by incarnation 6
        "reject_superseded": fo_message(
            "reject", "self", incarnation=6, ballot=7, proposer="n1",
            text="superseded by the recovery of n4 incarnation 6", **inst),
        # a value refused for one VM another instance places
        "reject_clash": fo_message(
            "reject", "self", ballot=7, proposer="n1",
            vm_uuid="7795eb01-f6a4-8304-79aa-97f2502e1940",
            text="VM web1 is also in the plan for n3 incarnation 1", **inst),
        # a plan for the recovery of our own older incarnation (self at 2)
        "chosen_own_recovery": fo_message(
            "chosen", "self", ballot=2, proposer="n2", dead="self", dead_inc=1,
            plan=[fo_entry("6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "self", 1000, 8,
                           16 << 20, 9, "db", target_inc=2)]),
    }


def datagrams():
    """fuzz_dgram seeds: raw datagrams for b to open (byte 0 even), with the
    fixed key id a sends with (material bytes i*7+1, a the TLS client, as in
    fuzz_dgram.c), and scripts of seal/deliver steps (byte 0 odd)."""
    material = bytes((i * 7 + 1) & 0xFF for i in range(88))
    key_id = material[32:40]  # client->server: key 0..31, id 32..39, salt 40..43

    def raw(ver, kid, seq, body):
        return b"\x00" + bytes([ver]) + kid + struct.pack(">Q", seq) + body

    put("fuzz_dgram", "raw_forged_tag", raw(1, key_id, 1, b"x" * 20 + b"\x00" * 16))
    put("fuzz_dgram", "raw_seq0", raw(1, key_id, 0, b"\x00" * 16))
    put("fuzz_dgram", "raw_unknown_key", raw(1, b"\xff" * 8, 5, b"\x00" * 40))
    put("fuzz_dgram", "raw_version2", raw(2, key_id, 5, b"\x00" * 40))
    put("fuzz_dgram", "raw_short", b"\x00\x01" + key_id)
    put("fuzz_dgram", "raw_max", raw(1, key_id, 7, b"\x00" * (1200 + 16)))
    put("fuzz_dgram", "script_deliver", b"\x01" + bytes([10, 0, 3, 1]) * 4)
    put("fuzz_dgram", "script_replay_flip", b"\x01" + bytes([20, 1, 5, 2, 20, 2, 9, 17]))
    put("fuzz_dgram", "script_reorder", b"\x01" + bytes([8, 3, 1, 1, 8, 0, 2, 1, 8, 3, 0, 0,
                                                          8, 3, 4, 0, 8, 1, 5, 0]))
    put("fuzz_dgram", "script_big_late", b"\x01" + bytes([240, 0, 7, 250, 240, 0, 7, 250,
                                                           240, 0, 7, 250]))


# ---- node state (StateMessage = Envelope field 11) ----------------------------

def state_message(type_, hash_=0, versions=(), records=(), tree=0, level=0, nodes=(),
                  hashes=()):
    body = w.f_varint(1, type_) + w.f_varint(2, hash_)
    for name, inc, ver in versions:
        body += w.f_bytes(3, w.f_bytes(1, name) + w.f_varint(2, inc) + w.f_varint(3, ver))
    for name, inc, ver, data, *proof in records:
        body += w.f_bytes(4, w.f_bytes(1, name) + w.f_varint(2, inc) + w.f_varint(3, ver) +
                          w.f_bytes(4, data) + (w.f_bytes(5, proof[0]) if proof else b""))
    body += w.f_varint(7, tree) + w.f_varint(8, level)
    if nodes:
        body += w.f_bytes(9, b"".join(w.varint(n) for n in nodes))
    if hashes:
        body += w.f_bytes(10, b"".join(struct.pack("<Q", h) for h in hashes))
    return w.f_varint(1, 1) + w.f_bytes(2, "n1") + w.f_bytes(11, body, always=True)


def state_messages():
    """The bucket-tree exchange (SYNC with `tree`, TREE at each level, a
    DIGEST of listed buckets) and its refusals, as frames to a core "self"."""
    h16 = [0x9E3779B97F4A7C15 * (k + 1) & (2**64 - 1) for k in range(16)]
    return {
        "sync_tree": state_message(0, hash_=12345, tree=1),
        "sync_old": state_message(0, hash_=12345),
        "tree0": state_message(4, level=0, nodes=[0], hashes=h16),
        "tree1": state_message(4, level=1, nodes=[3, 9], hashes=h16 + h16),
        "tree2": state_message(4, level=2, nodes=[200], hashes=h16),
        "digest_buckets": state_message(1, hash_=7, versions=[("n2", 1, 4), ("n3", 2, 1)],
                                        level=3, nodes=[5, 77, 4095]),
        "digest_depth2": state_message(1, hash_=7, versions=[("n2", 1, 4)], level=2,
                                       nodes=[0, 255]),
        "delta": state_message(2, records=[("n2", 1, 5, b"rec"), ("n9", 1, 1, b"x")],
                               versions=[("n3", 0, 0)]),
        "push": state_message(3, records=[("n4", 1, 1, b"p")]),
        # signed records (issue 13; fuzz_state's bit 3 checks proofs: an
        # even first byte passes), a forged one, numbers past the ceiling
        "push_signed": state_message(3, records=[("n4", 1, 2, b"p2", b"\x02proof")]),
        "delta_signed": state_message(2, records=[("n2", 1, 6, b"rec", b"\x00" * 72),
                                                  ("n5", 2, 1, b"y", b"\x01forged")]),
        "push_forged": state_message(3, records=[("n1", 1, 1 << 40, b"fake", b"\x03x")]),
        "push_too_high": state_message(3, records=[("n1", 1, 1 << 63, b"fake", b"\x02")]),
        # refused: level past the leaves, hashes not 16 per node, buckets
        # out of order, a bucket outside the tree
        "bad_level": state_message(4, level=3, nodes=[0], hashes=h16),
        "bad_hashes": state_message(4, level=0, nodes=[0], hashes=h16[:15]),
        "bad_order": state_message(1, level=3, nodes=[9, 3]),
        "bad_bucket": state_message(1, level=3, nodes=[4096]),
        "bad_digest_level": state_message(1, nodes=[1]),
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
    put("fuzz_swim", "alive_signed", b"\x08" + fr["push_pull_reply"] + fr["alive_signed"] +
        fr["alive_proof_too_long"] + fr["ping"])
    put("fuzz_swim", "left_signed", b"\x0a" + fr["push_pull_reply"] + fr["left_signed"] +
        fr["left_proof_too_long"] + fr["ping"])
    put("fuzz_swim", "digest", b"\x01" + fr["push_pull_reply"] + fr["pp_digest"] +
        fr["pp_want"] + fr["pp_digest_bad"])
    # bit 2: the transport reports the sender of every message refused
    put("fuzz_swim", "refused", b"\x04" + fr["push_pull_reply"] + fr["ping_req"] +
        fr["nack_refused"] + fr["ping"])

    # node state: [flags] + frames to a core named "self" (bit 0 publishes,
    # bit 1 peers up, so that the descent answers)
    sts = {k: w.frame(v) for k, v in state_messages().items()}
    for name, payload in sts.items():
        put("fuzz_state", name, b"\x03" + payload)
    put("fuzz_state", "descent", b"\x03" + b"".join(
        sts[k] for k in ("delta", "sync_tree", "tree0", "tree1", "tree2", "digest_buckets",
                         "digest_depth2", "push", "sync_old")))
    put("fuzz_state", "signed", b"\x0b" + b"".join(
        sts[k] for k in ("push_signed", "delta_signed", "push_forged", "push_too_high",
                         "sync_tree", "tree0")))
    put("fuzz_envelope", "state-tree", state_messages()["tree1"])

    # failover: one message per seed, plus a whole consensus run
    fos = {k: fo_envelope("n1", v) for k, v in failover_messages().items()}
    for name, payload in fos.items():
        put("fuzz_failover", name, w.frame(payload))
    put("fuzz_failover", "round", b"".join(
        w.frame(fos[k]) for k in ("heartbeat", "prepare", "promise", "accept", "accepted",
                                  "chosen", "fenced", "restarted")))
    # a newer recovery supersedes an older one's first round, and adopts
    put("fuzz_failover", "recovery", b"".join(
        w.frame(fos[k]) for k in ("heartbeat", "prepare", "reject_superseded",
                                  "promise_adopt", "reject_clash", "accept", "accepted",
                                  "chosen", "chosen_own_recovery")))
    # a CHOSEN about the dead n3 from n2 is a claim: the core (n1) asks
    # every voter (READ) and learns it once a majority (3 of 5) answered
    # the same accepted ballot and value (READ_REPLY); n5 answers another
    # ballot, which is no proof. Then a READ the core answers from its
    # acceptor state.
    n3 = dict(dead="n3", dead_inc=1, round_=0)
    n3_plan = [fo_entry("6695eb01-f6a4-8304-79aa-97f2502e193f", "db1", "n1", 900, 2, 1 << 20, 4,
                        "db")]
    claim = fo_message("chosen", "n1", ballot=3, proposer="n2", plan=n3_plan, **n3)
    answer = fo_message("read_reply", "n1", ballot=3, proposer="n2", acc_ballot=3,
                        acc_proposer="n2", plan=n3_plan, **n3)
    put("fuzz_failover", "chosen_read_proof", b"".join(
        w.frame(fo_envelope(frm, msg)) for frm, msg in (
            ("n2", claim),
            ("n5", fo_message("read_reply", "n1", ballot=3, proposer="n2", acc_ballot=2,
                              acc_proposer="n5", plan=n3_plan, **n3)),
            ("n2", answer), ("n4", fo_message("read_reply", "n1", **n3)), ("n4", answer),
            ("n5", answer),
            ("n4", fo_message("read", "n1", ballot=3, proposer="n2", **n3)))))
    put("fuzz_failover", "read", w.frame(fo_envelope(
        "n2", fo_message("read", "n1", ballot=7, proposer="n1", **inst_of_failover()))))
    put("fuzz_envelope", "failover-chosen", fos["chosen"])
    put("fuzz_envelope", "failover-heartbeat", fos["heartbeat"])
    for name, op, inner in (("req_events", 25, w.f_varint(1, 20)), ("req_failovers", 26, b""),
                            ("req_ha", 27, b""),
                            ("req_force_leave", 28, w.f_bytes(1, "n4") + w.f_bytes(2, "n4"))):
        put("fuzz_envelope", name, w.envelope(request=w.f_varint(1, 9) +
                                                w.f_bytes(op, inner, always=True)))
    event = (w.f_varint(1, 3) + w.f_varint(2, 1700000000123) + w.f_bytes(3, "vm-restarted") +
             w.f_bytes(4, "n2") + w.f_bytes(5, "db1") + w.f_bytes(6, "restarted in 5.3 s"))
    put("fuzz_envelope", "resp_event", w.envelope(response=w.f_varint(1, 9) +
                                                  w.f_bytes(18, event, always=True) +
                                                  w.f_varint(4, 1)))
    fvm = (w.f_bytes(1, "db1") + w.f_bytes(3, "n2") + w.f_varint(5, 1) + w.f_varint(6, 1) +
           w.f_varint(7, 5321) + w.f_bytes(8, "running"))
    finfo = (w.f_bytes(1, "n4") + w.f_varint(2, 5) + w.f_bytes(4, "done") + w.f_bytes(5, "n1") +
             w.f_bytes(9, "libvirt") + w.f_bytes(10, fvm) + w.f_varint(11, 3100) +
             w.f_bytes(14, "n1"))
    put("fuzz_envelope", "resp_failovers", w.envelope(response=w.f_varint(1, 9) + w.f_bytes(
        19, w.f_bytes(1, finfo), always=True)))
    loss = w.f_bytes(1, "n2") + w.f_varint(2, 3) + w.f_varint(3, 2) + w.f_bytes(4, "big")
    ha = (w.f_varint(2, 3) + w.f_varint(3, 2) + w.f_varint(4, 3) + w.f_varint(5, 1) +
          w.f_bytes(6, loss))
    put("fuzz_envelope", "resp_ha", w.envelope(response=w.f_varint(1, 9) +
                                               w.f_bytes(20, ha, always=True)))
    # `vms`: an HA VM shut off whose desired state (VmInfo field 10) is
    # stopped, and one that should run (field absent)
    vm_off = (w.f_bytes(1, "db1") + w.f_bytes(2, "6695eb01-f6a4-8304-79aa-97f2502e193f") +
              w.f_varint(3, 3) + w.f_varint(4, 2) + w.f_varint(5, 1 << 20) + w.f_varint(6, 1) +
              w.f_varint(7, 900) + w.f_varint(8, 4) + w.f_bytes(9, "db") + w.f_varint(10, 1))
    vm_owed = (w.f_bytes(1, "web1") + w.f_bytes(2, "7795eb01-f6a4-8304-79aa-97f2502e1940") +
               w.f_varint(3, 3) + w.f_varint(6, 1) + w.f_varint(8, 2))
    views = (w.f_bytes(1, w.f_bytes(1, vm_off) + w.f_bytes(2, "n2")) +
             w.f_bytes(1, w.f_bytes(1, vm_owed) + w.f_bytes(2, "n3")))
    put("fuzz_envelope", "resp_vms", w.envelope(response=w.f_varint(1, 9) +
                                                w.f_bytes(13, views, always=True)))
    replica = (w.f_bytes(1, "n1") + w.f_bytes(2, "6695eb01-f6a4-8304-79aa-97f2502e193f") +
               w.f_bytes(3, "db1") + w.f_varint(4, 9) + w.f_bytes(7, "<domain/>"))
    put("fuzz_envelope", "req_replica_put", w.envelope(request=w.f_varint(1, 9) + w.f_bytes(
        29, w.f_bytes(1, replica), always=True)))

    # the failover journal (fo_journal_restore): format 2 keeps acceptor
    # state — promises, accepted values with their entries (free-text fields
    # percent-encoded), the epochs given to each VM — besides the
    # "failed-over" promises of format 1
    put("fuzz_journal", "format2", (
        "# meshvisor failover journal, written by the agent: do not edit.\n"
        "format 2\n"
        "failed-over n4 5\n"
        "forgotten n4 3\n"
        "voter n2\n"
        "voter n4\n"
        "promised n4 5 0 7 n1\n"
        "accepted n4 5 0 7 n1 3\n"
        "entry =6695eb01-f6a4-8304-79aa-97f2502e193f =db1 =n2 1000 8 16777216 9 =db 3\n"
        "entry =7795eb01-f6a4-8304-79aa-97f2502e1940 =web%201%2F%C3%A9 =n3 -5 2 1048576 3 = 0\n"
        "entry =8895eb01-f6a4-8304-79aa-97f2502e1941 =big = 0 64 18446744073709551615 "
        "18446744073709551615 =g 18446744073709551615\n"
        "promised n4 5 1 2 n2\n"
        "accepted n4 5 1 2 n2 0\n"
        "promised n4 6 0 1 self\n"
        "given =6695eb01-f6a4-8304-79aa-97f2502e193f =n2 9 3 base 8\n"
        "given =u1 =n3 2 0\n").encode())
    # refused: the accepted plan announces more entries than follow
    put("fuzz_journal", "format2_short", (
        "format 2\n"
        "failed-over n4 5\n"
        "accepted n4 5 0 7 n1 2\n"
        "entry =u1 =db1 =n2 0 1 1024 2 = 1\n").encode())

    cfg = {
        "name": "n1", "bind": "127.0.0.1", "advertise": "127.0.0.1", "peer_port": 7946,
        "rpc_port": 7947, "join": ["127.0.0.1:7948"],
        "tls": {"ca": "/tmp/ca.pem", "cert": "/tmp/n1.pem", "key": "/tmp/n1.key",
                "crl": "/tmp/crl.pem"},
        "data_dir": "/tmp/n1", "log_level": "debug", "libvirt_uri": "test:///default",
        "max_peer_connections": 64, "peer_idle_timeout_ms": 60000, "leave_timeout_ms": 3000,
        "swim": {"probe_interval_ms": 500, "probe_timeout_ms": 200, "indirect_probes": 3,
                 "retransmit_mult": 4, "suspicion_min_mult": 4, "suspicion_max_mult": 6,
                 "awareness_max": 8, "push_pull_interval_ms": 30000,
                 "gossip_interval_ms": 200, "gossip_fanout": 3, "join_retry_ms": 1000,
                 "reap_ms": 86400000},
        "metrics": {"bind": "127.0.0.1", "port": 7948, "tls": True},
    }
    put("fuzz_config", "full.json", json.dumps(cfg, indent=1).encode())
    put("fuzz_config", "min.json", b'{"name": "a"}')
    put("fuzz_config", "bad_key.json", b'{"nmae": "a", "swim": {"probe_interval_ms": "fast"}}')
    put("fuzz_config", "empty.json", b"{}")
    datagrams()
    crls()


def crls():
    """fuzz_crl seeds (the CA and its CRL are made by the target at start,
    fuzz_crl.c): byte 0 odd patches the valid CRL (no pairs: the valid
    one; pairs [offset, xor]), even is DER to wrap in PEM, 2 raw file text."""
    put("fuzz_crl", "valid", b"\x01")
    put("fuzz_crl", "flip_signature", b"\x01\xf0\x55")
    put("fuzz_crl", "flip_issuer", b"\x01\x20\x80\x21\x01")
    put("fuzz_crl", "der_empty_sequence", b"\x00\x30\x00")
    put("fuzz_crl", "der_truncated", b"\x00\x30\x82\x01\x00\x30\x81")
    put("fuzz_crl", "raw_not_pem", b"\x02not a CRL\n")
    put("fuzz_crl", "raw_two_blocks", b"\x02-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n"
        b"-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n")


if __name__ == "__main__":
    main()
