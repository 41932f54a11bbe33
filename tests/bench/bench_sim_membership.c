/*
 * bench_sim_membership.c — failure-detection figures for the membership
 * core, measured on the deterministic simulator (virtual time, so the
 * figures do not depend on the machine; only "wall" and "RSS" do).
 *
 *   bench_sim_membership [detect|false|traffic|big|all] [options]
 *   bench_sim_membership [crash|lossy|pause|gray|issue11] [--n N] [--runs R]
 *     the failure-detector figures of issue 11 (default n=5): kill -9 on a
 *     live host (refused) vs a silent crash; false DEAD at 36% loss on every
 *     link (R seeds x M minutes); pauses of 3-6 s (SIGSTOP); one gray host
 *     at 50% loss both ways (R seeds x M minutes). Seeds are 1..R, so the
 *     figures replay exactly.
 *     --n N        cluster size for detect/false/traffic (default: 100 and 1000)
 *     --runs R     crashes measured per size (default 20 at n<=100, 5 above)
 *     --minutes M  simulated minutes for the false-death run (default 10)
 *     --big N      size for the "runs at all" mode (default 10000)
 *     --big-secs S simulated seconds the big mode runs (default 30; the
 *                  issue's figure is 600)
 *   bench_sim_membership bootstrap [--n N]   (issue 12, default n=2000)
 *     N nodes started within 1 s, each knowing the first 3 as seeds: time
 *     until every node knows all N ALIVE in one view (target <= 20 s)
 *   bench_sim_membership scale [--n N] [--window-s W]   (issue 12)
 *     idle membership bytes per node per second at 1k, 2k, 5k, 10k (up to
 *     N), W simulated s measured (default 300: a push-pull interval at
 *     10k); target <= 400 B/s and 10k/1k <= 1.2
 *     --rss-cap-mib M  stop the big run early past this RSS (default 4096)
 *     --full       also run the false-death measure at n=1000
 *
 * It prints figures and the targets next to them; it never fails on
 * timing (a benchmark is not a test). Exit status is non-zero only if the
 * simulation itself could not run (e.g. a cluster never converged).
 * Seeds: each cluster prints "sim seed=N"; MV_SIM_SEED=N replays it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

struct row {
	char what[64];
	int n;
	char value[48];
	char target[32];
};

static struct row rows[64];
static int n_rows;

static void row_add(const char *what, int n, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void row_add(const char *what, int n, const char *target, const char *fmt, ...)
{
	if (n_rows >= (int)(sizeof(rows) / sizeof(rows[0])))
		return;
	struct row *r = &rows[n_rows++];
	snprintf(r->what, sizeof(r->what), "%s", what);
	r->n = n;
	snprintf(r->target, sizeof(r->target), "%s", target);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->value, sizeof(r->value), fmt, ap);
	va_end(ap);
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static int64_t pct(const int64_t *v, int n, double q)
{
	if (n == 0)
		return -1;
	int k = (int)ceil(q * n) - 1;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

/* A converged cluster of n, or NULL (reported) if it never converged. */
static struct sim *cluster(int n, uint64_t timeout_ms)
{
	double w = wall_s();
	struct sim *s = sim_new(n, NULL, 0);
	sim_join_all(s, 0, n <= 100 ? 500 : (uint32_t)n * 2);
	int64_t t = sim_run_until(s, sim_pred_all_alive, NULL, timeout_ms);
	long rss, peak;
	sim_rss_kib(&rss, &peak);
	printf("  n=%d joined through n0: one view after %.1f s simulated (%.1f s wall, RSS %ld "
	       "MiB)\n",
	       n, t / 1000.0, wall_s() - w, rss / 1024);
	if (t < 0) {
		printf("  n=%d: no single view within %.0f s simulated (seed=%" PRIu64 ")\n", n,
		       timeout_ms / 1000.0, sim_seed(s));
		sim_free(s);
		return NULL;
	}
	fflush(stdout);
	return s;
}

/* ---------------------------------------------------------------- detect */

