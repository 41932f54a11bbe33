/*
 * net.h — framed, mutually authenticated TLS connections on libuv.
 *
 * The only module that owns sockets. It moves bytes between libuv TCP
 * streams and sans-I/O TLS sessions (tls.h), cuts the plaintext into frames
 * (frame.h) and hands each complete frame to the owner's callback together
 * with the peer identity proven by its certificate.
 *
 * Two kinds of listener share the machinery:
 *   NET_PEER  the peer port: only certificates with role "node" are accepted.
 *   NET_RPC   the RPC port: any certificate of the cluster CA; the RPC layer
 *             decides per request what the role may do.
 *
 * Outgoing peer traffic goes through a pool of connections keyed by the
 * peer's address: net_send_to() reuses an established connection, or the
 * established connection that peer opened to us (same proven name), or
 * opens one and queues the frame until the handshake completes. The pool is
 * bounded (least recently used established connection evicted; a handshake
 * in progress is never cut off: with none to evict the frame is dropped)
 * and idle connections are closed after a timeout, while the datagram
 * keys their handshakes made stay. Delivery is best effort, like a
 * datagram: a connection that fails drops what it had queued — the
 * membership protocol times its probes itself and never waits on TCP.
 * docs/transport.md ("Connections") has the policy.
 *
 * Datagrams: the peer listener also binds a UDP socket to the same ip and
 * port number (another port space). Every completed peer-port handshake
 * derives datagram keys for that peer (TLS exporter, dgram.h);
 * net_dgram_send() seals one payload with them, and a datagram that opens
 * is handed to on_peer_dgram with the peer's proven name. The failure
 * detector's probes and heartbeats go that way (docs/transport.md).
 *
 * Ownership: struct net owns every connection. A struct net_conn passed to
 * a callback is valid during that callback; to keep using one later, do not
 * (they can close at any time). Frames passed to net_send_to/net_conn_send
 * are copied. Memory of a closed connection is freed in libuv's close
 * callback, so net_close() must be followed by running the loop until its
 * callback fires.
 */
#ifndef MESHVISOR_NET_H
#define MESHVISOR_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "frame.h"
#include "tls.h"

enum net_kind { NET_PEER = 0, NET_RPC = 1 };

struct net;
struct net_conn;

/* A sealed datagram from the authenticated peer `peer` (its certificate
 * CN, proven by the key the datagram opened with) arrived from `remote`
 * ("ip:port"); payload is what a frame on the TLS path would carry. */
typedef void (*net_dgram_cb)(struct net *n, const char *peer, const char *remote,
                             const uint8_t *payload, size_t len, void *ud);

/* A complete frame arrived on connection c (payload without the header). */
typedef void (*net_frame_cb)(struct net *n, struct net_conn *c, const uint8_t *payload, size_t len,
                             void *ud);

struct net_config {
	uv_loop_t *loop;
	struct tls_ctx *server_tls;     /* for accepted connections */
	struct tls_ctx *client_tls;     /* for outgoing peer connections */
	uint32_t max_out_conns;         /* pool bound */
	uint32_t idle_timeout_ms;       /* close connections unused this long */
	uint32_t handshake_timeout_ms;  /* connect + TLS handshake deadline */
	size_t max_queued_bytes;        /* per connection; beyond it frames are dropped */
	uint64_t dgram_key_lifetime_ms; /* datagram send key lifetime; 0: dgram's 10 min */
	uint32_t max_rekeys;            /* rekey handshakes in flight at once; 0: 4 */
	net_frame_cb on_peer_frame;
	net_frame_cb on_rpc_frame;
	/* Called once when a connection starts closing (may be NULL); the
	 * connection must not be used after it returns. */
	void (*on_conn_closed)(struct net *n, struct net_conn *c, void *ud);
	/* A datagram opened on the peer port's UDP socket (may be NULL: dropped). */
	net_dgram_cb on_peer_dgram;
	/* Nothing listens on the peer port at addr: an outgoing peer
	 * connection was refused (the host answered the connect with a
	 * reset), or a datagram we sent there came back as ICMP port
	 * unreachable. `name`: the peer the connection expected, or the one
	 * the returned datagram was sealed for ("" if not known). An ICMP
	 * error counts only if it quotes one of our recent datagrams to a
	 * peer heard over UDP lately (dgram_quoted_sender). At most once per
	 * address per second. May be NULL. */
	void (*on_peer_refused)(struct net *n, const char *addr, const char *name, void *ud);
	/* A datagram under a key we do not hold came from addr (at most once
	 * a second per address; may be NULL): a peer still sealing with the
	 * keys of our previous life. Unauthenticated: a hint to open a TLS
	 * connection to a known member there (net_connect), nothing more. */
	void (*on_peer_unknown_key)(struct net *n, const char *addr, void *ud);
	/* Inbound limits (issue 13, docs/limits.md); 0 takes the default.
	 * A connection over a cap is closed at once, logged once per 10 s
	 * (with how many were held back). */
	uint32_t max_rpc_conns;      /* accepted RPC connections at once: 256 */
	uint32_t max_peer_in_conns;  /* accepted peer-port connections at once: 1024 */
	uint32_t max_conns_per_cert; /* RPC connections of one certificate (CN): 32 */
	/* accepted peer-port connections of one node certificate (CN): 16
	 * (its pooled connection, rekeys, a previous life's until idle) */
	uint32_t max_peer_conns_per_cert;
	size_t rpc_inbound_budget;  /* bytes of unfinished frames, all RPC connections: 64 MiB */
	size_t peer_inbound_budget; /* ... all peer-port connections, both ways: 256 MiB */
	/* RPC port: the cap of one request frame, from its declared length and
	 * first bytes (frame.h); NULL: FRAME_MAX. Called with the connection
	 * (struct net_conn *) as its ud: the cap may depend on the caller's
	 * role (net_conn_peer_role). */
	frame_cap_fn rpc_frame_cap;
	/* A frame over rpc_frame_cap came on c (its bytes are skipped, the
	 * connection stays): the owner may answer it. prefix: its first
	 * bytes. May be NULL. */
	void (*on_rpc_frame_refused)(struct net *n, struct net_conn *c, const uint8_t *prefix,
	                             size_t prefix_len, uint32_t len, uint32_t cap, void *ud);
	void *ud;
};

