/*
 * test_sim_net.c — checks of the simulator itself: byte counts equal the
 * real codec's frame sizes, a seed replays a run exactly, and the fake
 * network's faults (block, partition, pause queue, crash) do what they say.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim_scenario.h"
#include "swim_codec.h"

static void check_size(const struct swim_msg *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(swim_codec_encode_frame(m, &buf, &len), 0);
	assert_int_equal(sim_wire_size(m), len);
	assert_int_equal(swim_codec_frame_size(m), len);
	free(buf);
}

static void test_wire_size_matches_codec(void **state)
{
	static const uint8_t proof[72] = {1, 2, 3};
	struct swim_update ups[3] = {
	    {"n1", "10.0.0.2:7946", 0, SWIM_ALIVE, "", proof, sizeof(proof)},
	    {"n2", "10.0.0.3:7946", 300, SWIM_SUSPECT, "n1", NULL, 0},
	    {"a-much-longer-node-name-for-varints", "[2001:db8::1]:7946", UINT64_MAX, SWIM_LEFT,
	     "a-much-longer-node-name-for-varints", proof, 8},
	};
	struct swim_msg m = {
	    .type = SWIM_MSG_PING,
	    .from = "n0",
	    .from_addr = "10.0.0.1:7946",
	    .to = "n1",
	    .to_addr = "10.0.0.2:7946",
	    .seq = 0,
	    .target = "",
	    .target_addr = "",
	};
	check_size(&m);
	m.seq = 1;
	check_size(&m);
	m.seq = 1ull << 40;
	m.type = SWIM_MSG_PING_REQ;
	m.target = "n2";
	m.target_addr = "10.0.0.3:7946";
	m.updates = ups;
	m.n_updates = 3;
	check_size(&m);
	m.type = SWIM_MSG_PUSH_PULL;
	m.join = true;
	m.to = "";
	check_size(&m);
	/* a big push-pull: lengths above 127 and 16383 take longer varints */
	size_t big = 600;
	struct swim_update *many = calloc(big, sizeof(*many));
	char(*names)[16] = calloc(big, 16);
	assert_non_null(many);
	assert_non_null(names);
	for (size_t i = 0; i < big; i++) {
		snprintf(names[i], 16, "n%zu", i);
		many[i] = (struct swim_update){
		    names[i], "10.0.9.9:7946", i, (enum swim_state)(i % 4), i % 4 ? "n0" : "", NULL,
		    0};
	}
	m.type = SWIM_MSG_PUSH_PULL_REPLY;
	m.updates = many;
	m.n_updates = big;
	check_size(&m);
	/* digest push-pull (issue 12): packed fixed64 and packed varints */
	static uint64_t digest[SWIM_DIGEST_MAX];
	static uint32_t want[SWIM_DIGEST_MAX];
	for (size_t i = 0; i < SWIM_DIGEST_MAX; i++) {
		digest[i] = i * 0x9e3779b97f4a7c15ULL;
		want[i] = (uint32_t)i;
	}
	m.join = false;
	m.want = want;
	m.n_want = SWIM_DIGEST_MAX; /* indices above 127 take two bytes */
	m.buckets = SWIM_DIGEST_MAX;
	check_size(&m);
	m.type = SWIM_MSG_PUSH_PULL;
	m.updates = NULL;
	m.n_updates = 0;
	m.want = NULL;
	m.n_want = 0;
	m.buckets = 0;
	m.digest = digest;
	m.n_digest = 4;
	check_size(&m);
	m.n_digest = SWIM_DIGEST_MAX;
	check_size(&m);
	free(many);
	free(names);
}

struct fingerprint {
	struct sim_counters c;
	uint64_t msgs, bytes, sus, dead, now;
};