static int bench_detect(int n, int runs)
{
	printf("\n[detect] n=%d, 1%% loss on every link, %d crashes\n", n, runs);
	struct sim *s = cluster(n, 300000);
	if (s == NULL)
		return -1;
	const struct swim_config *cfg = swim_get_config(sim_core(s, 0));
	uint64_t smax = sim_suspicion_max_ms(cfg, n);
	sim_set_loss(s, -1, -1, 0.01);
	sim_run_for(s, 10000);
	int64_t *sus = calloc((size_t)runs, sizeof(*sus));
	int64_t *dead = calloc((size_t)runs, sizeof(*dead));
	int ok = 0, false_dead = 0;
	double w = wall_s();
	for (int r = 0; r < runs; r++) {
		int v = 1 + (int)(sim_rand(s) % (uint64_t)(n - 1));
		sim_stats_reset(s);
		uint64_t t0 = sim_now(s);
		sim_crash(s, v);
		int64_t all = sim_run_until_all_see(s, v, SWIM_DEAD, smax + 60000);
		const struct sim_member_stats *st = sim_stats(s, v);
		for (int i = 0; i < n; i++)
			if (i != v)
				false_dead += (int)sim_stats(s, i)->dead;
		if (all < 0 || st->first_suspect_at < 0) {
			printf("  run %d: n%d not DEAD everywhere within %.0f s (seed=%" PRIu64
			       ")\n",
			       r, v, (smax + 60000) / 1000.0, sim_seed(s));
		} else {
			sus[ok] = st->first_suspect_at - (int64_t)t0;
			dead[ok] = all;
			ok++;
			printf("  run %d: victim n%d suspected +%" PRId64
			       " ms, DEAD at all members "
			       "+%" PRId64 " ms\n",
			       r, v, st->first_suspect_at - (int64_t)t0, all);
		}
		/* Bring it back (same name, new address) so the next run starts
		 * from a full cluster. */
		char addr[SWIM_ADDR_MAX];
		snprintf(addr, sizeof(addr), "10.250.%d.%d:7946", (r + 1) & 0xff, v & 0xff);
		sim_restart(s, v, addr, 0);
		sim_run_until(s, sim_pred_all_alive, NULL, 60000);
		sim_run_for(s, 5000);
		fflush(stdout);
	}
	qsort(sus, (size_t)ok, sizeof(*sus), cmp_i64);
	qsort(dead, (size_t)ok, sizeof(*dead), cmp_i64);
	char what[64];
	snprintf(what, sizeof(what), "first suspicion p50/p99 (%d runs)", ok);
	row_add(what, n, "~probe 1 s", "%" PRId64 " / %" PRId64 " ms", pct(sus, ok, 0.5),
	        pct(sus, ok, 0.99));
	snprintf(what, sizeof(what), "DEAD at all members p50/p99");
	row_add(what, n, n <= 100 ? "< 5000 ms" : "-", "%" PRId64 " / %" PRId64 " ms",
	        pct(dead, ok, 0.5), pct(dead, ok, 0.99));
	row_add("  suspicion min/max for n (config)", n, "-", "%" PRIu64 " / %" PRIu64 " ms",
	        sim_suspicion_min_ms(cfg, n), smax);
	row_add("  healthy nodes DEAD during crashes", n, "0", "%d", false_dead);
	printf("  wall %.1f s for %d crashes\n", wall_s() - w, runs);
	free(sus);
	free(dead);
	sim_free(s);
	return ok == runs ? 0 : -1;
}

/* ------------------------------------------------------------ false death */

static int bench_false(int n, int minutes)
{
	printf("\n[false] n=%d, 10%% loss on every link, %d simulated minutes\n", n, minutes);
	struct sim *s = cluster(n, 300000);
	if (s == NULL)
		return -1;
	sim_stats_reset(s);
	sim_set_loss(s, -1, -1, 0.10);
	double w = wall_s();
	sim_run_for(s, (uint64_t)minutes * 60000);
	int victims = 0;
	uint32_t max_lh = 0;
	for (int i = 0; i < n; i++) {
		if (sim_stats(s, i)->dead > 0)
			victims++;
		if (sim_stats(s, i)->max_local_health > max_lh)
			max_lh = sim_stats(s, i)->max_local_health;
	}
	printf("  %.1f s wall; suspicions %" PRIu64 ", DEAD declarations %" PRIu64
	       " (about %d members), max awareness %u\n",
	       wall_s() - w, sim_total_suspected(s), sim_total_dead(s), victims, max_lh);
	char what[64];
	snprintf(what, sizeof(what), "false DEAD, 10%% loss, %d min", minutes);
	row_add(what, n, "0", "%" PRIu64 " (%d members)", sim_total_dead(s), victims);
	snprintf(what, sizeof(what), "  suspicions (refuted), 10%% loss, %d min", minutes);
	row_add(what, n, "-", "%" PRIu64, sim_total_suspected(s));
	if (sim_total_dead(s) > 0)
		printf("  replay: MV_SIM_SEED=%" PRIu64 "\n", sim_seed(s));
	sim_free(s);
	return 0;
}

