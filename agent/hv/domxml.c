/*
 * domxml.c — read name, UUID, vCPUs and memory from a libvirt domain XML.
 *
 * libvirt's schema: <domain type=...><name/><uuid/><memory unit=KiB>N</memory>
 * <vcpu>N</vcpu>...; <memory> may be given in b, KB, k/KiB, MB, M/MiB, GB,
 * G/GiB, TB, T/TiB (libvirt's own units; K without "i" is still 1024 in
 * libvirt, KB is 1000). Parsing forbids network access and entity
 * expansion: this XML comes from clients.
 */
#include "domxml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static xmlNode *domxml_child(xmlNode *parent, const char *name)
{
	for (xmlNode *c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
			return c;
	return NULL;
}

static int domxml_unit_scale(const char *unit, uint64_t *num, uint64_t *den)
{
	static const struct {
		const char *unit;
		uint64_t num, den; /* bytes per unit = num, result in KiB = bytes/1024 */
	} units[] = {
	    {"b", 1, 1024},
	    {"bytes", 1, 1024},
	    {"KB", 1000, 1024},
	    {"k", 1, 1},
	    {"KiB", 1, 1},
	    {"MB", 1000000, 1024},
	    {"M", 1024, 1},
	    {"MiB", 1024, 1},
	    {"GB", 1000000000, 1024},
	    {"G", 1048576, 1},
	    {"GiB", 1048576, 1},
	    {"TB", 1000000000000ull, 1024},
	    {"T", 1073741824ull, 1},
	    {"TiB", 1073741824ull, 1},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(unit, units[i].unit) == 0 ||
		    (strlen(unit) == 1 && strcasecmp(unit, units[i].unit) == 0)) {
			*num = units[i].num;
			*den = units[i].den;
			return 0;
		}
	}
	return -EINVAL;
}

static int domxml_number(xmlNode *n, uint64_t *out)
{
	xmlChar *txt = xmlNodeGetContent(n);
	if (txt == NULL)
		return -EINVAL;
	char *end;
	const char *s = (const char *)txt;
	while (*s == ' ' || *s == '\n' || *s == '\t')
		s++;
	unsigned long long v = strtoull(s, &end, 10);
	while (*end == ' ' || *end == '\n' || *end == '\t')
		end++;
	int rc = (*s >= '0' && *s <= '9' && *end == '\0') ? 0 : -EINVAL;
	*out = v;
	xmlFree(txt);
	return rc;
}

static void domxml_text(xmlNode *n, char *buf, size_t len)
{
	xmlChar *txt = xmlNodeGetContent(n);
	snprintf(buf, len, "%s", txt ? (const char *)txt : "");
	xmlFree(txt);
	/* trim surrounding white space */
	size_t l = strlen(buf);
	while (l > 0 && (buf[l - 1] == ' ' || buf[l - 1] == '\n' || buf[l - 1] == '\t'))
		buf[--l] = '\0';
	size_t start = strspn(buf, " \n\t");
	memmove(buf, buf + start, strlen(buf + start) + 1);
}

int domxml_parse(const char *xml, size_t len, struct domxml_info *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > 1024 * 1024) {
		snprintf(err, errlen, "domain XML must be 1 byte to 1 MiB, got %zu bytes", len);
		return -EINVAL;
	}
	xmlDoc *doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
	                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc == NULL) {
		const xmlError *e = xmlGetLastError();
		snprintf(err, errlen, "bad XML: line %d: %s", e ? e->line : 0,
		         e && e->message ? e->message : "not well-formed");
		size_t l = strlen(err);
		if (l > 0 && err[l - 1] == '\n')
			err[l - 1] = '\0';
		xmlResetLastError();
		return -EINVAL;
	}
	int rc = -EINVAL;
	xmlNode *root = xmlDocGetRootElement(doc);
	xmlNode *n;
	uint64_t v;
	if (root == NULL || strcmp((const char *)root->name, "domain") != 0) {
		snprintf(err, errlen, "not a libvirt domain: the root element must be <domain>");
		goto out;
	}
	if ((n = domxml_child(root, "name")) == NULL) {
		snprintf(err, errlen, "domain XML has no <name>");
		goto out;
	}
	domxml_text(n, out->name, sizeof(out->name));
	if (out->name[0] == '\0') {
		snprintf(err, errlen, "domain XML has an empty <name>");
		goto out;
	}
	if ((n = domxml_child(root, "uuid")) != NULL)
		domxml_text(n, out->uuid, sizeof(out->uuid));
	if ((n = domxml_child(root, "vcpu")) == NULL) {
		out->vcpus = 1; /* libvirt's default */
	} else if (domxml_number(n, &v) < 0 || v == 0 || v > 4096) {
		snprintf(err, errlen, "domain XML <vcpu> must be a number from 1 to 4096");
		goto out;
	} else {
		out->vcpus = (uint32_t)v;
	}
	if ((n = domxml_child(root, "memory")) == NULL) {
		snprintf(err, errlen, "domain XML has no <memory>");
		goto out;
	}
	xmlChar *unit = xmlGetProp(n, (const xmlChar *)"unit");
	uint64_t num = 1, den = 1;
	int urc = domxml_unit_scale(unit ? (const char *)unit : "KiB", &num, &den);
	if (urc < 0)
		snprintf(err, errlen, "domain XML <memory unit='%s'>: unknown unit",
		         unit ? (const char *)unit : "");
	xmlFree(unit);
	if (urc < 0)
		goto out;
	if (domxml_number(n, &v) < 0 || v == 0 || v > UINT64_MAX / num) {
		snprintf(err, errlen, "domain XML <memory> must be a positive number");
		goto out;
	}
	out->memory_kib = v * num / den;
	if (out->memory_kib == 0) {
		snprintf(err, errlen, "domain XML <memory> is below 1 KiB");
		goto out;
	}
	rc = 0;
out:
	xmlFreeDoc(doc);
	return rc;
}
