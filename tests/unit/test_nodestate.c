/*
 * test_nodestate.c — the node-state service (agent/daemon/nodestate.c)
 * through its interface, in process: an agent on libvirt's test driver,
 * no network (daemon_fixture.h).
 *   - this host's record: what goes in (libvirt's host and VMs, the
 *     options, contributors' fields), versions that grow only when it
 *     changes, a change in the libvirt view or a significant field
 *     published at once, a load-only change not;
 *   - peers' records: learned from a PUSH, refused when the envelope is
 *     not a state message, kept while the peer is dead, forgotten when it
 *     is reaped; an undecodable record is not handed out;
 *   - no service: the views answer nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon_fixture.h"
#include "membership.h"
#include "nodestate.h"

/* ---- a contributor the tests steer ------------------------------------------ */

static struct {
	bool restarting;  /* vm_restarting's answer for alpha */
	bool draining;    /* fill: the draining flag */
	double load;      /* fill: load1 */
	bool migration;   /* list_migrations: one move */
	unsigned built;   /* records built */
	unsigned changed; /* changes heard */
	bool built_had_vms;
} co;

static bool co_vm_restarting(struct agent *a, const char *uuid)
{
	(void)a;
	return co.restarting && strcmp(uuid, ALPHA_UUID) == 0;
}

static void co_fill(struct agent *a, Mv__NodeState *ns)
{
	(void)a;
	ns->draining = co.draining;
	ns->load1 = co.load;
}

static size_t co_list_migrations(struct agent *a, Mv__MigrationInfo *out, size_t cap)
{
	(void)a;
	if (!co.migration || cap == 0)
		return 0;
	mv__migration_info__init(&out[0]);
	out[0].id = "m-1";
	out[0].vm = "alpha";
	out[0].target = "b";
	out[0].phase = "proposing";
	return 1;
}

static void co_built(struct agent *a, const Mv__NodeState *ns)
{
	(void)a;
	co.built++;
	co.built_had_vms = ns->n_vms == 2;
}

static void co_changed(struct agent *a)
{
	(void)a;
	co.changed++;
}

static const struct nodestate_contributor contributor = {
    .vm_restarting = co_vm_restarting,
    .fill = co_fill,
    .list_migrations = co_list_migrations,
    .built = co_built,
    .changed = co_changed,
};

/* ---- helpers ------------------------------------------------------------------- */

static int setup(void **state)
{
	memset(&co, 0, sizeof(co));
	assert_int_equal(nodestate_add_contributor(&contributor), 0);
	return fixture_setup(state, "a", false, 0);
}

static Mv__NodeState *own(struct daemon_fixture *f)
{
	Mv__NodeState *ns = nodestate_unpack_name(&f->a, "a");
	assert_non_null(ns);
	return ns;
}

static uint64_t own_version(struct daemon_fixture *f)
{
	Mv__NodeState *ns = own(f);
	uint64_t v = ns->version;
	mv__node_state__free_unpacked(ns, NULL);
	return v;
}

static const Mv__VmInfo *vm_of(const Mv__NodeState *ns, const char *name)
{
	for (size_t i = 0; i < ns->n_vms; i++)
		if (strcmp(ns->vms[i]->name, name) == 0)
			return ns->vms[i];
	fail_msg("no VM %s in the record", name);
	return NULL;
}

/* A peer's record, packed. */
static uint8_t *peer_record(const char *name, uint32_t cpus, size_t *len)
{
	Mv__NodeState ns = MV__NODE_STATE__INIT;
	ns.name = (char *)name;
	ns.cpus = cpus;
	ns.incarnation = 1;
	*len = mv__node_state__get_packed_size(&ns);
	uint8_t *buf = malloc(*len);
	assert_non_null(buf);
	mv__node_state__pack(&ns, buf);
	return buf;
}

/* ---- this host's record -------------------------------------------------------- */

