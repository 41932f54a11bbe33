/*
 * virt.c — libvirt connection health for the agent (see virt.h).
 *
 * libvirt prints every error to stderr by default; we install an error
 * handler that drops that printing and instead carry libvirt's message
 * into our health record and log, once per state change.
 */
#include "virt.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvisor/log.h"

struct virt {
	char *uri;
	virConnectPtr conn;
	struct virt_health health;
	bool logged_state; /* health.reachable value we last logged */
	bool logged_once;
};

static void virt_silence_errors(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

struct virt *virt_new(const char *uri)
{
	struct virt *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	v->uri = strdup(uri);
	if (v->uri == NULL) {
		free(v);
		return NULL;
	}
	virSetErrorFunc(NULL, virt_silence_errors);
	return v;
}

void virt_free(struct virt *v)
{
	if (v == NULL)
		return;
	if (v->conn != NULL)
		virConnectClose(v->conn);
	free(v->uri);
	free(v);
}

const char *virt_uri(const struct virt *v) { return v->uri; }

const struct virt_health *virt_health(const struct virt *v) { return &v->health; }

static void virt_record_error(struct virt *v, const char *what)
{
	const char *msg = virGetLastErrorMessage();
	snprintf(v->health.error, sizeof(v->health.error), "%s: %s", what,
	         msg != NULL ? msg : "unknown libvirt error");
	v->health.reachable = false;
}

bool virt_check(struct virt *v)
{
	if (v->conn != NULL && virConnectIsAlive(v->conn) != 1) {
		virConnectClose(v->conn);
		v->conn = NULL;
	}
	if (v->conn == NULL) {
		v->conn = virConnectOpen(v->uri);
		if (v->conn == NULL)
			virt_record_error(v, "cannot connect to libvirt");
	}
	if (v->conn != NULL) {
		virNodeInfo info;
		if (virNodeGetInfo(v->conn, &info) < 0) {
			virt_record_error(v, "cannot read node info");
			virConnectClose(v->conn);
			v->conn = NULL;
		} else {
			v->health.reachable = true;
			v->health.error[0] = '\0';
			v->health.cpus = info.cpus;
			v->health.memory_kib = info.memory;
			snprintf(v->health.cpu_model, sizeof(v->health.cpu_model), "%s", info.model);
		}
	}
	if (!v->logged_once || v->logged_state != v->health.reachable) {
		char q[300];
		if (v->health.reachable)
			MV_INFO("virt", "libvirt reachable uri=%s cpus=%u memory_kib=%llu",
			        v->uri, v->health.cpus, (unsigned long long)v->health.memory_kib);
		else
			MV_WARN("virt", "libvirt unreachable uri=%s error=%s", v->uri,
			        mv_log_quote(q, sizeof(q), v->health.error));
		v->logged_once = true;
		v->logged_state = v->health.reachable;
	}
	return v->health.reachable;
}
