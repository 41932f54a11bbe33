/*
 * metrics.c — Prometheus metrics on an HTTP listener (metrics.h).
 *
 *   listener: MHD_start_daemon(MHD_USE_EPOLL, no thread) on metrics.bind:port
 *             (metrics.tls: no listening socket of its own; metrics_tls.c
 *             listens, runs each TLS session and hands MHD a socketpair)
 *   loop:     uv_poll(MHD's epoll fd) readable --> MHD_run --> rearm the timer
 *             uv_timer(MHD_get_timeout)        --> MHD_run --> rearm the timer
 *   request:  GET|HEAD /metrics --> metrics_render (reads the modules) --> 200
 *             another path 404, another method 405 (MHD: a malformed request
 *             400, headers over METRICS_CONN_MEMORY 431, then closed)
 *   counted here (nothing else counts them): membership events (suspicions,
 *             refutations, deaths) through a membership listener; failover
 *             phase durations, each instance's phase observed once when this
 *             node sees it end (a 1 s scan of the core's instances, and at
 *             each scrape).
 *
 * Invariants: every libmicrohttpd call runs on the loop thread; the poll and
 * both timers are initialized together and closed together (handles_on);
 * the body is built from reads only (no module's state changes).
 */
#include "metrics.h"
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"
#include "log.h"
#include "membership.h"
#include "meshvisor/fo.h"
#include "metrics_tls.h"
#include "migration.h"
#include "promtext.h"
#include "rpc_server.h"

/* failover instances whose phases were observed (oldest forgotten first) */
#define METRICS_SEEN_MAX 256

enum metrics_phase { PH_DETECT_TO_CHOSEN, PH_CHOSEN_TO_FENCED, PH_FENCED_TO_RESTARTED, PH_N };
static const char *const phase_label[PH_N] = {"detect_to_chosen", "chosen_to_fenced",
                                              "fenced_to_restarted"};

struct metrics_seen {
	struct fo_instance_id id;
	unsigned observed; /* bit per enum metrics_phase */
};

struct metrics {
	struct agent *a;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer; /* MHD's next timeout */
	uv_timer_t scan;  /* failover phases, every second */
	bool handles_on;
	bool tls_on;            /* metrics.tls: the TLS front listens */
	struct metrics_tls tls; /* metrics_tls.c */
	uint64_t scrapes;
	uint64_t refused; /* requests answered 404/405, or a body that failed */
	/* membership events */
	uint64_t suspicions, refuted_member, refuted_self, deaths, joins;
	/* failover phases */
	struct mv_hist phase[PH_N];
	struct metrics_seen seen[METRICS_SEEN_MAX];
	size_t n_seen, next_seen;
};

/* ---- what is counted here ------------------------------------------------------- */

static void metrics_on_member_event(struct agent *a, const struct swim_event *e)
{
	struct metrics *m = a->metrics;
	if (m == NULL)
		return;
	switch (e->type) {
	case SWIM_EV_MEMBER_SUSPECT:
		m->suspicions++;
		break;
	case SWIM_EV_MEMBER_ALIVE:
		m->refuted_member++;
		break;
	case SWIM_EV_SELF_REFUTED:
		m->refuted_self++;
		break;
	case SWIM_EV_MEMBER_DEAD:
		m->deaths++;
		break;
	case SWIM_EV_MEMBER_JOINED:
		m->joins++;
		break;
	default:
		break;
	}
}

static struct metrics_seen *metrics_seen_get(struct metrics *m, const struct fo_instance_id *id)
{
	for (size_t i = 0; i < m->n_seen; i++) {
		struct metrics_seen *s = &m->seen[i];
		if (s->id.incarnation == id->incarnation && s->id.round == id->round &&
		    strcmp(s->id.dead, id->dead) == 0)
			return s;
	}
	struct metrics_seen *s = &m->seen[m->next_seen];
	m->next_seen = (m->next_seen + 1) % METRICS_SEEN_MAX;
	if (m->n_seen < METRICS_SEEN_MAX)
		m->n_seen++;
	s->id = *id;
	s->observed = 0;
	return s;
}