/* ---------------------------------------------------------------- traffic */

static int bench_traffic(int n)
{
	printf("\n[traffic] n=%d, idle steady state, no loss, 60 s measured after 120 s quiet\n",
	       n);
	struct sim *s = cluster(n, 300000);
	if (s == NULL)
		return -1;
	/* Let the join's broadcasts run out their retransmit budget first. */
	sim_run_for(s, 120000);
	sim_stats_reset(s);
	double w = wall_s();
	const uint64_t ms = 60000;
	sim_run_for(s, ms);
	uint64_t msgs = 0, bytes = 0, by_type[6] = {0};
	for (int i = 0; i < n; i++) {
		const struct sim_traffic *t = sim_traffic(s, i);
		msgs += t->msgs;
		bytes += t->bytes;
		for (int k = 0; k < 6; k++)
			by_type[k] += t->msgs_by_type[k];
	}
	double secs = ms / 1000.0;
	printf("  %.1f s wall for 60 s simulated; per node per s by type:", wall_s() - w);
	for (int k = 0; k < 6; k++)
		printf(" %s %.2f", swim_msg_type_name((enum swim_msg_type)k),
		       by_type[k] / secs / n);
	printf("\n");
	row_add("messages sent per node per s (idle)", n, "-", "%.2f", msgs / secs / n);
	row_add("bytes sent per node per s (idle)", n, "-", "%.0f B (%.0f B/msg)", bytes / secs / n,
	        msgs ? (double)bytes / (double)msgs : 0.0);
	sim_free(s);
	return 0;
}

/* ------------------------------------------------------ bootstrap, scale */

/* A cluster of n started at once (every node joins through the first 3
 * within spread_ms), run until every node knows every node ALIVE in one
 * view, checked every 100 simulated ms (a full check is O(N^2) at worst,
 * O(N) while views differ). Returns the simulated ms it took, -1 if not
 * within timeout_ms; the sim stays in *out. */
static int64_t bench_start(int n, uint32_t spread_ms, uint64_t timeout_ms, struct sim **out)
{
	struct sim *s = sim_new(n, NULL, 0);
	sim_start_all(s, 3, spread_ms);
	uint64_t t0 = sim_now(s);
	int64_t t = -1;
	while (sim_now(s) - t0 < timeout_ms) {
		sim_run_for(s, 100);
		if (sim_all_alive(s)) {
			t = (int64_t)(sim_now(s) - t0);
			break;
		}
	}
	*out = s;
	return t;
}

static uint64_t bench_bytes(struct sim *s, uint64_t by_type[6])
{
	uint64_t bytes = 0;
	for (int i = 0; i < sim_size(s); i++) {
		const struct sim_traffic *t = sim_traffic(s, i);
		bytes += t->bytes;
		for (int k = 0; by_type != NULL && k < 6; k++)
			by_type[k] += t->msgs_by_type[k];
	}
	return bytes;
}

static int bench_bootstrap(int n)
{
	printf("\n[bootstrap] n=%d started within 1 s, each knowing 3 seeds; one all-ALIVE view "
	       "checked every 100 ms\n",
	       n);
	double w = wall_s();
	struct sim *s;
	int64_t t = bench_start(n, 1000, 600000, &s);
	double secs = sim_now(s) / 1000.0;
	printf("  one view (all %d ALIVE everywhere) after %.1f s simulated (%.1f s wall); "
	       "%.0f B/node/s sent meanwhile\n",
	       n, t / 1000.0, wall_s() - w, bench_bytes(s, NULL) / secs / n);
	if (t >= 0)
		row_add("bootstrap: one all-ALIVE view at", n, "<= 20 s", "%.1f s", t / 1000.0);
	else
		row_add("bootstrap: one all-ALIVE view at", n, "<= 20 s", "not in 600 s");
	sim_free(s);
	fflush(stdout);
	return t >= 0 ? 0 : -1;
}

