/*
 * test_fo_driver.c — agent/wire/fo_driver.h's settlement of live
 * migrations still MOVING (fo_driver_settle_moves), the one rule the
 * daemon (ha.c) and the failover simulator both run: as the target, MOVED
 * when a copy runs here at the move's epoch or newer; "never landed" once
 * nothing incoming holds it and no copy is paused here; as the source, at
 * start only, STAYED when the VM still runs here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fo_driver.h"

/* What the fake hypervisor runs and what the fake migration service
 * holds incoming. */
struct world {
	bool found;
	struct fo_driver_copy copy;
	bool incoming;
	int copy_asked, incoming_asked;
};

static bool copy_of(void *arg, const char *uuid, struct fo_driver_copy *out)
{
	struct world *w = arg;
	(void)uuid;
	w->copy_asked++;
	if (w->found)
		*out = w->copy;
	return w->found;
}

static bool incoming_of(void *arg, const char *id)
{
	struct world *w = arg;
	(void)id;
	w->incoming_asked++;
	return w->incoming;
}

/* Every move is a previous life's (the agent's start). */
static bool at_start_all(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	return true;
}

static void drain(struct fo *f)
{
	struct fo_msg m;
	while (fo_pop_output(f, &m))
		fo_msg_clear(&m);
	struct fo_event e;
	while (fo_pop_event(f, &e))
		fo_event_clear(&e);
}

/* Core "n1" that heard "n0" announce move m1 of VM u1 to n1, at epoch 6. */
static struct fo *target_core(void)
{
	struct fo_config c;
	fo_config_default(&c);
	snprintf(c.name, sizeof(c.name), "n1");
	c.join_after_ms = 0; /* n0 and n2 vote at once */
	struct fo *f = fo_new(&c, 1000);
	assert_non_null(f);
	fo_member(f, "n0", FO_ALIVE, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	struct fo_move mv;
	memset(&mv, 0, sizeof(mv));
	snprintf(mv.id, sizeof(mv.id), "m1");
	snprintf(mv.uuid, sizeof(mv.uuid), "u1");
	snprintf(mv.source, sizeof(mv.source), "n0");
	snprintf(mv.target, sizeof(mv.target), "n1");
	mv.epoch = 6;
	mv.state = FO_MOVE_MOVING;
	struct fo_msg hb;
	memset(&hb, 0, sizeof(hb));
	hb.type = FO_HEARTBEAT;
	snprintf(hb.from, sizeof(hb.from), "n0");
	snprintf(hb.to, sizeof(hb.to), "n1");
	hb.incarnation = 1;
	hb.stamp = 5000;
	hb.moves = &mv;
	hb.n_moves = 1;
	assert_int_equal(fo_handle_message(f, &hb, 1100), 0);
	drain(f);
	return f;
}

static enum fo_move_state state_of(struct fo *f, const char *id)
{
	struct fo_move got;
	assert_true(fo_move_find(f, id, &got));
	return got.state;
}

static void test_target_settles(void **state)
{
	(void)state;
	/* a copy runs here at the move's epoch: it landed */
	struct fo *f = target_core();
	struct world w = {.found = true, .copy = {.running = true, .epoch = 6}};
	assert_int_equal(fo_driver_settle_moves(f, "n1", NULL, 1200, copy_of, incoming_of, &w), 1);
	assert_int_equal(state_of(f, "m1"), FO_MOVE_MOVED);
	assert_int_equal(fo_driver_settle_moves(f, "n1", NULL, 1300, copy_of, incoming_of, &w), 0);
	fo_free(f);

	/* an older copy, an incoming job still holding it: not yet */
	f = target_core();
	w = (struct world){.found = true, .copy = {.running = true, .epoch = 5}, .incoming = true};
	assert_int_equal(fo_driver_settle_moves(f, "n1", NULL, 1200, copy_of, incoming_of, &w), 1);
	assert_int_equal(state_of(f, "m1"), FO_MOVE_MOVING);
	assert_int_equal(w.incoming_asked, 1);
	/* a paused copy (the migration is arriving): not yet either */
	w = (struct world){.found = true, .copy = {.paused = true, .epoch = 6}};
	fo_driver_settle_moves(f, "n1", NULL, 1300, copy_of, incoming_of, &w);
	assert_int_equal(state_of(f, "m1"), FO_MOVE_MOVING);
	/* nothing here, nothing incoming: it never landed */
	w = (struct world){.found = false};
	assert_int_equal(fo_driver_settle_moves(f, "n1", NULL, 1400, copy_of, incoming_of, &w), 1);
	assert_int_equal(state_of(f, "m1"), FO_MOVE_STAYED);
	fo_free(f);
}

static void test_source_settles_at_start_only(void **state)
{
	(void)state;
	struct fo_config c;
	fo_config_default(&c);
	snprintf(c.name, sizeof(c.name), "n0");
	struct fo *f = fo_new(&c, 1000);
	assert_non_null(f);
	/* a single voter is quorate by itself: the move can begin */
	assert_int_equal(fo_move_begin(f, "m2", "u2", "n1", 4, 1000), 0);
	drain(f);
	struct world w = {.found = true, .copy = {.running = true, .epoch = 4}};
	/* not at start: the source's own job will say how it ended */
	assert_int_equal(fo_driver_settle_moves(f, "n0", NULL, 1100, copy_of, incoming_of, &w), 1);
	assert_int_equal(state_of(f, "m2"), FO_MOVE_MOVING);
	assert_int_equal(w.incoming_asked, 0);
	/* a previous life's move at start, the VM not here: its target says */
	w.found = false;
	fo_driver_settle_moves(f, "n0", at_start_all, 1200, copy_of, incoming_of, &w);
	assert_int_equal(state_of(f, "m2"), FO_MOVE_MOVING);
	/* ... and the VM still here: it stayed */
	w.found = true;
	fo_driver_settle_moves(f, "n0", at_start_all, 1300, copy_of, incoming_of, &w);
	assert_int_equal(state_of(f, "m2"), FO_MOVE_STAYED);
	fo_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_target_settles),
	    cmocka_unit_test(test_source_settles_at_start_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
