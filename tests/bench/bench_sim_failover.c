/*
 * bench_sim_failover.c — how long a failover takes, measured on the
 * deterministic failover world (tests/sim/sim_failover.c: real SWIM and
 * failover cores per host, virtual time, so the figures do not depend on
 * the machine; only "wall" does).
 *
 *   bench_sim_failover [--n N] [--vms V] [--runs R] [--deaths D,...] [--no-agent]
 *
 * Defaults: N = 100 hosts, V = 1000 HA VMs spread evenly (1..2 vCPUs,
 * 2..4 GiB, priorities 0..900), R = 5 seeds per case, cases of 1 and 3
 * simultaneous whole-host crashes (so the dead hypervisors cannot be
 * fenced remotely: the targets wait out the self-fence, quorate + F +
 * margin from the survivors' last acknowledgement of the dead host, or
 * F + margin from learning the plan if sooner), and a case of one
 * agent-only crash (the hypervisor still answers: the coordinator fences it
 * through its libvirt, no waiting; --no-agent skips it). Default failover and SWIM
 * settings (heartbeat 1 s, F = 10 s, margin 3 s, probe 1 s).
 *
 * For each dead host it measures, from the crash:
 *   detection  -> the coordinator of its plan noted it DEAD (SWIM)
 *   chosen     -> the plan was first learned (consensus done)
 *   fence wait  = fenced (first FENCE_CONFIRMED, or first restart) - chosen
 *   restart     = all its HA VMs running elsewhere - fenced (the last
 *                 target's start reported done: FO_EV_RESTARTED; a
 *                 libvirt start takes 200..1500 ms in the world)
 *   total      -> all its HA VMs running elsewhere
 * and prints each run, then p50 / max over every dead host of every run.
 * The issue asks for "within seconds"; the floor set by the design, when
 * nothing confirms the fence, is the last acknowledgement of the dead host
 * (about the crash) + quorate_ms + F + margin.
 * A benchmark never fails on timing; the exit status is non-zero only if
 * the oracle saw a violation or VMs did not come back within the run.
 * Seeds: each run prints "fw seed=N"; MV_SIM_SEED=N replays it.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "prng.h"
#include "sim_failover.h"

#define GIB (1024ull * 1024)
#define MAXS 256

struct sample {
	double detect, chosen, fence, restart, total;
	bool complete;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	if (n == 0)
		return -1;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	int k = (int)(p * (n - 1) + 0.5);
	return v[k];
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t first_rec(struct fw *w, int type, int node, int peer)
{
	for (size_t k = 0; k < fw_log_count(w); k++) {
		const struct fw_rec *r = fw_log_at(w, k);
		if (r->type == type && (node < 0 || r->node == node) &&
		    (peer < 0 || r->peer == peer))
			return r->t;
	}
	return UINT64_MAX;
}

static bool all_back(struct fw *w, void *arg)
{
	const int *dead = arg;
	for (int v = 0; v < fw_vm_count(w); v++) {
		int home = fw_vm_home(w, v);
		for (int d = 1; d <= dead[0]; d++)
			if (home == dead[d] &&
			    (fw_vm_copies(w, v) != 1 || fw_vm_host(w, v, NULL) == home))
				return false;
	}
	return true;
}

/* One run; appends a sample per dead host. Returns false on a violation. */
static bool run(int n, int nvms, int ndead, bool agent_only, uint64_t seed, struct sample *out,
                int *nout)
{
	struct fw_opts o;
	fw_opts_default(&o, n, seed);
	const char *venv = getenv("MV_SIM_VERBOSE");
	o.verbose = venv && *venv ? atoi(venv) : 0;
	struct fw *w = fw_new(&o);
	uint64_t rng[4], x = seed ^ 0xbe9c;
	for (int k = 0; k < 4; k++)
		rng[k] = mv_splitmix64(&x);
	for (int i = 0; i < n; i++)
		fw_set_host(w, i, 64, 256 * GIB, false);
	for (int k = 0; k < nvms; k++) {
		char name[32];
		snprintf(name, sizeof(name), "vm%d", k);
		fw_add_vm(w, k % n, name, (int32_t)mv_xoshiro_below(rng, 10) * 100,
		          1 + mv_xoshiro_below(rng, 2), (2 + mv_xoshiro_below(rng, 3)) * GIB, NULL);
	}
	double w0 = now_s();
	fw_start(w);
	fw_run_for(w, 15000); /* join and settle */
	int dead[1 + 16] = {ndead};
	for (int d = 1; d <= ndead; d++) {
		int h;
		bool dup;
		do {
			h = (int)mv_xoshiro_below(rng, (uint32_t)n);
			dup = false;
			for (int e = 1; e < d; e++)
				dup |= dead[e] == h;
		} while (dup);
		dead[d] = h;
	}
	uint64_t t0 = fw_now(w);
	for (int d = 1; d <= ndead; d++) {
		if (agent_only)
			fw_crash_agent(w, dead[d]);
		else
			fw_crash_host(w, dead[d]);
	}
	int64_t took = fw_run_until(w, all_back, dead, 120000);
	fw_run_for(w, 1000);
	double wall = now_s() - w0;
	bool ok = fw_violation(w) == NULL;
	if (!ok)
		fprintf(stderr, "  VIOLATION: %s\n", fw_violation(w));
	for (int d = 1; d <= ndead; d++) {
		const struct fw_chosen *c = NULL;
		for (size_t k = 0; k < fw_chosen_count(w); k++)
			if (fw_index(w, fw_chosen_at(w, k)->inst.dead) == dead[d] &&
			    fw_chosen_at(w, k)->inst.round == 0)
				c = fw_chosen_at(w, k);
		struct sample s = {-1, -1, -1, -1, -1, false};
		int coord = -1;
		if (c) {
			/* the coordinator: the chosen ballot's proposer, as a survivor reports it */
			for (int i = 0; i < n && coord < 0; i++) {
				struct fo *f = fw_fo(w, i);
				for (size_t k = 0; f && k < fo_instance_count(f); k++) {
					struct fo_instance_info info;
					fo_instance_at(f, k, &info);
					if (strcmp(info.inst.dead, c->inst.dead) == 0 &&
					    info.inst.round == 0 && info.coordinator[0]) {
						coord = fw_index(w, info.coordinator);
						break;
					}
				}
			}
			if (coord < 0) /* forgotten already: the first learner is the proposer */
				coord = c->first_node;
			uint64_t det = first_rec(w, FO_EV_DETECTED, coord, dead[d]);
			if (det == UINT64_MAX)
				det = first_rec(w, FO_EV_DETECTED, -1, dead[d]);
			uint64_t fenced = first_rec(w, FO_EV_FENCE_CONFIRMED, -1, dead[d]);
			uint64_t fr = first_rec(w, FO_EV_RESTART, -1, dead[d]);
			if (fenced == UINT64_MAX || (fr != UINT64_MAX && fr < fenced))
				fenced = fr;
			uint64_t last = 0;
			bool complete = true;
			for (int v = 0; v < fw_vm_count(w); v++)
				if (fw_vm_home(w, v) == dead[d] &&
				    (fw_vm_copies(w, v) != 1 || fw_vm_host(w, v, NULL) == dead[d]))
					complete = false;
			/* running = the target's libvirt start finished: the first
			 * FO_EV_RESTARTED of each VM (the target's own; the others
			 * echo it when they hear), the last of those */
			for (int v = 0; v < fw_vm_count(w); v++) {
				if (fw_vm_home(w, v) != dead[d])
					continue;
				uint64_t first = 0;
				for (size_t k = 0; k < fw_log_count(w) && !first; k++) {
					const struct fw_rec *r = fw_log_at(w, k);
					if (r->type == FO_EV_RESTARTED && r->vm == v &&
					    r->peer == dead[d])
						first = r->t;
				}
				if (first > last)
					last = first;
			}
			s.detect = det == UINT64_MAX ? -1 : (double)(det - t0) / 1000.0;
			s.chosen = (double)(c->chosen_at - t0) / 1000.0;
			s.fence =
			    fenced == UINT64_MAX ? -1 : (double)(fenced - c->chosen_at) / 1000.0;
			s.restart =
			    last && fenced != UINT64_MAX ? (double)(last - fenced) / 1000.0 : -1;
			s.total = last ? (double)(last - t0) / 1000.0 : -1;
			s.complete = complete;
		}
		int nv = 0;
		for (int v = 0; v < fw_vm_count(w); v++)
			nv += fw_vm_home(w, v) == dead[d];
		printf("  seed %-20" PRIu64
		       " dead %-4s (%2d VMs) coord %-4s detection %6.2f s  chosen "
		       "%6.2f s  fence wait %6.2f s  restart %6.2f s  total %6.2f s%s  [wall %.1f "
		       "s]\n",
		       seed, fw_name(w, dead[d]), nv, coord >= 0 ? fw_name(w, coord) : "?",
		       s.detect, s.chosen, s.fence, s.restart, s.total,
		       s.complete ? "" : "  INCOMPLETE", wall);
		for (int v = 0; !s.complete && v < fw_vm_count(w); v++) {
			if (fw_vm_home(w, v) != dead[d] ||
			    (fw_vm_copies(w, v) == 1 && fw_vm_host(w, v, NULL) != dead[d]))
				continue;
			printf("    %s runs %d times; planned:", fw_vm_name(w, v),
			       fw_vm_copies(w, v));
			for (size_t k = 0; k < fw_chosen_count(w); k++) {
				const struct fw_chosen *pc = fw_chosen_at(w, k);
				for (size_t q = 0; q < pc->plan.n; q++)
					if (strcmp(pc->plan.entries[q].uuid, fw_vm_uuid(w, v)) == 0)
						printf(
						    " (%s,%" PRIu64 ",%u)->%s%s", pc->inst.dead,
						    pc->inst.incarnation, pc->inst.round,
						    pc->plan.entries[q].target[0]
							? pc->plan.entries[q].target
							: "\"\"",
						    fw_index(w, pc->plan.entries[q].target) >= 0 &&
							    !fw_host_up(
								w,
								fw_index(
								    w, pc->plan.entries[q].target))
							? " (dead)"
							: "");
			}
			printf("\n");
		}
		if (*nout < MAXS)
			out[(*nout)++] = s;
		if (!s.complete)
			ok = false;
	}
	if (took < 0)
		fprintf(stderr, "  not every VM back within 120 s\n");
	fflush(stdout);
	fw_free(w);
	return ok;
}