/* Idle bytes per node per second at n: started at once, one view, 120 s
 * quiet, then window_s measured (at least one push-pull interval, which
 * grows with log N up to 300 s at 10,000, so each node's push-pulls are in
 * the figure). Returns B/node/s, or -1. */
static double bench_scale_one(int n, int window_s)
{
	printf("\n[scale] n=%d: start at once, 120 s quiet, %d s idle measured\n", n, window_s);
	double w = wall_s();
	struct sim *s;
	int64_t t = bench_start(n, 1000, 900000, &s);
	long rss, peak;
	sim_rss_kib(&rss, &peak);
	printf("  one view after %.1f s simulated (%.1f s wall, RSS %ld MiB)\n", t / 1000.0,
	       wall_s() - w, rss / 1024);
	if (t < 0) {
		printf("  n=%d: no one view (seed=%" PRIu64 ")\n", n, sim_seed(s));
		sim_free(s);
		return -1;
	}
	sim_run_for(s, 120000);
	sim_stats_reset(s);
	w = wall_s();
	sim_run_for(s, (uint64_t)window_s * 1000);
	uint64_t by_type[6] = {0};
	double bps = bench_bytes(s, by_type) / (double)window_s / n;
	printf("  %.1f s wall for %d s simulated; messages per node per s:", wall_s() - w,
	       window_s);
	for (int k = 0; k < 6; k++)
		printf(" %s %.3f", swim_msg_type_name((enum swim_msg_type)k),
		       by_type[k] / (double)window_s / n);
	printf("\n  bytes per node per s (idle): %.0f\n", bps);
	row_add("idle membership bytes per node per s", n, "<= 400 B/s", "%.0f B", bps);
	sim_free(s);
	fflush(stdout);
	return bps;
}

static int bench_scale(int only_n, int window_s)
{
	const int sizes[] = {1000, 2000, 5000, 10000};
	double first = -1, last = -1;
	int first_n = 0, last_n = 0;
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		if (only_n > 0 && sizes[k] > only_n)
			break;
		double b = bench_scale_one(sizes[k], window_s);
		if (b < 0)
			return -1;
		if (first < 0) {
			first = b;
			first_n = sizes[k];
		}
		last = b;
		last_n = sizes[k];
	}
	if (last_n > first_n) {
		char what[64];
		snprintf(what, sizeof(what), "  ratio bytes/node/s n=%d / n=%d", last_n, first_n);
		row_add(what, 0, "<= 1.2", "%.2f", last / first);
	}
	return 0;
}

/* -------------------------------------------------------------------- big */

/* Joins n nodes through n0 (spread over 10 s) and runs 30 simulated
 * seconds, one second at a time, stopping early if RSS passes cap_mib (the
 * member tables grow as N^2: better a figure than an OOM on a shared box),
 * then up to 60 more until every node holds the same view (checked once a
 * simulated second: a full comparison is N^2 lookups). */