static void test_own_record(void **state)
{
	struct daemon_fixture *f = *state;
	assert_int_equal(nodestate_count(&f->a), 1);
	Mv__NodeState *ns = own(f);
	assert_string_equal(ns->name, "a");
	assert_string_equal(ns->rpc_addr, "127.0.0.1:7947");
	assert_int_equal(ns->incarnation, swim_incarnation(membership_swim(&f->a)));
	assert_int_equal(ns->version, 1);
	assert_true(ns->updated_unix_ms > 0);
	assert_int_equal(ns->cpus, 8);
	assert_int_equal(ns->memory_kib, 16777216);
	assert_int_equal(ns->memory_reserved_kib, 1024 * 1024); /* the default 1024 MiB */
	assert_true(ns->libvirt_reachable);
	assert_false(ns->inventory_stale);
	assert_false(ns->inventory_unknown);
	assert_string_equal(ns->cpu_model, "meshvisor-cpu");
	assert_int_equal(ns->n_vms, 2);
	const Mv__VmInfo *alpha = vm_of(ns, "alpha");
	assert_int_equal(alpha->state, MV__VM_STATE__VM_RUNNING);
	assert_true(alpha->ha);
	assert_int_equal(alpha->owner_epoch, 4);
	assert_int_equal(alpha->priority, 7);
	assert_false(alpha->restarting);
	assert_int_equal(vm_of(ns, "beta")->state, MV__VM_STATE__VM_SHUTOFF);
	/* only running VMs count as allocated */
	assert_int_equal(ns->vcpus_allocated, 2);
	assert_int_equal(ns->memory_allocated_kib, 2097152);
	assert_true(co.built >= 1);
	assert_true(co.built_had_vms);
	assert_int_equal(co.changed, 1); /* the first publication */
	mv__node_state__free_unpacked(ns, NULL);
}

/* Nothing changed: no new version, nobody told. */
static void test_unchanged_not_republished(void **state)
{
	struct daemon_fixture *f = *state;
	unsigned built = co.built, changed = co.changed;
	nodestate_refresh(&f->a);
	nodestate_refresh(&f->a);
	assert_int_equal(own_version(f), 1);
	assert_int_equal(co.built, built + 2); /* built and compared every time */
	assert_int_equal(co.changed, changed);
}

/* A VM stops in libvirt: published at once with the next version, and an
 * HA VM this host restarts itself says so. */
static void test_libvirt_change(void **state)
{
	struct daemon_fixture *f = *state;
	co.restarting = true;
	assert_int_equal(virt_vm_destroy(f->a.virt, "alpha", f->err, sizeof(f->err)), 0);
	virt_reconcile(f->a.virt);
	nodestate_refresh(&f->a);
	Mv__NodeState *ns = own(f);
	assert_int_equal(ns->version, 2);
	assert_int_equal(vm_of(ns, "alpha")->state, MV__VM_STATE__VM_SHUTOFF);
	assert_true(vm_of(ns, "alpha")->restarting);
	assert_false(vm_of(ns, "beta")->restarting); /* not HA */
	assert_int_equal(ns->vcpus_allocated, 0);
	assert_int_equal(co.changed, 2);
	mv__node_state__free_unpacked(ns, NULL);
}

/* The options are read at every build: a new label is a significant change. */
static void test_labels_and_zone(void **state)
{
	struct daemon_fixture *f = *state;
	f->a.opt.zone = strdup("z1");
	f->a.opt.labels[0] = strdup("role=db");
	f->a.opt.n_labels = 1;
	nodestate_refresh(&f->a);
	Mv__NodeState *ns = own(f);
	assert_int_equal(ns->version, 2);
	assert_string_equal(ns->zone, "z1");
	assert_int_equal(ns->n_labels, 1);
	assert_string_equal(ns->labels[0]->key, "role");
	assert_string_equal(ns->labels[0]->value, "db");
	mv__node_state__free_unpacked(ns, NULL);
}

/* Contributors' fields: the draining flag is urgent; their moves appear. */
static void test_contributor_fields(void **state)
{
	struct daemon_fixture *f = *state;
	co.draining = true;
	co.migration = true;
	nodestate_refresh(&f->a);
	Mv__NodeState *ns = own(f);
	assert_int_equal(ns->version, 2);
	assert_true(ns->draining);
	assert_int_equal(ns->n_migrations, 1);
	assert_string_equal(ns->migrations[0]->id, "m-1");
	assert_string_equal(ns->migrations[0]->target, "b");
	mv__node_state__free_unpacked(ns, NULL);
}

/* Load alone is not worth a push: not published before NODESTATE_LAZY_MS
 * (nor, the policy says, before it moves past the load step). */
static void test_load_only_is_lazy(void **state)
{
	struct daemon_fixture *f = *state;
	unsigned changed = co.changed;
	co.load = 3.5;
	nodestate_refresh(&f->a);
	Mv__NodeState *ns = own(f);
	assert_int_equal(ns->version, 1);
	assert_true(ns->load1 == 0);
	assert_int_equal(co.changed, changed);
	mv__node_state__free_unpacked(ns, NULL);
}

/* ---- the publication policy (pure) --------------------------------------------- */

/* The policy's answer with sig unchanged, something changed, 16 GiB. */
static enum nodestate_publish policy_at(const struct agent_options *o,
                                        const struct nodestate_last *last, double load,
                                        uint64_t free_kib, uint64_t now)
{
	return nodestate_policy(o, last, false, true, load, 16 << 20, free_kib, now);
}