/* The last successful restart of instance i, as `meshvisor failovers`
 * computes fenced_to_last_restart_ms: 0 when none. */
static uint64_t metrics_last_restart_ms(const struct fo *f, size_t i)
{
	uint64_t last = 0;
	size_t nv = fo_instance_vm_count(f, i);
	for (size_t j = 0; j < nv; j++) {
		struct fo_vm_outcome o;
		fo_instance_vm_at(f, i, j, &o);
		if (o.ok && o.took_ms > last)
			last = o.took_ms;
	}
	return last;
}

static void metrics_observe(struct metrics_seen *s, struct mv_hist *h, enum metrics_phase ph,
                            uint64_t from, uint64_t to)
{
	if (s->observed & (1u << ph) || from == 0 || to < from)
		return;
	s->observed |= 1u << ph;
	mv_hist_observe(&h[ph], (double)(to - from) / 1000.0);
}

/* Each instance's phases, observed once each as this node sees them end. */
static void metrics_scan_failovers(struct metrics *m)
{
	const struct fo *f = ha_core(m->a);
	if (f == NULL)
		return;
	size_t n = fo_instance_count(f);
	for (size_t i = 0; i < n; i++) {
		struct fo_instance_info ii;
		fo_instance_at(f, i, &ii);
		if (ii.chosen_at == 0)
			continue;
		struct metrics_seen *s = metrics_seen_get(m, &ii.inst);
		if (ii.detected_at != 0)
			metrics_observe(s, m->phase, PH_DETECT_TO_CHOSEN, ii.detected_at,
			                ii.chosen_at);
		if (ii.fenced_at != 0)
			metrics_observe(s, m->phase, PH_CHOSEN_TO_FENCED, ii.chosen_at,
			                ii.fenced_at);
		uint64_t last = ii.phase == FO_PH_DONE ? metrics_last_restart_ms(f, i) : 0;
		if (last != 0 && ii.fenced_at != 0)
			metrics_observe(s, m->phase, PH_FENCED_TO_RESTARTED, ii.fenced_at,
			                ii.chosen_at + last);
	}
}

static void metrics_on_scan(uv_timer_t *t)
{
	metrics_scan_failovers(t->data);
}

/* ---- the body ------------------------------------------------------------------- */

#define L1(k, v) ((struct mv_prom_label[]){{k, v}}), 1

static void metric1(struct mv_prom *p, const char *name, const char *type, const char *help,
                    double v)
{
	mv_prom_family(p, name, type, help);
	mv_prom_sample(p, name, NULL, 0, v);
}

/* one family, one label, two values (e.g. direction in/out) */
static void metric2(struct mv_prom *p, const char *name, const char *type, const char *help,
                    const char *label, const char *k1, double v1, const char *k2, double v2)
{
	mv_prom_family(p, name, type, help);
	mv_prom_sample(p, name, L1(label, k1), v1);
	mv_prom_sample(p, name, L1(label, k2), v2);
}

static void render_membership(struct agent *a, struct metrics *m, struct mv_prom *p)
{
	const struct swim *s = membership_swim(a);
	uint32_t c[4];
	swim_state_counts(s, c);
	mv_prom_family(
	    p, "meshvisor_members", "gauge",
	    "Members of the cluster by state, as this node sees them (meshvisor members).");
	for (int st = 0; st < 4; st++)
		mv_prom_sample(p, "meshvisor_members", L1("state", swim_state_name(st)), c[st]);
	metric1(p, "meshvisor_member_suspicions_total", "counter",
	        "Suspicions of a member started (probe failed, or learned by gossip).",
	        (double)m->suspicions);
	metric2(p, "meshvisor_member_refutations_total", "counter",
	        "Suspicions refuted: by another member (seen here) or by this node of itself.",
	        "of", "member", (double)m->refuted_member, "self", (double)m->refuted_self);
	metric1(p, "meshvisor_member_deaths_total", "counter",
	        "Members declared dead (suspicion timed out, or learned by gossip).",
	        (double)m->deaths);
	metric1(p, "meshvisor_member_joins_total", "counter", "Members first heard of.",
	        (double)m->joins);
	metric1(p, "meshvisor_swim_claims_refused_total", "counter",
	        "Membership updates refused (unsigned or forged raises, out of bounds).",
	        (double)swim_claims_refused(s));
	metric1(p, "meshvisor_swim_local_health", "gauge",
	        "Lifeguard local health: 0 is healthy; raised by missed acks and loop stalls.",
	        swim_local_health(s));
	metric1(p, "meshvisor_swim_incarnation", "gauge", "This node's SWIM incarnation.",
	        (double)swim_incarnation(s));
}

