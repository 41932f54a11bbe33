/*
 * bench_sim_state.c — node-state gossip figures, measured on the
 * deterministic node-state simulator (tests/sim/sim_state.h). Virtual
 * time, so the figures do not depend on the machine; only "wall" and
 * "RSS" do.
 *
 *   bench_sim_state [--n N] [--changes C] [--record-bytes B] [--loss P]
 *                   [--load-seconds S] [--idle-seconds S] [--period-ms P] [--lazy-only]
 *                   [--sync-ms MS] [--fanout F] [--only spread|traffic|policy]
 *     --n N            one cluster size (default: 100 and 1000)
 *     --changes C      changes measured for spread time (default 300 at
 *                      N <= 100, 200 above)
 *     --record-bytes B record size (default 800: a packed mv.NodeState of a
 *                      host with about ten VMs)
 *     --loss P         message loss for the spread measure (default 0 and
 *                      0.01)
 *     --load-seconds S seconds measured under changes (default 10)
 *     --idle-seconds S seconds measured idle (default 10)
 *     --period-ms P    each host changes once per P ms under load (default
 *                      10000: the "one change per host per 10 s")
 *     --lazy-only      under load, only changes that are not urgent
 *     --sync-ms MS     anti-entropy interval (default: the core's, 1000)
 *     --fanout F       push fanout (default: the core's, 3)
 *     --only W         run only the spread, traffic or policy measures
 *
 * What it measures, per cluster size:
 *   spread     time from a host's urgent change until every live node holds
 *              it (p50, p99, max over changes on random hosts, one every
 *              200 ms); also how many nodes the push alone reached;
 *   idle       bytes and messages per node per second with nothing changing;
 *   policy     how often a host's load is published under the previous
 *              policy (every 10 s) and the threshold one (nodestate_policy),
 *              on a model of load (bench_policy);
 *   load       the same with every host changing once per period (phases
 *              spread evenly over it), all urgent (push + anti-
 *              entropy) or none urgent (anti-entropy only), and the spread
 *              p50/p99 under that load; measured after a warm-up (3 s,
 *              10 s without pushes) so that it is the steady state.
 * Bytes are exact wire bytes: state_codec_frame_size() of every message
 * sent (4-byte frame header + packed Envelope; TLS record overhead not
 * included). Conditions: delay 1 ms + uniform jitter 0..1 ms, sync every
 * 1000 ms, push fanout 3, derived hops, max message 512 KiB.
 *
 * It prints figures and never fails on them (a benchmark is not a test).
 * Each cluster prints "sim seed=N"; MV_SIM_SEED=N replays it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_state.h"

static uint32_t record_bytes = 800;
static struct nstate_config tmpl; /* every core's config (--sync-ms, --fanout) */

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, size_t n, double p)
{
	if (n == 0)
		return -1;
	size_t k = (size_t)ceil(p / 100.0 * (double)n);
	if (k > 0)
		k--;
	if (k >= n)
		k = n - 1;
	return v[k];
}

static struct ssim *make(int n, double loss)
{
	struct ssim *s = ssim_new(n, &tmpl, 0);
	ssim_set_record_bytes(s, record_bytes);
	ssim_set_loss(s, loss);
	ssim_prefill(s);
	ssim_run_for(s, 2000);
	return s;
}

/* Per node per second over `secs`: bytes, messages, the busiest node's
 * bytes, and bytes by message type (SYNC, DIGEST, DELTA, PUSH, TREE). */
static void traffic(struct ssim *s, double secs, double *bytes, double *msgs, double *max_bytes,
                    double *by_type)
{
	int n = ssim_size(s);
	double b = 0, m = 0, mx = 0;
	for (int t = 0; t < SSIM_TYPES; t++)
		by_type[t] = 0;
	for (int i = 0; i < n; i++) {
		const struct ssim_traffic *tr = ssim_traffic(s, i);
		b += (double)tr->bytes;
		m += (double)tr->msgs;
		if ((double)tr->bytes > mx)
			mx = (double)tr->bytes;
		for (int t = 0; t < SSIM_TYPES; t++)
			by_type[t] += (double)tr->bytes_by_type[t];
	}
	*bytes = b / n / secs;
	*msgs = m / n / secs;
	*max_bytes = mx / secs;
	for (int t = 0; t < SSIM_TYPES; t++)
		by_type[t] = by_type[t] / n / secs;
}