static void test_policy_load_threshold_and_hysteresis(void **state)
{
	(void)state;
	struct agent_options o;
	agent_options_init(&o);
	/* the defaults: 1.0 or 50% */
	struct nodestate_last at3 = {.any = true, .load1 = 3.0, .free_kib = 8 << 20};
	assert_int_equal(policy_at(&o, &at3, 4.45, 8 << 20, 60000), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &at3, 4.55, 8 << 20, 60000), NODESTATE_LAZY);
	/* finer steps for the cases below: max(0.5, 25%) */
	o.state_load_step = 0.5;
	o.state_load_step_pct = 25;
	const uint64_t free = 8 << 20, t = 60000; /* 8 of 16 GiB; a minute later */
	struct nodestate_last last = {.any = true, .at_ms = 0, .load1 = 2.0, .free_kib = free};
	/* under the step (0.5 at load 2): kept; past it, either way: lazy */
	assert_int_equal(policy_at(&o, &last, 2.45, free, t), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 1.55, free, t), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 2.55, free, t), NODESTATE_LAZY);
	assert_int_equal(policy_at(&o, &last, 1.45, free, t), NODESTATE_LAZY);
	/* past it but within NODESTATE_LAZY_MS (10 s) of the last: kept */
	assert_int_equal(policy_at(&o, &last, 4.0, free, 9999), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 4.0, free, 10000), NODESTATE_LAZY);
	/* relative step at a high load: 25% of 10 = 2.5 */
	last.load1 = 10.0;
	assert_int_equal(policy_at(&o, &last, 12.4, free, t), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 12.6, free, t), NODESTATE_LAZY);
	assert_int_equal(policy_at(&o, &last, 7.4, free, t), NODESTATE_LAZY);
	/* hysteresis: published at 2.6, a load that falls back to 2.2 and
	 * jitters across 2.5 (a round number a fixed grid would cut at) is
	 * kept; only a swing past the band around 2.6 (+-0.65) publishes */
	last.load1 = 2.6;
	const double jitter[] = {2.2, 2.5, 2.49, 2.51, 2.3, 2.9, 3.05, 2.15};
	for (size_t k = 0; k < sizeof(jitter) / sizeof(jitter[0]); k++)
		assert_int_equal(policy_at(&o, &last, jitter[k], free, t), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 3.3, free, t), NODESTATE_LAZY);
	/* configured steps */
	o.state_load_step = 2.0;
	o.state_load_step_pct = 0;
	assert_int_equal(policy_at(&o, &last, 4.5, free, t), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 4.7, free, t), NODESTATE_LAZY);
	/* a NaN load is never published */
	assert_int_equal(policy_at(&o, &last, 0.0 / 0.0, free, t), NODESTATE_KEEP);
	agent_options_free(&o);
}

static void test_policy_urgent_and_floor(void **state)
{
	(void)state;
	struct agent_options o;
	agent_options_init(&o);
	const uint64_t mem = 16 << 20, free = 8 << 20; /* 5% of 16 GiB = 838861 KiB */
	struct nodestate_last last = {.any = true, .at_ms = 0, .load1 = 1.0, .free_kib = free};
	/* the first record, and any significant change: urgent at once */
	struct nodestate_last none = {0};
	assert_int_equal(nodestate_policy(&o, &none, false, false, 1.0, mem, free, 0),
	                 NODESTATE_URGENT);
	assert_int_equal(nodestate_policy(&o, &last, true, true, 1.0, mem, free, 1),
	                 NODESTATE_URGENT);
	/* free memory: 4% moved is kept, 6% is urgent (either way), however
	 * recent the last publication */
	assert_int_equal(policy_at(&o, &last, 1.0, free + mem * 4 / 100, 1), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 1.0, free + mem * 6 / 100, 1), NODESTATE_URGENT);
	assert_int_equal(policy_at(&o, &last, 1.0, free - mem * 6 / 100, 1), NODESTATE_URGENT);
	/* no floor by default: small changes are never republished */
	assert_int_equal(policy_at(&o, &last, 1.2, free, 1000ull * 86400 * 365), NODESTATE_KEEP);
	/* with a floor: any change, once that old; nothing when nothing changed */
	o.state_republish_s = 300;
	assert_int_equal(policy_at(&o, &last, 1.2, free, 299999), NODESTATE_KEEP);
	assert_int_equal(policy_at(&o, &last, 1.2, free, 300000), NODESTATE_LAZY);
	assert_int_equal(nodestate_policy(&o, &last, false, false, 1.0, mem, free, 300000),
	                 NODESTATE_KEEP);
	agent_options_free(&o);
}