struct net_stats {
	uint32_t out_conns;      /* outgoing peer connections (the pool), any state */
	uint32_t in_conns;       /* accepted connections, peer and RPC */
	uint32_t in_peer_conns;  /* ... of them on the peer port */
	uint64_t handshakes_out; /* peer-port TLS handshakes completed, we connected */
	uint64_t handshakes_in;  /* ... they connected */
	uint64_t handshake_fail; /* connect or handshake deadline passed */
	uint64_t evictions;      /* outgoing connections closed: the pool was full */
	uint64_t idle_closes;    /* connections closed after idle_timeout_ms unused */
	uint64_t reused_in;      /* sends to a peer carried by its connection to us */
	uint64_t rekeys;         /* rekey handshakes started (datagram keys due) */
	uint64_t rekeys_held;    /* ... held back: max_rekeys in flight, or a hint
	                            refused (peer heard lately, or cooldown) */
	uint64_t pool_full;      /* sends dropped: pool full of unfinished handshakes */
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t bytes_in;  /* ciphertext bytes read */
	uint64_t bytes_out; /* ciphertext bytes written */
	uint64_t dropped;   /* frames dropped (queue full, connection failed) */
	uint64_t rejected;  /* connections refused (TLS, role, bad frame) */
	/* inbound limits (issue 13) */
	uint64_t conn_cap_closes;       /* closed: per-port or per-certificate cap */
	uint64_t frame_deadline_closes; /* closed: a frame not whole within its deadline */
	uint64_t budget_closes;         /* closed: the port's inbound byte budget was full */
	uint64_t frames_over_cap;       /* RPC frames refused by rpc_frame_cap (skipped) */
	uint64_t accept_drops;          /* accepted and closed at once: port cap, no memory */
	uint64_t rpc_pauses;            /* RPC connections paused: replies left unread */
	uint64_t resumed;               /* outgoing handshakes that resumed a session */
	/* datagrams on the peer port's UDP socket (dgram.h) */
	uint64_t dgrams_in;             /* opened and handed to on_peer_dgram */
	uint64_t dgrams_out;            /* sent */
	uint64_t dgram_bytes_in;        /* datagram bytes, header and tag included */
	uint64_t dgram_bytes_out;       /* same */
	uint64_t dgram_auth_fail;       /* dropped: bad length, version, unknown key or tag */
	uint64_t dgram_replays;         /* dropped: sequence seen before or too old */
	uint64_t dgram_no_key;          /* net_dgram_send without a send key: caller used TLS */
	uint64_t dgram_send_fail;       /* sealed but the socket refused it */
	uint64_t dgram_refused;         /* ICMP port unreachable for a datagram we sent */
	uint64_t dgram_refused_ignored; /* ... not quoting a recent one to a peer heard */
	uint64_t dgram_unheard;         /* sends to a peer not heard over UDP: TLS too */
	uint64_t dgram_keys_aside;      /* handshakes of a second certificate for a name */
	uint64_t dgram_cert_dials;      /* dials its datagrams asked for, the one in use silent */
	uint32_t dgram_peers;           /* peers we hold datagram keys for */
};