static void render_failover(struct agent *a, struct metrics *m, struct mv_prom *p)
{
	const struct fo *f = ha_core(a);
	if (f == NULL)
		return;
	uint64_t now = uv_now(a->loop);
	metric1(p, "meshvisor_quorate", "gauge",
	        "1 when a majority of the voting set acknowledges this node (meshvisor ha).",
	        fo_quorate(f, now));
	metric1(p, "meshvisor_self_fenced", "gauge",
	        "1 when this node fenced itself and has not been quorate since.", fo_fenced(f));
	metric1(p, "meshvisor_quorum_voters", "gauge", "Voting set size, this node included.",
	        (double)fo_voters(f));
	metric1(p, "meshvisor_quorum_majority", "gauge", "Voters needed for a majority.",
	        (double)fo_majority(f));
	metric1(p, "meshvisor_quorum_voters_acknowledging", "gauge",
	        "Voters acknowledging this node now, itself included (alive_voters in ha).",
	        (double)fo_acknowledged(f, now));
	uint32_t ha_vms = 0, owed = 0;
	if (ha_vm_counts(a, &ha_vms, &owed) == 0) {
		metric1(p, "meshvisor_ha_vms", "gauge",
		        "HA VMs in the cluster, as meshvisor ha counts them (ha_vms).", ha_vms);
		metric1(p, "meshvisor_ha_vms_owed", "gauge",
		        "HA VMs whose desired state is running and that run on no alive host.",
		        owed);
	}
	size_t ph[4] = {0};
	size_t n = fo_instance_count(f);
	for (size_t i = 0; i < n; i++) {
		struct fo_instance_info ii;
		fo_instance_at(f, i, &ii);
		if ((unsigned)ii.phase < 4)
			ph[ii.phase]++;
	}
	mv_prom_family(p, "meshvisor_failover_instances", "gauge",
	               "Failover instances this node holds, by phase (meshvisor failovers).");
	for (int i = 0; i < 4; i++)
		mv_prom_sample(p, "meshvisor_failover_instances",
		               L1("phase", fo_phase_name((enum fo_phase)i)), (double)ph[i]);
	mv_prom_family(p, "meshvisor_failover_phase_duration_seconds", "histogram",
	               "Failover phases as this node saw them: death noted to plan chosen, chosen "
	               "to fence confirmed, fence to the last VM restarted.");
	for (int i = 0; i < PH_N; i++)
		mv_prom_histogram(p, "meshvisor_failover_phase_duration_seconds",
		                  L1("phase", phase_label[i]), &m->phase[i]);
}

static void render_migrations(struct agent *a, struct mv_prom *p)
{
	metric1(p, "meshvisor_migrations_running", "gauge",
	        "Outgoing live migrations running on the migration lane now.",
	        (double)migration_work_running(a));
	const struct migration_totals *t = migration_totals(a);
	if (t == NULL)
		return;
	metric2(p, "meshvisor_migrations_total", "counter",
	        "Outgoing migrations finished, by outcome (meshvisor migrations).", "outcome", "ok",
	        (double)t->ok, "failed", (double)t->failed);
	metric1(p, "meshvisor_migration_bytes_total", "counter",
	        "Bytes moved by finished outgoing migrations, as libvirt's job stats report them.",
	        (double)t->bytes);
	mv_prom_family(p, "meshvisor_migration_duration_seconds", "histogram",
	               "Outgoing migrations, requested to finished (moved or not).");
	mv_prom_histogram(p, "meshvisor_migration_duration_seconds", NULL, 0, &t->duration);
}

