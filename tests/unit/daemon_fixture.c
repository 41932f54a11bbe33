/*
 * daemon_fixture.c — see daemon_fixture.h.
 */
#include "daemon_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "envelope.h"
#include "frame.h"
#include "membership.h"
#include "mig_codec.h"
#include "migration.h"
#include "nodestate.h"
#include "peer_client.h"
#include "ha.h"
#include "rpc_service.h"
#include "state_codec.h"

const char FIXTURE_HOST_XML[] =
    "<node>\n"
    "  <cpu><mhz>2400</mhz><model>meshvisor-cpu</model><active>8</active><nodes>1</nodes>"
    "<sockets>1</sockets><cores>4</cores><threads>2</threads></cpu>\n"
    "  <memory>16777216</memory>\n"
    "  <domain type='test'>\n"
    "    <name>alpha</name><uuid>" ALPHA_UUID "</uuid>\n"
    "    <metadata><meshvisor:vm xmlns:meshvisor='https://meshvisor.dev/xmlns/vm/1'"
    " ha='yes' priority='7' epoch='4'/></metadata>\n"
    "    <memory>2097152</memory><vcpu>2</vcpu>\n"
    "    <os><type>hvm</type></os>\n"
    "  </domain>\n"
    "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
    "    <name>beta</name><uuid>" BETA_UUID "</uuid>\n"
    "    <memory>524288</memory><vcpu>1</vcpu><os><type>hvm</type></os>\n"
    "    <test:runstate>5</test:runstate>\n"
    "  </domain>\n"
    "</node>\n";

/* libvirt's events run on one loop per process (virt_event_register_uv) */
static uv_loop_t fixture_loop;
static bool fixture_loop_on;

static char *fixture_strdup(const char *s)
{
	char *d = strdup(s);
	assert_non_null(d);
	return d;
}

uint64_t fixture_prior_incarnation;

void fixture_start(struct daemon_fixture *f, const char *name, const char *host_xml,
                   bool with_migration, uint32_t mig_lease_ms)
{
	memset(f, 0, sizeof(*f));
	if (!fixture_loop_on) {
		assert_int_equal(uv_loop_init(&fixture_loop), 0);
		assert_int_equal(virt_event_register_uv(&fixture_loop), 0);
		fixture_loop_on = true;
	}
	snprintf(f->dir, sizeof(f->dir), "/tmp/mv-daemon-test-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->host_path, sizeof(f->host_path), "%s/host.xml", f->dir);
	FILE *fp = fopen(f->host_path, "w");
	assert_non_null(fp);
	fputs(host_xml, fp);
	fclose(fp);
	if (fixture_prior_incarnation != 0) { /* a data_dir of a previous life */
		char ipath[160];
		snprintf(ipath, sizeof(ipath), "%s/incarnation", f->dir);
		fp = fopen(ipath, "w");
		assert_non_null(fp);
		fprintf(fp, "%llu\n", (unsigned long long)fixture_prior_incarnation);
		fclose(fp);
	}

	struct agent *a = &f->a;
	agent_options_init(&a->opt);
	a->opt.name = fixture_strdup(name);
	free(a->opt.data_dir);
	a->opt.data_dir = fixture_strdup(f->dir);
	free(a->opt.libvirt_uri);
	char uri[160];
	snprintf(uri, sizeof(uri), "test://%s", f->host_path);
	a->opt.libvirt_uri = fixture_strdup(uri);
	if (mig_lease_ms != 0)
		a->opt.mig_lease_ms = mig_lease_ms;
	a->loop = &fixture_loop;
	uv_update_time(a->loop);
	snprintf(a->peer_addr, sizeof(a->peer_addr), "127.0.0.1:7946");
	snprintf(a->rpc_addr, sizeof(a->rpc_addr), "127.0.0.1:7947");

	struct hvwork_lane_config lanes[HVWORK_LANES];
	hvwork_default_config(lanes, 2);
	a->hv = hvwork_new(a->loop, lanes);
	assert_non_null(a->hv);
	/* as the agent's: libvirt's operator calls run on the worker */
	struct virt_options vo = {.uri = a->opt.libvirt_uri, .loop = a->loop, .worker = a->hv};
	a->virt = virt_new_opts(&vo);
	assert_non_null(a->virt);
	assert_true(virt_check(a->virt));
	assert_int_equal(membership_start(a, f->err, sizeof(f->err)), 0);
	assert_int_equal(peer_client_start(a, f->err, sizeof(f->err)), 0);
	assert_int_equal(rpc_service_start(a), 0);
	assert_int_equal(nodestate_start(a, f->err, sizeof(f->err)), 0);
	if (with_migration) {
		assert_int_equal(migration_start(a, f->err, sizeof(f->err)), 0);
		nodestate_refresh(a); /* as agent_start: feeds our capacity to the core */
	}
}

void fixture_stop(struct daemon_fixture *f)
{
	struct agent *a = &f->a;
	a->stopping = true;
	membership_stop(a);
	peer_client_stop(a);
	nodestate_stop(a);
	migration_stop(a);
	ha_stop(a); /* (when a test started it) */
	hvwork_stop(a->hv);
	for (int i = 0; i < 1000 && hvwork_inflight(a->hv) > 0; i++)
		uv_run(a->loop, UV_RUN_ONCE);
	hvwork_free(a->hv);
	a->hv = NULL;
	virt_free(a->virt);
	a->virt = NULL;
	for (int i = 0; i < 8; i++)
		uv_run(a->loop, UV_RUN_NOWAIT);
	membership_close(a);
	peer_client_close(a);
	nodestate_close(a);
	migration_close(a);
	ha_close(a);
	for (int i = 0; i < 100 && uv_loop_alive(a->loop); i++)
		uv_run(a->loop, UV_RUN_NOWAIT);
	peer_client_free(a);
	rpc_service_free(a);
	migration_free_all(a);
	ha_free(a);
	nodestate_free(a);
	membership_free(a);
	char path[160];
	static const char *const files[] = {"incarnation", "failover-journal", "quorate-stamp"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
		unlink(path);
	}
	unlink(f->host_path);
	rmdir(f->dir);
	agent_options_free(&a->opt);
}

int fixture_setup(void **state, const char *name, bool with_migration, uint32_t mig_lease_ms)
{
	struct daemon_fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	fixture_start(f, name, FIXTURE_HOST_XML, with_migration, mig_lease_ms);
	*state = f;
	return 0;
}

int fixture_teardown(void **state)
{
	fixture_stop(*state);
	free(*state);
	return 0;
}

/* A peer's address: one per first letter of its name. */
static void fixture_addr(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "127.0.0.%u:7946", (unsigned)(unsigned char)name[0]);
}