static int bench_big(int n, long cap_mib, int run_secs)
{
	printf("\n[big] n=%d: join and run ~30 simulated s (does it run at all?), RSS cap %ld "
	       "MiB\n",
	       n, cap_mib);
	long rss0, peak0, rss1, peak1, rss2 = 0, peak2 = 0;
	sim_rss_kib(&rss0, &peak0);
	double w0 = wall_s();
	struct sim *s = sim_new(n, NULL, 0);
	sim_rss_kib(&rss1, &peak1);
	sim_join_all(s, 0, 10000);
	int secs = 0;
	bool capped = false;
	while (secs < run_secs) {
		sim_run_for(s, 1000);
		secs++;
		sim_rss_kib(&rss2, &peak2);
		if (secs % (run_secs > 60 ? 30 : 5) == 0 || rss2 / 1024 > cap_mib) {
			printf("  t=%2d s: wall %.1f s, RSS %ld MiB\n", secs, wall_s() - w0,
			       rss2 / 1024);
			fflush(stdout);
		}
		if (rss2 / 1024 > cap_mib) {
			capped = true;
			break;
		}
	}
	int conv_secs = -1; /* simulated s at which one view was seen, -1: never */
	while (!capped && secs < run_secs + 60) {
		if (sim_one_view(s)) {
			conv_secs = secs;
			break;
		}
		sim_run_for(s, 1000);
		secs++;
		sim_rss_kib(&rss2, &peak2);
		if (rss2 / 1024 > cap_mib) {
			printf("  t=%2d s: wall %.1f s, RSS %ld MiB\n", secs, wall_s() - w0,
			       rss2 / 1024);
			capped = true;
		}
	}
	double w1 = wall_s();
	size_t min_known = SIZE_MAX, sum_known = 0;
	for (int i = 0; i < n; i++) {
		size_t k = swim_member_count(sim_core(s, i));
		sum_known += k;
		if (k < min_known)
			min_known = k;
	}
	uint64_t msgs = 0, bytes = 0;
	for (int i = 0; i < n; i++) {
		msgs += sim_traffic(s, i)->msgs;
		bytes += sim_traffic(s, i)->bytes;
	}
	bool one = conv_secs >= 0;
	double per_member = sum_known > (size_t)n
	                        ? (double)(rss2 - rss1) * 1024.0 / (double)(sum_known - (size_t)n)
	                        : 0.0;
	printf("  %s after %d simulated s: wall %.1f s; RSS %ld MiB (after sim_new %ld MiB)\n",
	       capped ? "STOPPED at the RSS cap" : "done", secs, w1 - w0, rss2 / 1024, rss1 / 1024);
	if (conv_secs >= 0)
		printf("  one view (every node the same members, states, incarnations) at t=%d s\n",
		       conv_secs);
	printf("  members known per node: min %zu, mean %.0f of %d; one view: %s; %" PRIu64
	       " msgs, %.1f MiB; about %.0f B of RSS per member entry\n",
	       min_known, (double)sum_known / n, n, one ? "yes" : "no", msgs, bytes / 1048576.0,
	       per_member);
	if (per_member > 0)
		printf("  full mesh estimate: %d x %d entries x %.0f B = %.1f GiB\n", n, n,
		       per_member, (double)n * n * per_member / 1073741824.0);
	char what[64];
	snprintf(what, sizeof(what), "runs at all: simulated s in wall s%s",
	         capped ? " (capped)" : "");
	row_add(what, n, "600 s in <= 1800 s", "%d s in %.1f s", secs, w1 - w0);
	row_add("  RSS (after sim_new)", n, "<= 8192 MiB", "%ld MiB (%ld MiB)", rss2 / 1024,
	        rss1 / 1024);
	row_add("  peak RSS", n, "<= 8192 MiB", "%ld MiB", peak2 / 1024);
	row_add("  RSS per member entry (all cores)", n, "-", "%.0f B", per_member);
	row_add("  members known per node min/mean", n, "-", "%zu / %.0f", min_known,
	        (double)sum_known / n);
	if (conv_secs >= 0)
		row_add("  one view at (simulated)", n, "-", "%d s", conv_secs);
	else
		row_add("  one view at (simulated)", n, "-", "not within %d s", secs);
	sim_free(s);
	return 0;
}

/* ------------------------------------------------------------- issue 11 */

/* Event counts per (observer, type, target) for the issue-11 modes. */
struct evcount {
	int n;
	uint32_t *dead;     /* [obs * n + target]: DEAD events */
	uint32_t *own_dead; /* of which the observer's own verdict (timeout/refused) */
	uint32_t *revived;  /* ALIVE after DEAD (a false death healed) */
};

static void evcount_cb(struct sim *s, int obs, const struct swim_event *ev, void *arg)
{
	struct evcount *c = arg;
	int t = sim_index(s, ev->name);
	if (t < 0 || obs < 0 || obs >= c->n)
		return;
	size_t k = (size_t)obs * (size_t)c->n + (size_t)t;
	if (ev->type == SWIM_EV_MEMBER_DEAD) {
		c->dead[k]++;
		if (strncmp(ev->cause, "suspicion timeout", 17) == 0 ||
		    strncmp(ev->cause, "connection refused", 18) == 0)
			c->own_dead[k]++;
	} else if (ev->type == SWIM_EV_MEMBER_ALIVE && strstr(ev->cause, "back from dead")) {
		c->revived[k]++;
	}
}

static void evcount_init(struct evcount *c, int n)
{
	c->n = n;
	c->dead = calloc((size_t)n * (size_t)n, sizeof(uint32_t));
	c->own_dead = calloc((size_t)n * (size_t)n, sizeof(uint32_t));
	c->revived = calloc((size_t)n * (size_t)n, sizeof(uint32_t));
}