/* Spread percentiles of the changes tracked so far (unfinished count). */
static void spread_stats(struct ssim *s, int64_t *p50, int64_t *p99, int64_t *max, size_t *done,
                         size_t *total)
{
	const struct ssim_change *ch;
	size_t n = ssim_changes(s, &ch);
	int64_t *v = malloc((n + 1) * sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (ch[i].spread >= 0)
			v[k++] = ch[i].spread;
	qsort(v, k, sizeof(*v), cmp_i64);
	*p50 = pct(v, k, 50);
	*p99 = pct(v, k, 99);
	*max = k ? v[k - 1] : -1;
	*done = k;
	*total = n;
	free(v);
}

static void bench_spread(int n, double loss, int changes)
{
	double w0 = wall_s();
	struct ssim *s = make(n, loss);
	ssim_changes_reset(s);
	double pushed_sum = 0;
	int pushed_min = n;
	for (int k = 0; k < changes; k++) {
		int host = (int)(ssim_rand(s) % (uint64_t)n);
		const struct ssim_change *c = ssim_change(s, host, true);
		uint64_t inc = c->incarnation, ver = c->version;
		/* 50 ms: the push is over (hops * 2 ms), anti-entropy has not
		 * had time to matter */
		ssim_run_for(s, 50);
		int have = 0;
		for (int o = 0; o < n; o++)
			have += ssim_has(s, o, host, inc, ver);
		pushed_sum += have;
		if (have < pushed_min)
			pushed_min = have;
		ssim_run_for(s, 150);
	}
	ssim_run_for(s, 15000);
	int64_t p50, p99, max;
	size_t done, total;
	spread_stats(s, &p50, &p99, &max, &done, &total);
	long rss, peak;
	ssim_rss_kib(&rss, &peak);
	printf("| spread, urgent change -> every node | %5d | %4.1f%% | %3" PRIu32
	       " B | p50 %5" PRId64 " ms, p99 %5" PRId64 " ms, max %5" PRId64
	       " ms (%zu/%zu done); push alone reached %.1f%% avg, %d min |\n",
	       n, loss * 100, record_bytes, p50, p99, max, done, total,
	       100.0 * pushed_sum / changes / n, pushed_min);
	fprintf(stderr,
	        "  [spread n=%d loss=%.2f: wall %.1f s, peak RSS %ld MiB, rejected %" PRIu64
	        " regress %" PRIu64 "]\n",
	        n, loss, wall_s() - w0, peak / 1024, ssim_counters(s)->rejected,
	        ssim_counters(s)->regress);
	ssim_free(s);
}

static void bench_traffic(int n, double load_secs, uint32_t period_ms, double idle_secs,
                          bool lazy_only)
{
	double w0 = wall_s();
	struct ssim *s = make(n, 0.0);
	/* idle */
	ssim_traffic_reset(s);
	ssim_run_for(s, (uint64_t)(idle_secs * 1000));
	double b, m, mx, bt[SSIM_TYPES];
	traffic(s, idle_secs, &b, &m, &mx, bt);
	printf("| traffic, idle (%.0f s) | %5d | 0%% | %3" PRIu32
	       " B | %.0f B/s per node (%.2f msg/s; busiest node %.0f B/s) [target <= 300 B/s, "
	       "flat 1k..10k] |\n",
	       idle_secs, n, record_bytes, b, m, mx);
	fflush(stdout);
	for (int urgent = lazy_only ? 0 : 1; urgent >= 0; urgent--) {
		ssim_changes_reset(s);
		/* one change per host per period: every 10 ms, the next
		 * n * 10 / period hosts in a fixed random order change */
		int *order = malloc((size_t)n * sizeof(*order));
		for (int i = 0; i < n; i++)
			order[i] = i;
		for (int i = n - 1; i > 0; i--) {
			int j = (int)(ssim_rand(s) % (uint64_t)(i + 1));
			int t = order[i];
			order[i] = order[j];
			order[j] = t;
		}
		int next = 0;
		double due = 0;
		/* warm up past the spread time, so that what is measured is the
		 * steady state: ~1 s with pushes, several s by anti-entropy */
		double warm = urgent ? 3.0 : 10.0;
		int slots = (int)((warm + load_secs) * 100);
		for (int slot = 0; slot < slots; slot++) {
			if (slot == (int)(warm * 100)) {
				ssim_traffic_reset(s);
				ssim_changes_reset(s);
			}
			due += (double)n * 10.0 / period_ms;
			for (; due >= 1.0; due -= 1.0) {
				ssim_change(s, order[next], urgent);
				next = (next + 1) % n;
			}
			ssim_run_for(s, 10);
		}
		traffic(s, load_secs, &b, &m, &mx, bt);
		/* let the last changes finish before reading their spread */
		ssim_run_for(s, 10000);
		int64_t p50, p99, max;
		size_t done, total;
		spread_stats(s, &p50, &p99, &max, &done, &total);
		printf("| traffic, 1 change/host/%.0f s, %s | %5d | 0%% | %3" PRIu32
		       " B | %.0f B/s per node (%.1f msg/s; records: push %.0f, delta %.0f B/s; "
		       "digests: sync %.0f, tree %.0f, digest %.0f B/s); spread p50 %" PRId64
		       " ms, p99 %" PRId64 " ms [target <= 1.2 KB/s state share] |\n",
		       period_ms / 1000.0, urgent ? "all urgent" : "none urgent", n, record_bytes,
		       b, m, bt[NSTATE_PUSH], bt[NSTATE_DELTA], bt[NSTATE_SYNC], bt[SSIM_TYPES - 1],
		       bt[NSTATE_DIGEST], p50, p99);
		fflush(stdout);
		free(order);
		ssim_run_for(s, 5000);
	}
	long rss, peak;
	ssim_rss_kib(&rss, &peak);
	fprintf(stderr, "  [traffic n=%d: wall %.1f s, peak RSS %ld MiB, rejected %" PRIu64 "]\n",
	        n, wall_s() - w0, peak / 1024, ssim_counters(s)->rejected);
	ssim_free(s);
}

/* ---- the load publication policy (no simulator: a model of load) ---------- */

static uint64_t pol_rng = 0x9e3779b97f4a7c15ULL;

static double pol_uniform(void)
{
	pol_rng ^= pol_rng << 13;
	pol_rng ^= pol_rng >> 7;
	pol_rng ^= pol_rng << 17;
	return ((double)(pol_rng >> 11) + 0.5) / 9007199254740992.0;
}

static double pol_normal(void)
{
	return sqrt(-2.0 * log(pol_uniform())) * cos(6.283185307179586 * pol_uniform());
}

/* Publications per host per hour of a 1-minute load average sampled every
 * 5 s (NODESTATE_REFRESH_MS): each host's load is mean-reverting noise
 * around its own base (0.5..8; AR(1), 0.9 per sample, noise sd 0.1 *
 * sqrt(base)) on top of a drift of the base by +-`drift` over the hour
 * (0: steady). Old policy: republished every 10 s whenever it differs;
 * new: nstate_threshold_crossed with the given steps (defaults 1.0, 50%) and at
 * least 10 s apart, as nodestate_policy does. */
static void bench_policy(int hosts, double drift, double abs_step, double rel_step)
{
	const int samples = 3600 / 5;
	const struct nstate_threshold th = {.abs_step = abs_step, .rel_step = rel_step};
	double old_pubs = 0, new_pubs = 0;
	for (int h = 0; h < hosts; h++) {
		double base = 0.5 + 7.5 * pol_uniform(), x = base, pub = x;
		int64_t last_old = 0, last_new = 0;
		for (int k = 1; k <= samples; k++) {
			int64_t t = (int64_t)k * 5000;
			double b = base * (1.0 + drift * sin(6.283185307179586 * k / samples));
			x = b + 0.9 * (x - b) + 0.1 * sqrt(b) * pol_normal();
			if (x < 0)
				x = 0;
			if (t - last_old >= 10000) { /* the load always differs */
				old_pubs++;
				last_old = t;
			}
			if (t - last_new >= 10000 && nstate_threshold_crossed(&th, pub, x)) {
				new_pubs++;
				last_new = t;
				pub = x;
			}
		}
	}
	old_pubs /= hosts;
	new_pubs /= hosts;
	printf(
	    "| load publications, %s (model, %d hosts, 1 h) | - | - | - | old policy %.0f per host "
	    "per hour, threshold max(%.1f, %.0f%%) %.1f: at N = 10,000 every node receives "
	    "%.1f -> %.2f records/s |\n",
	    drift > 0 ? "base drifting +-50% over the hour" : "steady base", hosts, old_pubs,
	    abs_step, rel_step * 100, new_pubs, 10000 * old_pubs / 3600, 10000 * new_pubs / 3600);
}

int main(int argc, char **argv)
{
	int sizes[2] = {100, 1000}, n_sizes = 2;
	int changes = 0;
	double losses[2] = {0.0, 0.01};
	int n_losses = 2;
	double load = 0, idle = 10;
	uint32_t period_ms = 10000;
	nstate_config_default(&tmpl);
	bool do_spread = true, do_traffic = true, do_policy = true, lazy_only = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
			sizes[0] = atoi(argv[++i]);
			n_sizes = 1;
		} else if (strcmp(argv[i], "--changes") == 0 && i + 1 < argc) {
			changes = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--record-bytes") == 0 && i + 1 < argc) {
			record_bytes = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--loss") == 0 && i + 1 < argc) {
			losses[0] = atof(argv[++i]);
			n_losses = 1;
		} else if (strcmp(argv[i], "--load-seconds") == 0 && i + 1 < argc) {
			load = atof(argv[++i]);
		} else if (strcmp(argv[i], "--idle-seconds") == 0 && i + 1 < argc) {
			idle = atof(argv[++i]);
		} else if (strcmp(argv[i], "--period-ms") == 0 && i + 1 < argc) {
			period_ms = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--sync-ms") == 0 && i + 1 < argc) {
			tmpl.sync_interval_ms = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--fanout") == 0 && i + 1 < argc) {
			tmpl.push_fanout = (uint32_t)atoi(argv[++i]);
		} else if (strcmp(argv[i], "--lazy-only") == 0) {
			lazy_only = true;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			i++;
			do_spread = strcmp(argv[i], "spread") == 0;
			do_traffic = strcmp(argv[i], "traffic") == 0;
			do_policy = strcmp(argv[i], "policy") == 0;
		} else {
			fprintf(
			    stderr,
			    "usage: %s [--n N] [--changes C] [--record-bytes B] [--loss P] "
			    "[--load-seconds S] [--idle-seconds S] [--period-ms P] [--lazy-only] "
			    "[--sync-ms MS] [--fanout F] "
			    "[--only spread|traffic|policy]\n",
			    argv[0]);
			return 2;
		}
	}
	if (period_ms == 0 || idle <= 0) {
		fprintf(stderr, "--period-ms and --idle-seconds must be positive\n");
		return 2;
	}
	printf("node-state gossip, simulator: delay 1 ms + 0..1 ms jitter, sync %" PRIu32
	       " ms, fanout %" PRIu32 ", hops ceil(log_fanout N)+1, max msg 512 KiB\n\n",
	       tmpl.sync_interval_ms, tmpl.push_fanout);
	printf("| measure | N | loss | record | result |\n|---|---|---|---|---|\n");
	fflush(stdout);
	if (do_policy) {
		for (int d = 0; d < 2; d++) {
			bench_policy(1000, d * 0.5, 0.5, 0.25);
			bench_policy(1000, d * 0.5, 1.0, 0.5); /* the defaults */
		}
	}
	for (int k = 0; k < n_sizes; k++) {
		int n = sizes[k];
		for (int l = 0; do_spread && l < n_losses; l++) {
			bench_spread(n, losses[l], changes ? changes : (n <= 100 ? 300 : 200));
			fflush(stdout);
		}
		if (do_traffic)
			bench_traffic(n, load > 0 ? load : 10.0, period_ms, idle, lazy_only);
		fflush(stdout);
	}
	return 0;
}
