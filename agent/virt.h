/*
 * virt.h — the agent's connection to its hypervisor, through libvirt.
 * The only module that includes libvirt headers.
 *
 * For now (membership): open the configured URI, keep checking that it is
 * alive, reconnect when it went away, and report health and the host's
 * CPU and memory size. Inventory, events and lifecycle come with the
 * hypervisor layer.
 *
 * The default URI for development and tests is libvirt's test driver
 * (test:///default, or test:///path/to/host.xml), which runs inside this
 * process and needs no daemon. Production uses qemu:///system.
 *
 * Ownership: struct virt owns its connection; virt_health() returns a view
 * valid until the next virt_ call.
 */
#ifndef MESHVISOR_VIRT_H
#define MESHVISOR_VIRT_H

#include <stdbool.h>
#include <stdint.h>

struct virt_health {
	bool reachable;
	char error[256];   /* libvirt's own message when not reachable */
	unsigned cpus;
	uint64_t memory_kib;
	char cpu_model[64];
};

struct virt;

struct virt *virt_new(const char *uri);
void virt_free(struct virt *v);
const char *virt_uri(const struct virt *v);
/* Checks the connection (opens it if closed or dead) and refreshes health.
 * Returns true if libvirt is reachable. Blocking: a local socket round trip
 * (or nothing at all for the test driver). */
bool virt_check(struct virt *v);
const struct virt_health *virt_health(const struct virt *v);

#endif