static void evcount_free(struct evcount *c)
{
	free(c->dead);
	free(c->own_dead);
	free(c->revived);
}

static struct sim *cluster_seeded(int n, uint64_t seed)
{
	struct sim *s = sim_new(n, NULL, seed);
	sim_join_all(s, 0, 500);
	if (sim_run_until(s, sim_pred_all_alive, NULL, 120000) < 0) {
		printf("  n=%d: no single view (seed=%" PRIu64 ")\n", n, sim_seed(s));
		sim_free(s);
		return NULL;
	}
	sim_run_for(s, 5000);
	return s;
}

/* kill -9 on a live host (refusals) vs a silent crash (host gone), no loss. */
static int bench_crash(int n, int runs)
{
	printf("\n[crash] n=%d, no loss, %d runs each: kill (refused) vs silent crash\n", n, runs);
	int64_t *t[2];
	int ok[2] = {0, 0}, fd = 0;
	for (int kind = 0; kind < 2; kind++) {
		t[kind] = calloc((size_t)runs, sizeof(int64_t));
		for (int r = 0; r < runs; r++) {
			struct sim *s = cluster_seeded(n, 1000 + (uint64_t)r);
			if (s == NULL)
				return -1;
			int v = 1 + (int)(sim_rand(s) % (uint64_t)(n - 1));
			sim_stats_reset(s);
			if (kind == 0)
				sim_kill(s, v);
			else
				sim_crash(s, v);
			int64_t all = sim_run_until_all_see(s, v, SWIM_DEAD, 120000);
			for (int i = 0; i < n; i++)
				if (i != v)
					fd += (int)sim_stats(s, i)->dead;
			if (all >= 0)
				t[kind][ok[kind]++] = all;
			sim_free(s);
		}
		qsort(t[kind], (size_t)ok[kind], sizeof(int64_t), cmp_i64);
		printf("  %s: DEAD at every survivor p50 %" PRId64 " ms, max %" PRId64
		       " ms (%d/%d runs)\n",
		       kind ? "silent crash" : "kill (refused)", pct(t[kind], ok[kind], 0.5),
		       ok[kind] ? t[kind][ok[kind] - 1] : -1, ok[kind], runs);
	}
	row_add("kill -9 (refused): DEAD everywhere p50/max", n, "<= 0.4x Serf (2.46 s)",
	        "%" PRId64 " / %" PRId64 " ms", pct(t[0], ok[0], 0.5),
	        ok[0] ? t[0][ok[0] - 1] : -1);
	row_add("silent crash: DEAD everywhere p50/max", n, "<= 1.0x Serf (6.16 s)",
	        "%" PRId64 " / %" PRId64 " ms", pct(t[1], ok[1], 0.5),
	        ok[1] ? t[1][ok[1] - 1] : -1);
	row_add("  healthy nodes DEAD during crashes", n, "0", "%d", fd);
	free(t[0]);
	free(t[1]);
	return 0;
}

/* False DEAD verdicts with `loss` on every link, `seeds` runs of M minutes. */
static int bench_lossy(int n, int seeds, int minutes, double loss)
{
	printf("\n[lossy] n=%d, %.0f%% loss on every link, %d seeds x %d simulated minutes\n", n,
	       loss * 100, seeds, minutes);
	uint64_t total = 0, worst = 0, healed = 0, susp = 0;
	int bad_seeds = 0;
	for (int r = 0; r < seeds; r++) {
		struct sim *s = cluster_seeded(n, 2000 + (uint64_t)r);
		if (s == NULL)
			return -1;
		struct evcount c;
		evcount_init(&c, n);
		sim_set_event_cb(s, evcount_cb, &c);
		sim_stats_reset(s);
		sim_set_loss(s, -1, -1, loss);
		sim_run_for(s, (uint64_t)minutes * 60000);
		uint64_t d = sim_total_dead(s);
		for (int k = 0; k < n * n; k++)
			healed += c.revived[k];
		total += d;
		susp += sim_total_suspected(s);
		if (d > worst)
			worst = d;
		if (d > 0) {
			bad_seeds++;
			printf("  seed %" PRIu64 ": %" PRIu64 " false DEAD\n", sim_seed(s), d);
		}
		sim_set_event_cb(s, NULL, NULL);
		evcount_free(&c);
		sim_free(s);
	}
	printf("  false DEAD %" PRIu64 " in %d seeds (%d seeds with any, worst %" PRIu64
	       "), healed %" PRIu64 ", suspicions %" PRIu64 "\n",
	       total, seeds, bad_seeds, worst, healed, susp);
	char what[64];
	snprintf(what, sizeof(what), "false DEAD/%d min, %.0f%% loss (mean)", minutes, loss * 100);
	row_add(what, n, "<= Serf (20)", "%.2f (worst %" PRIu64 ")", (double)total / seeds, worst);
	return 0;
}