struct net *net_new(const struct net_config *cfg);
/* Closes listeners and connections; `done` runs when all memory is free. */
void net_close(struct net *n, void (*done)(void *arg), void *arg);

/* Listens on ip:port. Returns 0 or a negative errno with err filled. */
int net_listen(struct net *n, enum net_kind kind, const char *ip, uint16_t port, char *err,
               size_t errlen);

/* Sends a frame to the peer at addr ("host:port" or "[v6]:port"). When
 * expect_name is not NULL or "", the server certificate's CN must match. */
int net_send_to(struct net *n, const char *addr, const char *expect_name, const uint8_t *frame,
                size_t len);

/* Makes a handshake with the peer at addr, whose datagrams come under a
 * key we do not hold: opens the pooled connection if there is none (its
 * handshake installs datagram keys at both ends); where an established one
 * with that peer is up (ours, or its connection to us), whose session
 * evidently did not make the keys it seals with, starts a rekey handshake
 * beside it (bounded like every rekey). Nothing is sent, and an existing
 * connection is never replaced. 0 or a negative errno. */
int net_connect(struct net *n, const char *addr, const char *expect_name);

/* Sends a frame back on an existing connection (RPC replies). */
int net_conn_send(struct net_conn *c, const uint8_t *frame, size_t len);
/* Bytes sent on c that its peer has not acknowledged yet: those still
 * queued here and those in the kernel's send queue (SIOCOUTQ). A peer that
 * reads keeps it at 0 between bursts; one that is gone, or no longer
 * reads once its receive window is full, lets it stand still. */
size_t net_conn_unacked(const struct net_conn *c);
/* Closes a connection (logged with reason). Safe inside callbacks. */
void net_conn_close(struct net_conn *c, const char *reason);

/* Sends payload (a frame's payload, no frame header) to the peer named
 * peer_name at addr as one sealed UDP datagram from the peer port. 0 when
 * sent as a datagram only. Datagrams alone go only to a peer whose own
 * datagrams reached us lately (NET_DGRAM_HEARD_MS): a peer behind a
 * firewall that drops UDP, or an agent that speaks no datagrams, is never
 * left without probes and heartbeats. Otherwise the caller sends it over
 * TLS (net_send_to) too, or instead:
 *   -EAGAIN    sent as a datagram, but the peer was not heard over UDP
 *              lately: send it over TLS as well (one such datagram per
 *              NET_DGRAM_PROBE_MS, so that the peer can hear us)
 *   -ENOKEY    no live datagram key for that peer (never shook hands, or
 *              the key retired), or not heard and no probe datagram due.
 *              The TLS send that follows carries the message; keys come
 *              from a new connection's handshake, or, where a connection
 *              with that peer is already up, from a rekey handshake
 *              started here.
 *   -EMSGSIZE  payload over DGRAM_MAX_PAYLOAD (1200 bytes)
 *   -ENOTCONN  no peer listener (no UDP socket), or shutting down
 *   -EINVAL    bad address; other negative: the socket refused it.
 * A key that comes due (dgram_rekey_due: staggered, well before it
 * retires) starts a rekey handshake here too, and the datagram still goes
 * under the old key. A rekey handshake runs on a connection outside the
 * pool that closes a second after its handshake installed fresh keys; at
 * most max_rekeys are in flight (the rest wait for a later send). */
int net_dgram_send(struct net *n, const char *peer_name, const char *addr, const uint8_t *payload,
                   size_t len);
/* The peer restarted (membership saw a new incarnation): our datagram key
 * to it is retired (dgram_retire_send), so the next send goes over TLS and
 * a handshake rekeys both ends at once. */
void net_dgram_retire(struct net *n, const char *peer_name);
/* After a TLS reload: closes every connection, peer or RPC, whose peer
 * certificate the material now in force no longer trusts — revoked by the
 * CRL, or its CA gone from the CA file (tls_conn_peer_distrusted), one WARN
 * line each, and forgets the datagram keys of those peers (dgram_forget):
 * their sealed datagrams are dropped from here on. Returns how many. */
unsigned net_close_revoked(struct net *n);

const char *net_conn_peer_name(const struct net_conn *c);
enum tls_role net_conn_peer_role(const struct net_conn *c);
const char *net_conn_remote(const struct net_conn *c); /* "ip:port" of the socket */
enum net_kind net_conn_kind(const struct net_conn *c);

void net_get_stats(const struct net *n, struct net_stats *out);

/* Parses "1.2.3.4:5" or "[::1]:5" into a sockaddr. 0 or -EINVAL. */
int net_parse_addr(const char *addr, struct sockaddr_storage *out);

#endif