static void render_hv(struct agent *a, struct mv_prom *p)
{
	if (a->virt != NULL)
		metric1(p, "meshvisor_libvirt_up", "gauge", "1 when libvirt is reachable.",
		        virt_health(a->virt)->reachable);
	if (a->hv == NULL)
		return;
	static const struct {
		const char *name, *type, *help;
	} fam[] = {
	    {"meshvisor_hv_jobs_total", "counter",
	     "Hypervisor (libvirt) jobs that ran, by worker lane."},
	    {"meshvisor_hv_jobs_cancelled_total", "counter",
	     "Hypervisor jobs cancelled while queued (agent stopping)."},
	    {"meshvisor_hv_jobs_inflight", "gauge", "Hypervisor jobs queued or running, by lane."},
	    {"meshvisor_hv_queue_wait_seconds", "histogram",
	     "Time a hypervisor job waited in its lane's queue."},
	    {"meshvisor_hv_call_duration_seconds", "histogram",
	     "Time a hypervisor job (libvirt calls) ran on its lane's thread."},
	};
	for (size_t k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
		mv_prom_family(p, fam[k].name, fam[k].type, fam[k].help);
		for (int l = 0; l < HVWORK_LANES; l++) {
			const struct hvwork_lane_stats *st = hvwork_lane_stats(a->hv, l);
			struct mv_prom_label lab[] = {{"lane", hvwork_lane_name(l)}};
			if (k == 0)
				mv_prom_sample(p, fam[k].name, lab, 1, (double)st->jobs);
			else if (k == 1)
				mv_prom_sample(p, fam[k].name, lab, 1, (double)st->cancelled);
			else if (k == 2)
				mv_prom_sample(p, fam[k].name, lab, 1,
				               hvwork_lane_inflight(a->hv, l));
			else
				mv_prom_histogram(p, fam[k].name, lab, 1,
				                  k == 3 ? &st->wait : &st->run);
		}
	}
}

