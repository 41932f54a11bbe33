#!/usr/bin/env python3
"""The CLI checks whom it talks to (issue 13, client side).

Every agent holds a node certificate of the cluster CA, so a CLI that only
checks the CA would hand its request to any of them. Here an impostor holds
n2's real certificate (signed by the cluster CA, subjectAltName IP
127.0.0.2) and answers at an address the CLI dials, 127.0.0.1:PORT. The CLI
must refuse it with an error that names the mismatch, and the impostor must
receive no byte of the request. The control: the same impostor, reached
with --server-name 127.0.0.2 (the name its certificate does carry), gets
the request; so the first check can tell sending from not sending.

Against a real agent n1 (certificate IP 127.0.0.1): its IP address works,
the host name localhost is refused (the certificate names no host) unless
--server-name 127.0.0.1 says which name to check, and then the host name
is resolved and each of its addresses tried. An error the agent quotes
bytes in comes back as valid UTF-8 (invalid bytes replaced by '?')."""
import os
import socket
import ssl
import subprocess
import threading

import mvtest
from mvtest import check, log


class Impostor:
    """A TLS 1.3 server with a node certificate of the cluster CA that
    accepts one client (certificate required), completes the handshake
    and records every plaintext byte the client sends until it closes."""

    def __init__(self, t, cert, key, host="127.0.0.1"):
        self.port = t.port()
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.ctx.load_cert_chain(cert, key)
        self.ctx.load_verify_locations(t.certs.ca_cert)
        self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((host, self.port))
        self.ls.listen(4)
        self.ls.settimeout(10)
        self.addr = "%s:%d" % (host, self.port)
        self.handshake = None  # the client's CN once the handshake completed
        self.received = b""
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            raw, _ = self.ls.accept()
        except OSError as e:
            self.error = "no client: %s" % e
            return
        raw.settimeout(10)
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
            peer = dict(x[0] for x in s.getpeercert()["subject"])
            self.handshake = peer.get("commonName")
            while True:
                data = s.recv(65536)
                if not data:
                    break
                self.received += data
        except (ssl.SSLError, OSError) as e:
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            raw.close()

    def done(self):
        self.thread.join(15)
        self.ls.close()
        check(not self.thread.is_alive(), "impostor thread still running")


def cli(t, args, addr, role="operator", extra=(), timeout=20):
    ca, cert, key = t.client_creds(role)
    cmd = [t.binary] + list(args) + ["--addr", addr, "--ca", ca, "--cert", cert,
                                     "--key", key] + list(extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHVISOR_")}
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    log("meshvisor %s --addr %s %s: exit %d, stderr: %s" %
        (" ".join(args), addr, " ".join(extra), r.returncode, r.stderr.strip()))
    return r


def main(t):
    t.setup_certs()
    # n2's certificate, as n2 would hold it on its own address
    n2_cert, n2_key = t.certs.make("node", "n2", ip="127.0.0.2")

    # 1. the impostor answers at the address the CLI dials
    imp = Impostor(t, n2_cert, n2_key)
    r = cli(t, ["vm", "destroy", "db1"], imp.addr)
    imp.done()
    log("impostor: handshake with %r, %d bytes received, end: %s" %
        (imp.handshake, len(imp.received), imp.error))
    check(r.returncode == 1, "CLI against the impostor: exit %d, want 1" % r.returncode)
    want = ("agent certificate 'n2' is not for address 127.0.0.1: it names IP 127.0.0.2")
    check(want in r.stderr, "CLI error %r does not say %r" % (r.stderr.strip(), want))
    check(imp.handshake == "test-operator",
          "the impostor never completed a handshake (%s): the test proves nothing" % imp.error)
    check(imp.received == b"", "the CLI sent %d bytes to the impostor" % len(imp.received))

    # control: told to expect n2's name, the CLI does send (so the check above can fail)
    imp = Impostor(t, n2_cert, n2_key)
    r = cli(t, ["status"], imp.addr, extra=("--server-name", "127.0.0.2", "--timeout", "1500"))
    imp.done()
    check(r.returncode == 1 and "did not answer" in r.stderr,
          "CLI with --server-name against a silent server: exit %d, %r" %
          (r.returncode, r.stderr.strip()))
    check(len(imp.received) > 0, "with --server-name 127.0.0.2 the request should have reached "
          "the server (received %d bytes, %s)" % (len(imp.received), imp.error))
    log("control: with --server-name 127.0.0.2 the server received %d bytes" %
        len(imp.received))

    # 2. a real agent: its address works; a host name only with --server-name
    c = t.cluster(1)
    c.start_all(seed="n1")
    n1 = c["n1"]
    r = cli(t, ["status", "--json"], n1.rpc_addr, role="viewer")
    check(r.returncode == 0 and '"name"' in r.stdout, "status at n1's address: exit %d, %r" %
          (r.returncode, r.stderr.strip()))
    host_addr = "localhost:%d" % n1.rpc_port
    r = cli(t, ["status"], host_addr, role="viewer")
    check(r.returncode == 1 and "is not for host localhost: it names IP 127.0.0.1" in r.stderr,
          "status at %s: exit %d, %r" % (host_addr, r.returncode, r.stderr.strip()))
    r = cli(t, ["status", "--json"], host_addr, role="viewer",
            extra=("--server-name", "127.0.0.1"))
    check(r.returncode == 0 and '"name"' in r.stdout,
          "status at %s --server-name 127.0.0.1: exit %d, %r" %
          (host_addr, r.returncode, r.stderr.strip()))
    # 3. error strings are UTF-8 even when what the agent quotes is not
    #    (here the client's own bytes; libvirt's messages the same way)
    ca, cert, key = t.client_creds("operator")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHVISOR_")}
    rb = subprocess.run([t.binary.encode(), b"vm", b"start", b"caf\xe9-\xff",
                         b"--addr", n1.rpc_addr.encode(), b"--ca", ca.encode(),
                         b"--cert", cert.encode(), b"--key", key.encode()],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20,
                        stdin=subprocess.DEVNULL, env=env)
    log("vm start with a latin-1 name: exit %d, stderr %r" % (rb.returncode, rb.stderr))
    check(rb.returncode == 1 and b"caf?-?" in rb.stderr and b"\xe9" not in rb.stderr,
          "the agent's error is not sanitized UTF-8: %r" % rb.stderr)
    rb.stderr.decode("utf-8")

    r = cli(t, ["status"], "no-such-host.invalid:%d" % n1.rpc_port, role="viewer")
    check(r.returncode == 1 and "cannot resolve the agent address 'no-such-host.invalid'"
          in r.stderr, "unresolvable host: exit %d, %r" % (r.returncode, r.stderr.strip()))


mvtest.run(main)