static void run_scripted(uint64_t seed, struct fingerprint *fp)
{
	struct sim *s = scn_new(12, NULL, seed);
	sim_set_delay(s, -1, -1, 2, 20); /* heavy jitter: lots of reordering */
	sim_set_loss(s, -1, -1, 0.05);
	sim_join_all(s, 0, 1000);
	sim_run_for(s, 20000);
	sim_crash(s, 5);
	sim_pause(s, 7);
	sim_run_for(s, 3000);
	sim_resume(s, 7);
	sim_run_for(s, 20000);
	memset(fp, 0, sizeof(*fp));
	fp->c = *sim_counters(s);
	for (int i = 0; i < sim_size(s); i++) {
		fp->msgs += sim_traffic(s, i)->msgs;
		fp->bytes += sim_traffic(s, i)->bytes;
	}
	fp->sus = sim_total_suspected(s);
	fp->dead = sim_total_dead(s);
	fp->now = sim_now(s);
	scn_free(s);
}

/* The same seed gives the same run, message for message. */
static void test_seed_replays(void **state)
{
	struct fingerprint a, b;
	run_scripted(4242, &a);
	run_scripted(4242, &b);
	print_message("replay: %llu msgs, %llu bytes, %llu lost, %llu suspicions, %llu dead\n",
	              (unsigned long long)a.msgs, (unsigned long long)a.bytes,
	              (unsigned long long)a.c.dropped_loss, (unsigned long long)a.sus,
	              (unsigned long long)a.dead);
	assert_true(a.msgs > 0);
	assert_memory_equal(&a, &b, sizeof(a));
}

static void test_partition_and_block_drop(void **state)
{
	struct sim *s = scn_cluster(4, NULL);
	uint64_t before = sim_counters(s)->dropped_block;
	static const int group[4] = {0, 0, 1, 1};
	sim_partition(s, group);
	sim_run_for(s, 2000);
	scn_assert(s, sim_counters(s)->dropped_block > before, "partition dropped nothing");
	sim_heal(s);
	before = sim_counters(s)->dropped_block;
	sim_run_for(s, 2000);
	scn_assert(s, sim_counters(s)->dropped_block == before, "heal left something blocked");
	sim_block(s, 0, -1);
	sim_run_for(s, 3000);
	scn_assert(s, sim_counters(s)->dropped_block > before, "one-way block dropped nothing");
	scn_free(s);
}

static void test_pause_queues_then_delivers(void **state)
{
	struct sim *s = scn_cluster(4, NULL);
	uint64_t q0 = sim_counters(s)->queued_paused;
	sim_pause(s, 1);
	scn_assert(s, !sim_is_live(s, 1) && sim_is_up(s, 1), "paused node state");
	uint64_t d0 = sim_counters(s)->delivered;
	sim_run_for(s, 1500);
	uint64_t queued = sim_counters(s)->queued_paused - q0;
	scn_assert(s, queued > 0, "nothing queued for a paused node");
	uint64_t d1 = sim_counters(s)->delivered;
	sim_resume(s, 1);
	scn_assert(
	    s, sim_counters(s)->delivered - d1 == queued, "resume delivered %llu of %llu queued",
	    (unsigned long long)(sim_counters(s)->delivered - d1), (unsigned long long)queued);
	(void)d0;
	scn_free(s);
}

static void test_crash_drops_in_flight(void **state)
{
	struct sim *s = scn_cluster(4, NULL);
	sim_set_delay(s, -1, -1, 50, 0);
	sim_run_for(s, 1000);
	uint64_t down0 = sim_counters(s)->dropped_down;
	sim_run_for(s, 10); /* let some messages be in flight towards n2 */
	sim_crash(s, 2);
	scn_assert(s, sim_core(s, 2) == NULL && !sim_is_up(s, 2), "crashed node still has a core");
	sim_run_for(s, 5000); /* round-robin probing reaches n2 within 3 rounds */
	scn_assert(s, sim_counters(s)->dropped_down > down0, "nothing dropped at a crashed node");
	scn_free(s);
}

int main(void)
{
	scn_filter_from_env();
	const struct CMUnitTest tests[] = {
	    scn_test(test_wire_size_matches_codec),  scn_test(test_seed_replays),
	    scn_test(test_partition_and_block_drop), scn_test(test_pause_queues_then_delivers),
	    scn_test(test_crash_drops_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