/* A live member paused (SIGSTOP) for d ms, then resumed. */
static int bench_pause(int n, int runs)
{
	printf("\n[pause] n=%d, no loss, %d pauses per length\n", n, runs);
	const uint32_t lens[] = {3000, 4000, 5000, 6000, 8000};
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		int died = 0;
		for (int r = 0; r < runs; r++) {
			struct sim *s = cluster_seeded(n, 3000 + (uint64_t)r);
			if (s == NULL)
				return -1;
			int v = 1 + (int)(sim_rand(s) % (uint64_t)(n - 1));
			sim_run_for(s, sim_rand(s) % 1000);
			sim_stats_reset(s);
			sim_pause(s, v);
			sim_run_for(s, lens[l]);
			sim_resume(s, v);
			sim_run_for(s, 20000);
			if (sim_stats(s, v)->dead > 0)
				died++;
			sim_free(s);
		}
		printf("  pause %u ms: declared DEAD in %d of %d runs\n", lens[l], died, runs);
		char what[64];
		snprintf(what, sizeof(what), "pause %.0f s: runs with a DEAD verdict",
		         lens[l] / 1e3);
		row_add(what, n, lens[l] <= 5000 ? "0" : "-", "%d of %d", died, runs);
	}
	return 0;
}

/* Node 1 at 50% loss both ways. */
static int bench_gray(int n, int seeds, int minutes)
{
	printf("\n[gray] n=%d, n1 at 50%% loss both ways, %d seeds x %d simulated minutes\n", n,
	       seeds, minutes);
	const int g = 1;
	uint64_t gray_verdicts = 0, gray_learned = 0, seen_dead = 0, samples = 0, gray_dead = 0,
		 revived = 0;
	for (int r = 0; r < seeds; r++) {
		struct sim *s = cluster_seeded(n, 4000 + (uint64_t)r);
		if (s == NULL)
			return -1;
		struct evcount c;
		evcount_init(&c, n);
		sim_set_event_cb(s, evcount_cb, &c);
		sim_set_loss(s, g, -1, 0.5);
		sim_set_loss(s, -1, g, 0.5);
		for (int ms = 0; ms < minutes * 60000; ms += 100) {
			sim_run_for(s, 100);
			for (int i = 0; i < n; i++)
				if (i != g) {
					samples++;
					seen_dead += sim_state_of(s, i, g) == SWIM_DEAD;
				}
		}
		for (int t = 0; t < n; t++) {
			if (t == g)
				continue;
			gray_verdicts += c.own_dead[g * n + t];
			gray_learned += c.dead[g * n + t] - c.own_dead[g * n + t];
		}
		for (int i = 0; i < n; i++) {
			gray_dead += c.dead[i * n + g];
			revived += c.revived[i * n + g];
		}
		sim_set_event_cb(s, NULL, NULL);
		evcount_free(&c);
		sim_free(s);
	}
	printf("  the gray host's own DEAD verdicts %" PRIu64 " (DEAD learned from others %" PRIu64
	       "); DEAD verdicts about it %" PRIu64 ", healed %" PRIu64
	       "; seen dead %.1f%% of the time\n",
	       gray_verdicts, gray_learned, gray_dead, revived,
	       samples ? 100.0 * (double)seen_dead / (double)samples : 0.0);
	row_add("gray host: its own DEAD verdicts", n, "0", "%" PRIu64, gray_verdicts);
	row_add("gray host: seen dead (share of time)", n, "Serf 1-18%", "%.1f%%",
	        samples ? 100.0 * (double)seen_dead / (double)samples : 0.0);
	row_add("gray host: DEAD verdicts about it /seed", n, "<= 1 per 5 min", "%.1f",
	        (double)gray_dead / seeds);
	return 0;
}