void fixture_ping(struct daemon_fixture *f, const char *name, const char *about,
                  enum swim_state about_state)
{
	fixture_ping_at(f, name, about, about_state, 1);
}

void fixture_ping_at(struct daemon_fixture *f, const char *name, const char *about,
                     enum swim_state about_state, uint64_t about_inc)
{
	char addr[64], about_addr[64];
	fixture_addr(addr, sizeof(addr), name);
	fixture_addr(about_addr, sizeof(about_addr), about ? about : "?");
	struct swim_update ups[2] = {
	    {.name = name, .addr = addr, .incarnation = 1, .state = SWIM_ALIVE, .origin = ""},
	    {.name = about,
	     .addr = about_addr,
	     .incarnation = about_inc,
	     .state = about_state,
	     .origin = name},
	};
	struct swim_msg m = {
	    .type = SWIM_MSG_PING,
	    .from = name,
	    .from_addr = addr,
	    .to = f->a.opt.name,
	    .to_addr = f->a.peer_addr,
	    .seq = 1,
	    .target = "",
	    .target_addr = "",
	    .updates = ups,
	    .n_updates = about != NULL ? 2 : 1,
	};
	assert_int_equal(swim_handle_message(membership_swim(&f->a), &m, uv_now(f->a.loop)), 0);
	membership_pump(&f->a);
}

/* The envelope inside a frame, as the network hands it to the agent. */
static Mv__Envelope *fixture_unframe(uint8_t *frame, size_t len)
{
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	assert_true(len > FRAME_HEADER_LEN);
	assert_int_equal(
	    envelope_decode(frame + FRAME_HEADER_LEN, len - FRAME_HEADER_LEN, &env, &why), 0);
	free(frame);
	return env;
}

void fixture_push_state(struct daemon_fixture *f, const char *from, uint64_t incarnation,
                        uint64_t version, const uint8_t *data, size_t len)
{
	struct nstate_record r = {
	    .name = from, .incarnation = incarnation, .version = version, .data = data, .len = len};
	struct nstate_msg m = {
	    .type = NSTATE_PUSH,
	    .from = from,
	    .to = f->a.opt.name,
	    .to_addr = f->a.peer_addr,
	    .records = &r,
	    .n_records = 1,
	    .hops = 1,
	};
	uint8_t *frame = NULL;
	size_t flen = 0;
	assert_int_equal(state_codec_encode_frame(&m, &frame, &flen), 0);
	Mv__Envelope *env = fixture_unframe(frame, flen);
	nodestate_handle_envelope(&f->a, env);
	envelope_free(env);
}

void fixture_send_mig(struct daemon_fixture *f, const struct mig_msg *m)
{
	uint8_t *frame = NULL;
	size_t len = 0;
	assert_int_equal(mig_codec_encode_frame(m, "test:///default", "", &frame, &len), 0);
	Mv__Envelope *env = fixture_unframe(frame, len);
	migration_handle_envelope(&f->a, env);
	envelope_free(env);
}

static void fixture_on_deadline(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

bool fixture_run_until(struct daemon_fixture *f, bool (*pred)(void *), void *arg, unsigned ms)
{
	bool passed = false;
	uv_timer_t deadline;
	uv_timer_init(f->a.loop, &deadline);
	deadline.data = &passed;
	uv_timer_start(&deadline, fixture_on_deadline, ms, 0);
	while (!pred(arg) && !passed)
		uv_run(f->a.loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(f->a.loop, UV_RUN_NOWAIT);
	return pred(arg);
}

static bool fixture_clock_passed(void *arg)
{
	struct daemon_fixture *f = arg;
	uv_update_time(f->a.loop);
	return uv_now(f->a.loop) > f->till;
}

bool fixture_run_till(struct daemon_fixture *f, uint64_t when)
{
	f->till = when;
	return fixture_run_until(f, fixture_clock_passed, f, 5000);
}