/* ---- peers' records ------------------------------------------------------------ */

static void test_peer_record_learned(void **state)
{
	struct daemon_fixture *f = *state;
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	unsigned changed = co.changed;
	size_t len;
	uint8_t *rec = peer_record("b", 4, &len);
	fixture_push_state(f, "b", 1, 3, rec, len);
	assert_int_equal(nodestate_count(&f->a), 2);
	Mv__NodeState *b = nodestate_unpack_name(&f->a, "b");
	assert_non_null(b);
	assert_int_equal(b->cpus, 4);
	mv__node_state__free_unpacked(b, NULL);
	assert_int_equal(co.changed, changed + 1);
	/* the same version again: nothing new */
	fixture_push_state(f, "b", 1, 3, rec, len);
	assert_int_equal(co.changed, changed + 1);
	free(rec);
	/* by index too: both records, ours among them */
	bool saw_a = false, saw_b = false;
	for (size_t i = 0; i < nodestate_count(&f->a); i++) {
		Mv__NodeState *ns = nodestate_unpack_at(&f->a, i);
		assert_non_null(ns);
		saw_a |= strcmp(ns->name, "a") == 0;
		saw_b |= strcmp(ns->name, "b") == 0;
		mv__node_state__free_unpacked(ns, NULL);
	}
	assert_true(saw_a && saw_b);

	/* dead: its record stays; reaped: forgotten */
	struct swim_event dead = {.type = SWIM_EV_MEMBER_DEAD,
	                          .name = "b",
	                          .addr = "x",
	                          .incarnation = 1,
	                          .state = SWIM_DEAD,
	                          .cause = "test"};
	nodestate_on_member_event(&f->a, &dead);
	assert_int_equal(nodestate_count(&f->a), 2);
	struct swim_event reaped = dead;
	reaped.type = SWIM_EV_MEMBER_REAPED;
	nodestate_on_member_event(&f->a, &reaped);
	assert_int_equal(nodestate_count(&f->a), 1);
	assert_null(nodestate_unpack_name(&f->a, "b"));
}

/* An envelope that is not a state message is refused: nothing learned,
 * our record untouched. */
static void test_foreign_envelope_refused(void **state)
{
	struct daemon_fixture *f = *state;
	unsigned changed = co.changed;
	Mv__Envelope env = MV__ENVELOPE__INIT;
	env.version = 1;
	env.from = "b";
	env.body_case = MV__ENVELOPE__BODY_SWIM; /* wrong body, and no body at all */
	nodestate_handle_envelope(&f->a, &env);
	env.body_case = MV__ENVELOPE__BODY_STATE; /* says state, carries none */
	nodestate_handle_envelope(&f->a, &env);
	assert_int_equal(nodestate_count(&f->a), 1);
	assert_int_equal(own_version(f), 1);
	assert_int_equal(co.changed, changed);
}

/* A record that is not an mv.NodeState spreads (the core carries bytes)
 * but is never handed out. */
static void test_undecodable_record(void **state)
{
	struct daemon_fixture *f = *state;
	fixture_ping(f, "b", NULL, SWIM_ALIVE);
	static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
	fixture_push_state(f, "b", 1, 1, junk, sizeof(junk));
	assert_int_equal(nodestate_count(&f->a), 2);
	assert_null(nodestate_unpack_name(&f->a, "b"));
	assert_null(nodestate_unpack_name(&f->a, "nobody"));
}

/* Before the service starts (or after it is freed): no records. */
static void test_no_service(void **state)
{
	(void)state;
	struct agent a;
	memset(&a, 0, sizeof(a));
	assert_int_equal(nodestate_count(&a), 0);
	assert_null(nodestate_unpack_name(&a, "a"));
	nodestate_refresh(&a); /* nothing to do, nothing done */
	nodestate_stop(&a);
	nodestate_close(&a);
	nodestate_free(&a);
	assert_null(a.nodestate);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_own_record, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_unchanged_not_republished, setup,
	                                    fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_libvirt_change, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_labels_and_zone, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_contributor_fields, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_load_only_is_lazy, setup, fixture_teardown),
	    cmocka_unit_test(test_policy_load_threshold_and_hysteresis),
	    cmocka_unit_test(test_policy_urgent_and_floor),
	    cmocka_unit_test_setup_teardown(test_peer_record_learned, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_foreign_envelope_refused, setup, fixture_teardown),
	    cmocka_unit_test_setup_teardown(test_undecodable_record, setup, fixture_teardown),
	    cmocka_unit_test(test_no_service),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