static void print_table(void)
{
	printf("\n%-42s %6s  %-26s %s\n", "measure", "n", "value", "target");
	printf("%-42s %6s  %-26s %s\n", "------------------------------------------", "------",
	       "--------------------------", "----------");
	for (int i = 0; i < n_rows; i++) {
		const struct row *r = &rows[i];
		if (r->n == 0)
			printf("%-42s %6s  %-26s %s\n", r->what, "-", r->value, r->target);
		else
			printf("%-42s %6d  %-26s %s\n", r->what, r->n, r->value, r->target);
	}
	long rss, peak;
	sim_rss_kib(&rss, &peak);
	printf("\nprocess peak RSS %ld MiB\n", peak / 1024);
}

int main(int argc, char **argv)
{
	const char *mode = "all";
	int n = 0, runs = 0, minutes = 10, big = 10000, big_secs = 30, window_s = 300;
	long cap_mib = 4096;
	bool full = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--n") == 0 && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--minutes") == 0 && i + 1 < argc)
			minutes = atoi(argv[++i]);
		else if (strcmp(argv[i], "--big") == 0 && i + 1 < argc)
			big = atoi(argv[++i]);
		else if (strcmp(argv[i], "--big-secs") == 0 && i + 1 < argc)
			big_secs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--window-s") == 0 && i + 1 < argc)
			window_s = atoi(argv[++i]);
		else if (strcmp(argv[i], "--rss-cap-mib") == 0 && i + 1 < argc)
			cap_mib = atol(argv[++i]);
		else if (strcmp(argv[i], "--full") == 0)
			full = true;
		else if (argv[i][0] != '-')
			mode = argv[i];
		else {
			fprintf(stderr,
			        "usage: %s [detect|false|traffic|big|bootstrap|scale|all] [--n N] "
			        "[--runs R] [--minutes M] [--big N] [--big-secs S] [--window-s W] "
			        "[--rss-cap-mib M] [--full]\n",
			        argv[0]);
			return 2;
		}
	}
	bool all = strcmp(mode, "all") == 0;
	int rc = 0;
	bool i11 = strcmp(mode, "issue11") == 0;
	if (i11 || strcmp(mode, "crash") == 0 || strcmp(mode, "lossy") == 0 ||
	    strcmp(mode, "pause") == 0 || strcmp(mode, "gray") == 0) {
		int nn = n > 0 ? n : 5, rr = runs > 0 ? runs : 10;
		printf("meshvisor membership simulator: issue 11 figures (virtual time)\n");
		if (i11 || strcmp(mode, "crash") == 0)
			rc |= bench_crash(nn, rr);
		if (i11 || strcmp(mode, "lossy") == 0)
			rc |= bench_lossy(nn, rr, minutes, 0.36);
		if (i11 || strcmp(mode, "pause") == 0)
			rc |= bench_pause(nn, rr);
		if (i11 || strcmp(mode, "gray") == 0)
			rc |= bench_gray(nn, rr, minutes);
		print_table();
		return rc ? 1 : 0;
	}
	int sizes[2] = {100, 1000};
	int n_sizes = 2;
	if (n > 0) {
		sizes[0] = n;
		n_sizes = 1;
	}
	printf("meshvisor membership simulator benchmark (virtual time; targets from the issue)\n");
	struct swim_config dcfg;
	swim_config_default(&dcfg);
	row_add("probe interval (config default)", 0, "1 s", "%u ms", dcfg.probe_interval_ms);
	if (all || strcmp(mode, "detect") == 0)
		for (int k = 0; k < n_sizes; k++)
			rc |= bench_detect(sizes[k], runs ? runs : (sizes[k] <= 100 ? 20 : 5));
	if (all || strcmp(mode, "false") == 0) {
		rc |= bench_false(n > 0 ? n : 100, minutes);
		if (full && n == 0)
			rc |= bench_false(1000, minutes);
	}
	if (all || strcmp(mode, "traffic") == 0)
		for (int k = 0; k < n_sizes; k++)
			rc |= bench_traffic(sizes[k]);
	if (strcmp(mode, "bootstrap") == 0)
		rc |= bench_bootstrap(n > 0 ? n : 2000);
	if (strcmp(mode, "scale") == 0)
		rc |= bench_scale(n, window_s);
	if (all || strcmp(mode, "big") == 0)
		rc |= bench_big(big, cap_mib, big_secs);
	print_table();
	return rc ? 1 : 0;
}
