/*
 * placement.h — where a new VM goes: capacity arithmetic and the choice of
 * host, as pure functions over the gossiped node states (no I/O).
 *
 * A host's capacity under overcommit:
 *   vCPU capacity   = floor(cpus * cpu_overcommit)
 *   memory capacity = (memory_kib - memory_reserved_kib) * memory_overcommit
 * A VM fits if allocated + requested stays within both. Among the hosts it
 * fits on (alive, libvirt reachable, not draining) the one with the most
 * memory left *after* placing it wins; ties go to more vCPUs left, then to
 * the smaller name, so every node computes the same answer from the same
 * view.
 */
#ifndef MESHVISOR_PLACEMENT_H
#define MESHVISOR_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct placement_host {
	const char *name;
	bool alive;   /* membership: ALIVE */
	bool healthy; /* libvirt reachable */
	bool draining;
	uint32_t cpus;
	double cpu_overcommit;
	uint32_t vcpus_allocated;
	uint64_t memory_kib;
	uint64_t memory_reserved_kib;
	double memory_overcommit;
	uint64_t memory_allocated_kib;
};

struct placement_request {
	uint32_t vcpus;
	uint64_t memory_kib;
};

uint32_t placement_vcpu_capacity(const struct placement_host *h);
uint64_t placement_memory_capacity_kib(const struct placement_host *h);
/* Whether req fits on h; when not, why (e.g. "needs 4096 MiB, 1024 MiB left"). */
bool placement_fits(const struct placement_host *h, const struct placement_request *req, char *why,
                    size_t whylen);

/* Picks the host for req. Returns the index, or -1 with a message naming
 * each host and why it was not chosen ("no host has room for 4 vCPUs /
 * 8192 MiB: n1 draining; n2 needs 8192 MiB, 2048 MiB left; ..."). */
int placement_choose(const struct placement_host *hosts, size_t n,
                     const struct placement_request *req, char *why, size_t whylen);

#endif