static void summary(const char *what, struct sample *s, int n)
{
	double v[MAXS];
	const char *names[] = {
	    "detection (crash -> DEAD at coordinator)", "plan chosen (crash -> first learned)",
	    "fence wait (chosen -> fenced)", "restart (fenced -> all running elsewhere)",
	    "total (crash -> all running elsewhere)"};
	printf("%s: %d dead hosts measured\n", what, n);
	for (int f = 0; f < 5; f++) {
		int m = 0;
		for (int k = 0; k < n; k++) {
			double x = f == 0   ? s[k].detect
			           : f == 1 ? s[k].chosen
			           : f == 2 ? s[k].fence
			           : f == 3 ? s[k].restart
			                    : s[k].total;
			if (x >= 0)
				v[m++] = x;
		}
		printf("  %-45s p50 %6.2f s  max %6.2f s\n", names[f], pct(v, m, 0.5),
		       pct(v, m, 1.0));
	}
}

int main(int argc, char **argv)
{
	int n = 100, nvms = 1000, runs = 5;
	/* cases: whole-host crashes (1 and 3 at once), then agent-only crashes
	 * (the hypervisor answers: fenced through its libvirt, no F + margin) */
	int deaths[8] = {1, 3}, ndeaths = 2;
	bool agent_case = true;
	for (int a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--n") == 0 && a + 1 < argc)
			n = atoi(argv[++a]);
		else if (strcmp(argv[a], "--vms") == 0 && a + 1 < argc)
			nvms = atoi(argv[++a]);
		else if (strcmp(argv[a], "--runs") == 0 && a + 1 < argc)
			runs = atoi(argv[++a]);
		else if (strcmp(argv[a], "--deaths") == 0 && a + 1 < argc) {
			ndeaths = 0;
			for (char *p = strtok(argv[++a], ","); p && ndeaths < 8;
			     p = strtok(NULL, ","))
				deaths[ndeaths++] = atoi(p);
		} else if (strcmp(argv[a], "--no-agent") == 0) {
			agent_case = false;
		} else {
			fprintf(stderr,
			        "usage: %s [--n N] [--vms V] [--runs R] [--deaths 1,3] "
			        "[--no-agent]\n",
			        argv[0]);
			return 2;
		}
	}
	if (n < 3 || n > FW_MAXN) {
		fprintf(stderr, "--n must be 3..%d\n", FW_MAXN);
		return 2;
	}
	struct fo_config d;
	fo_config_default(&d);
	printf("failover bench: %d hosts, %d HA VMs, %d seeds per case; heartbeat %u ms, F %u ms, "
	       "margin %u ms, coordinator step %u ms\n"
	       "target (issue): the VMs of a dead host run elsewhere within seconds; floor with a "
	       "dead "
	       "hypervisor: last ack + quorate + F + margin = last ack + %.1f s, at most plan + "
	       "F + margin = plan + %.1f s\n",
	       n, nvms, runs, d.heartbeat_ms, d.fence_after_ms, d.fence_margin_ms,
	       d.coordinator_step_ms,
	       (d.quorate_ms + d.fence_after_ms + d.fence_margin_ms) / 1000.0,
	       (d.fence_after_ms + d.fence_margin_ms) / 1000.0);
	const char *env = getenv("MV_SIM_SEED");
	uint64_t x = env && *env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
	bool ok = true;
	for (int c = 0; c < ndeaths + (agent_case ? 1 : 0); c++) {
		struct sample s[MAXS];
		int ns = 0;
		bool agent = c == ndeaths;
		int nd = agent ? 1 : deaths[c];
		printf("case: %d simultaneous %s crash%s\n", nd,
		       agent ? "agent-only" : "whole-host", nd > 1 ? "es" : "");
		for (int r = 0; r < runs; r++) {
			uint64_t seed = env && *env ? x : mv_splitmix64(&x) >> 1;
			ok &= run(n, nvms, nd, agent, seed, s, &ns);
		}
		char what[64];
		snprintf(what, sizeof(what), "%d simultaneous %s death%s", nd,
		         agent ? "agent" : "host", nd > 1 ? "s" : "");
		summary(what, s, ns);
	}
	return ok ? 0 : 1;
}
