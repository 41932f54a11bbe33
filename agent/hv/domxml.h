/*
 * domxml.h — what the agent needs to know about a libvirt domain XML before
 * any hypervisor sees it: its name, UUID, vCPUs and memory, so that
 * placement can choose a host and a bad document is refused on the node
 * the operator talked to. Parsed with libxml2 (no network, no entities).
 */
#ifndef MESHVISOR_DOMXML_H
#define MESHVISOR_DOMXML_H

#include <stddef.h>
#include <stdint.h>

struct domxml_info {
	char name[256];
	char uuid[64]; /* "" when the XML has none (libvirt will generate one) */
	uint32_t vcpus;
	uint64_t memory_kib;
};

/* Returns 0, or -EINVAL with a reason such as "bad XML: line 3: ..." or
 * "domain XML has no <name>". */
int domxml_parse(const char *xml, size_t len, struct domxml_info *out, char *err, size_t errlen);

#endif