static void render_net(struct agent *a, struct mv_prom *p)
{
	struct net_stats ns;
	net_get_stats(a->net, &ns);
	metric2(p, "meshvisor_peer_connections", "gauge",
	        "Open peer-port connections: the outgoing pool, and accepted ones.", "direction",
	        "out", ns.out_conns, "in", ns.in_peer_conns);
	metric1(p, "meshvisor_rpc_connections", "gauge", "Open client connections on the RPC port.",
	        ns.in_conns - ns.in_peer_conns);
	metric2(p, "meshvisor_tls_handshakes_total", "counter",
	        "Peer-port TLS handshakes completed: we connected (out), they connected (in).",
	        "direction", "out", (double)ns.handshakes_out, "in", (double)ns.handshakes_in);
	metric1(p, "meshvisor_tls_handshake_failures_total", "counter",
	        "Peer connections whose connect or handshake deadline passed.",
	        (double)ns.handshake_fail);
	metric1(p, "meshvisor_tls_sessions_resumed_total", "counter",
	        "Outgoing handshakes that resumed a TLS session.", (double)ns.resumed);
	metric2(p, "meshvisor_tls_bytes_total", "counter",
	        "Bytes on TLS connections (peer and RPC ports), ciphertext.", "direction", "in",
	        (double)ns.bytes_in, "out", (double)ns.bytes_out);
	metric2(p, "meshvisor_tls_frames_total", "counter", "Frames on TLS connections.",
	        "direction", "in", (double)ns.frames_in, "out", (double)ns.frames_out);
	metric2(p, "meshvisor_datagrams_total", "counter",
	        "Sealed UDP datagrams on the peer port (SWIM probes).", "direction", "in",
	        (double)ns.dgrams_in, "out", (double)ns.dgrams_out);
	metric2(p, "meshvisor_datagram_bytes_total", "counter",
	        "Datagram bytes, header and tag included.", "direction", "in",
	        (double)ns.dgram_bytes_in, "out", (double)ns.dgram_bytes_out);
	metric2(p, "meshvisor_datagrams_dropped_total", "counter",
	        "Datagrams dropped: failed authentication, or replayed.", "reason", "auth",
	        (double)ns.dgram_auth_fail, "replay", (double)ns.dgram_replays);
	metric1(p, "meshvisor_datagram_keys_aside_total", "counter",
	        "Handshakes of a second certificate for a peer name whose datagram keys were "
	        "kept aside, apart from the certificate in use (a rotation, or a "
	        "certificate to revoke).",
	        (double)ns.dgram_keys_aside);
	metric1(p, "meshvisor_datagram_certificate_dials_total", "counter",
	        "Dials to a member asked for by datagrams of a second certificate for its name "
	        "while the certificate in use was silent (a rotation, or a certificate to "
	        "revoke); the certificate the dial meets is then the one in use.",
	        (double)ns.dgram_cert_dials);
	static const char *const reasons[] = {"evicted",        "idle",   "conn_cap",
	                                      "frame_deadline", "budget", "rejected"};
	const uint64_t v[] = {ns.evictions,       ns.idle_closes,
	                      ns.conn_cap_closes, ns.frame_deadline_closes,
	                      ns.budget_closes,   ns.rejected};
	mv_prom_family(p, "meshvisor_connections_closed_total", "counter",
	               "Connections closed by this node, by reason (pool full, idle, per-port "
	               "or per-certificate cap, slow frame, byte budget, refused TLS or frame).");
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		mv_prom_sample(p, "meshvisor_connections_closed_total", L1("reason", reasons[i]),
		               (double)v[i]);
}

static void render_rpc(struct mv_prom *p)
{
	struct rpc_request_count rc[256];
	size_t n = rpc_server_request_counts(rc, sizeof(rc) / sizeof(rc[0]));
	mv_prom_family(p, "meshvisor_rpc_requests_total", "counter",
	               "RPC requests answered, by operation and code (deferred: answered later, "
	               "through a stream or by the agent it was forwarded to).");
	for (size_t i = 0; i < n && i < sizeof(rc) / sizeof(rc[0]); i++) {
		struct mv_prom_label l[] = {{"op", rc[i].op}, {"code", rc[i].code}};
		mv_prom_sample(p, "meshvisor_rpc_requests_total", l, 2, (double)rc[i].count);
	}
}

void metrics_render(struct agent *a, struct mv_prom *p)
{
	struct metrics *m = a->metrics;
	mv_prom_family(p, "meshvisor_build_info", "gauge", "Always 1; labels say the version.");
	mv_prom_sample(p, "meshvisor_build_info", L1("version", MV_VERSION), 1);
	metric1(p, "meshvisor_start_time_seconds", "gauge", "When the agent started, Unix time.",
	        (double)a->started_unix_ms / 1000.0);
	if (m != NULL) {
		metrics_scan_failovers(m);
		metric1(p, "meshvisor_metrics_scrapes_total", "counter",
		        "GET /metrics requests answered, this one included.", (double)m->scrapes);
		metric2(p, "meshvisor_metrics_refused_total", "counter",
		        "Metrics clients refused: HTTP (another path or method, a failed body), or "
		        "TLS (handshake failed or too slow, role, revoked, over the cap).",
		        "reason", "http", (double)m->refused, "tls", (double)m->tls.refused);
	}
	if (a->membership != NULL && m != NULL)
		render_membership(a, m, p);
	if (m != NULL)
		render_failover(a, m, p);
	if (a->migration != NULL)
		render_migrations(a, p);
	render_hv(a, p);
	struct mv_lag_summary lag;
	looplag_summary(&a->looplag, &lag);
	metric1(p, "meshvisor_loop_lag_p99_seconds", "gauge",
	        "99th percentile of the event loop's lag over the last 30 s.", lag.p99_us / 1e6);
	metric1(p, "meshvisor_loop_lag_max_seconds", "gauge",
	        "Largest event loop lag over the last 30 s.", lag.max_us / 1e6);
	metric1(p, "meshvisor_loop_stalls_total", "counter",
	        "Event loop stalls (a lag of half a probe timeout or more).",
	        (double)looplag_stalls(&a->looplag));
	if (a->net != NULL)
		render_net(a, p);
	render_rpc(p);
}

