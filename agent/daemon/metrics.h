/*
 * metrics.h — the agent's Prometheus metrics: an HTTP listener (plain
 * HTTP, bound to 127.0.0.1:7948 by default, or mutual TLS as on the RPC
 * port with metrics.tls: metrics_tls.h; config section "metrics")
 * that answers GET /metrics in the text exposition format 0.0.4.
 * docs/metrics.md lists every metric.
 *
 * The loop never blocks and a module owns its state: libmicrohttpd runs
 * without a thread of its own (MHD_USE_EPOLL); its epoll descriptor is
 * watched by a uv_poll_t and its timeouts by a uv_timer_t on the agent's
 * loop, so each request is parsed and answered on the loop thread, and
 * the body is built there from what each module exposes through its
 * header (the same reads as `meshvisor status`, `ha`, `failovers`).
 * Connections are bounded (METRICS_MAX_CONNS in all, METRICS_MAX_PER_IP
 * from one address, METRICS_TIMEOUT_S idle, METRICS_CONN_MEMORY bytes
 * for a request's headers): a client over a bound is refused or closed,
 * nothing else waits for it.
 *
 * Ownership: struct metrics is private to metrics.c (a->metrics);
 * metrics_start..metrics_close (handles, listener), metrics_free after
 * the loop ran the close callbacks. Loop thread only.
 */
#ifndef MESHVISOR_METRICS_H
#define MESHVISOR_METRICS_H

#include <stddef.h>

struct agent;
struct mv_prom;

#define METRICS_MAX_CONNS 32
#define METRICS_MAX_PER_IP 8
#define METRICS_TIMEOUT_S 10
#define METRICS_CONN_MEMORY (32u * 1024u)

/* Starts the listener (nothing when metrics_port is 0). 0 or < 0 with err. */
int metrics_start(struct agent *a, char *err, size_t errlen);
/* Stops listening and closes every connection and handle. */
void metrics_close(struct agent *a);
void metrics_free(struct agent *a);
/* Writes every metric into p (what GET /metrics answers). */
void metrics_render(struct agent *a, struct mv_prom *p);

#endif
