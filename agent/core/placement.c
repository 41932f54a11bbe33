/*
 * placement.c — capacity arithmetic and host choice (see placement.h).
 */
#include "meshvisor/placement.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

uint32_t placement_vcpu_capacity(const struct placement_host *h)
{
	double oc = h->cpu_overcommit > 0 ? h->cpu_overcommit : 1.0;
	double cap = floor((double)h->cpus * oc + 1e-9);
	return cap > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}

uint64_t placement_memory_capacity_kib(const struct placement_host *h)
{
	if (h->memory_reserved_kib >= h->memory_kib)
		return 0;
	double oc = h->memory_overcommit > 0 ? h->memory_overcommit : 1.0;
	return (uint64_t)floor((double)(h->memory_kib - h->memory_reserved_kib) * oc + 1e-9);
}

static uint64_t mem_left_kib(const struct placement_host *h)
{
	uint64_t cap = placement_memory_capacity_kib(h);
	return cap > h->memory_allocated_kib ? cap - h->memory_allocated_kib : 0;
}

static uint32_t vcpus_left(const struct placement_host *h)
{
	uint32_t cap = placement_vcpu_capacity(h);
	return cap > h->vcpus_allocated ? cap - h->vcpus_allocated : 0;
}

bool placement_fits(const struct placement_host *h, const struct placement_request *req, char *why,
                    size_t whylen)
{
	uint64_t mleft = mem_left_kib(h);
	uint32_t cleft = vcpus_left(h);
	if (req->memory_kib > mleft) {
		snprintf(why, whylen, "needs %llu MiB, %llu MiB left",
		         (unsigned long long)(req->memory_kib / 1024),
		         (unsigned long long)(mleft / 1024));
		return false;
	}
	if (req->vcpus > cleft) {
		snprintf(why, whylen, "needs %u vCPUs, %u left", req->vcpus, cleft);
		return false;
	}
	if (whylen > 0)
		why[0] = '\0';
	return true;
}

int placement_choose(const struct placement_host *hosts, size_t n,
                     const struct placement_request *req, char *why, size_t whylen)
{
	int best = -1;
	uint64_t best_mem = 0;
	uint32_t best_cpu = 0;
	size_t used = 0;
	if (whylen > 0) {
		int w =
		    snprintf(why, whylen, "no host has room for %u vCPUs / %llu MiB:", req->vcpus,
		             (unsigned long long)(req->memory_kib / 1024));
		used = w > 0 ? (size_t)w : 0;
	}
	for (size_t i = 0; i < n; i++) {
		const struct placement_host *h = &hosts[i];
		char reason[96];
		if (!h->alive)
			snprintf(reason, sizeof(reason), "not alive");
		else if (!h->healthy)
			snprintf(reason, sizeof(reason), "libvirt unreachable");
		else if (h->draining)
			snprintf(reason, sizeof(reason), "draining");
		else if (!placement_fits(h, req, reason, sizeof(reason)))
			;
		else {
			uint64_t m = mem_left_kib(h) - req->memory_kib;
			uint32_t c = vcpus_left(h) - req->vcpus;
			if (best < 0 || m > best_mem || (m == best_mem && c > best_cpu) ||
			    (m == best_mem && c == best_cpu &&
			     strcmp(h->name, hosts[best].name) < 0)) {
				best = (int)i;
				best_mem = m;
				best_cpu = c;
			}
			continue;
		}
		if (used < whylen) {
			int w = snprintf(why + used, whylen - used, "%s %s %s", i ? ";" : "",
			                 h->name, reason);
			if (w > 0)
				used += (size_t)w;
		}
	}
	if (best >= 0 && whylen > 0)
		why[0] = '\0';
	if (best < 0 && n == 0 && whylen > 0)
		snprintf(why, whylen, "no hosts known");
	return best;
}