/* ---- HTTP ----------------------------------------------------------------------- */

static enum MHD_Result metrics_reply(struct MHD_Connection *c, unsigned status, char *body,
                                     size_t len, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    len, body, body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

static char *metrics_text(const char *s, size_t *len)
{
	*len = strlen(s);
	return strdup(s);
}

static enum MHD_Result metrics_on_request(void *cls, struct MHD_Connection *c, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **con_cls)
{
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)con_cls;
	struct agent *a = cls;
	struct metrics *m = a->metrics;
	size_t len;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		m->refused++;
		char *b = metrics_text("only GET /metrics is served here\n", &len);
		return metrics_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, b, b ? len : 0, "text/plain");
	}
	if (strcmp(url, "/metrics") != 0) {
		m->refused++;
		char *b = metrics_text("not found: the metrics are at /metrics\n", &len);
		return metrics_reply(c, MHD_HTTP_NOT_FOUND, b, b ? len : 0, "text/plain");
	}
	m->scrapes++;
	uint64_t t0 = uv_hrtime();
	struct mv_prom p;
	mv_prom_init(&p);
	metrics_render(a, &p);
	char *body = mv_prom_take(&p, &len);
	MV_DEBUG("metrics", "scrape bytes=%zu took_us=%" PRIu64, len, (uv_hrtime() - t0) / 1000u);
	if (body == NULL) {
		m->refused++;
		MV_WARN("metrics", "scrape failed reason=\"out of memory or over %u bytes\"",
		        MV_PROM_MAX_BYTES);
		return metrics_reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 0, "text/plain");
	}
	return metrics_reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void metrics_mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	char q[600];
	MV_DEBUG("metrics", "http message=%s", mv_log_quote(q, sizeof(q), line));
}

static void metrics_on_timer(uv_timer_t *t);

/* Runs whatever MHD has to do now, then arms the timer for its next timeout. */
static void metrics_run(struct metrics *m)
{
	if (m->d == NULL)
		return;
	MHD_run(m->d);
	MHD_UNSIGNED_LONG_LONG to = 0;
	if (MHD_get_timeout(m->d, &to) == MHD_YES)
		uv_timer_start(&m->timer, metrics_on_timer, to, 0);
	else
		uv_timer_stop(&m->timer);
}

static void metrics_on_timer(uv_timer_t *t)
{
	metrics_run(t->data);
}

static void metrics_kick(void *ud)
{
	metrics_run(ud);
}

static void metrics_on_poll(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	metrics_run(h->data);
}

int metrics_start(struct agent *a, char *err, size_t errlen)
{
	const struct agent_options *o = &a->opt;
	struct metrics *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->a = a;
	for (int i = 0; i < PH_N; i++)
		mv_hist_init(&m->phase[i], mv_hist_phase_seconds, mv_hist_phase_seconds_n);
	a->metrics = m;
	if (membership_add_listener(metrics_on_member_event) < 0) {
		snprintf(err, errlen, "too many membership listeners");
		return -ENOSPC;
	}
	if (o->metrics_port == 0) {
		MV_INFO("metrics", "no listener cause=\"metrics.port is 0\"");
		return 0;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	bool v6 = strchr(o->metrics_bind, ':') != NULL;
	int rc = v6 ? uv_ip6_addr(o->metrics_bind, (int)o->metrics_port, (struct sockaddr_in6 *)&ss)
	            : uv_ip4_addr(o->metrics_bind, (int)o->metrics_port, (struct sockaddr_in *)&ss);
	if (rc < 0) {
		snprintf(err, errlen, "metrics.bind: not an IP address: %s", o->metrics_bind);
		return -EINVAL;
	}
	/* with TLS, the TLS front listens and hands libmicrohttpd each client */
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0) |
	                 (o->metrics_tls ? MHD_USE_NO_LISTEN_SOCKET : 0);
	errno = 0;
	m->d =
	    MHD_start_daemon(flags, (uint16_t)o->metrics_port, NULL, NULL, metrics_on_request, a,
	                     MHD_OPTION_SOCK_ADDR, o->metrics_tls ? NULL : (struct sockaddr *)&ss,
	                     MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_MAX_CONNS,
	                     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_MAX_PER_IP,
	                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_TIMEOUT_S,
	                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_CONN_MEMORY,
	                     MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)16,
	                     MHD_OPTION_EXTERNAL_LOGGER, metrics_mhd_log, NULL, MHD_OPTION_END);
	if (m->d == NULL) {
		snprintf(err, errlen,
		         "cannot listen for metrics on %s:%u: %s (metrics.port 0 turns it off)",
		         o->metrics_bind, (unsigned)o->metrics_port,
		         errno ? strerror(errno) : "libmicrohttpd refused to start");
		return -EADDRINUSE;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL || uv_poll_init(a->loop, &m->poll, info->epoll_fd) < 0) {
		MHD_stop_daemon(m->d);
		m->d = NULL;
		snprintf(err, errlen, "cannot watch the metrics listener on the loop");
		return -EIO;
	}
	uv_timer_init(a->loop, &m->timer);
	uv_timer_init(a->loop, &m->scan);
	m->poll.data = m->timer.data = m->scan.data = m;
	m->handles_on = true;
	if (o->metrics_tls) {
		m->tls_on = true;
		rc = metrics_tls_start(&m->tls, a->loop, (struct sockaddr *)&ss, a->tls_server,
		                       m->d, metrics_kick, m);
		if (rc < 0) {
			snprintf(
			    err, errlen,
			    "cannot listen for metrics on %s:%u: %s (metrics.port 0 turns it off)",
			    o->metrics_bind, (unsigned)o->metrics_port, uv_strerror(rc));
			return rc;
		}
	}
	uv_poll_start(&m->poll, UV_READABLE, metrics_on_poll);
	uv_timer_start(&m->scan, metrics_on_scan, 1000, 1000);
	/* the periodic scan must not keep a stopping loop alive */
	uv_unref((uv_handle_t *)&m->scan);
	metrics_run(m);
	bool loopback =
	    v6 ? strcmp(o->metrics_bind, "::1") == 0 : strncmp(o->metrics_bind, "127.", 4) == 0;
	if (!loopback && !o->metrics_tls)
		MV_WARN("metrics",
		        "listener on a non-loopback address addr=%s: plain HTTP, no authentication "
		        "(counts only, no names: see docs/metrics.md)",
		        o->metrics_bind);
	MV_INFO("metrics", "listening addr=%s%s%s:%u path=/metrics tls=%d", v6 ? "[" : "",
	        o->metrics_bind, v6 ? "]" : "", (unsigned)o->metrics_port, o->metrics_tls);
	return 0;
}

void metrics_close(struct agent *a)
{
	struct metrics *m = a->metrics;
	if (m == NULL)
		return;
	if (m->tls_on) {
		m->tls_on = false;
		metrics_tls_close(&m->tls);
	}
	if (m->handles_on) {
		m->handles_on = false;
		uv_close((uv_handle_t *)&m->poll, NULL);
		uv_close((uv_handle_t *)&m->timer, NULL);
		uv_close((uv_handle_t *)&m->scan, NULL);
	}
	if (m->d != NULL) {
		MHD_stop_daemon(m->d);
		m->d = NULL;
	}
}

void metrics_free(struct agent *a)
{
	free(a->metrics);
	a->metrics = NULL;
}
