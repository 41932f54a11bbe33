/*
 * daemon_fixture.h — one agent in process for the daemon services' unit
 * tests (test_nodestate.c, test_migration.c): its own data_dir, libvirt's
 * test driver on a host file the test gives (a fresh state on every open),
 * membership, the peer client and the sink registry, and no network (the services' sends go nowhere).
 * Peers exist only as what the test feeds: SWIM pings, node-state and
 * migration envelopes encoded by the real codecs.
 */
#ifndef MESHVISOR_TEST_DAEMON_FIXTURE_H
#define MESHVISOR_TEST_DAEMON_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "meshvisor/mig.h"
#include "meshvisor/swim.h"

/* A host of 8 CPUs and 16 GiB with two VMs: alpha (HA, priority 7, owner
 * epoch 4, running, 2 vCPUs, 2 GiB) and beta (shut off, 1 vCPU, 512 MiB). */
extern const char FIXTURE_HOST_XML[];
#define ALPHA_UUID "11111111-2222-3333-4444-555555555555"
#define BETA_UUID "22222222-2222-3333-4444-555555555555"

struct daemon_fixture {
	struct agent a;
	char dir[64];
	char host_path[128];
	char err[512];
	uint64_t till; /* fixture_run_till */
};

/* Starts an agent named `name` on the host described by host_xml (libvirt
 * test driver), with membership and node state (and migration when
 * with_migration, its lease mig_lease_ms, 0: the default); every step is
 * asserted. */
void fixture_start(struct daemon_fixture *f, const char *name, const char *host_xml,
                   bool with_migration, uint32_t mig_lease_ms);
/* Stops, closes and frees everything fixture_start made. */
void fixture_stop(struct daemon_fixture *f);
/* cmocka fixtures: a fixture allocated and started as fixture_start says,
 * into *state; and its teardown (fixture_stop, then freed). */
/* Non-zero: fixture_start finds this incarnation saved in its data_dir, as
 * an agent restarted on a data_dir it used before (0: a fresh one). */
extern uint64_t fixture_prior_incarnation;

int fixture_setup(void **state, const char *name, bool with_migration, uint32_t mig_lease_ms);
int fixture_teardown(void **state);

/* Peer `name` pings us: it becomes an alive member (the services hear of
 * it through membership). With state SWIM_SUSPECT/SWIM_DEAD in `about_state`
 * it also says so of member `about` (NULL: nothing more). */
void fixture_ping(struct daemon_fixture *f, const char *name, const char *about,
                  enum swim_state about_state);
/* The same, saying it of `about` at incarnation about_inc (above, 1). */
void fixture_ping_at(struct daemon_fixture *f, const char *name, const char *about,
                     enum swim_state about_state, uint64_t about_inc);
/* Delivers a node-state PUSH from `from` carrying `from`'s record (data,
 * len at incarnation/version) to nodestate_handle_envelope. */
void fixture_push_state(struct daemon_fixture *f, const char *from, uint64_t incarnation,
                        uint64_t version, const uint8_t *data, size_t len);
/* Encodes m with the migration codec and delivers it to
 * migration_handle_envelope. */
void fixture_send_mig(struct daemon_fixture *f, const struct mig_msg *m);

/* Runs the loop until pred(arg) holds or ms passed; returns pred's value. */
bool fixture_run_until(struct daemon_fixture *f, bool (*pred)(void *), void *arg, unsigned ms);
/* Runs the loop until its clock passed `when` (uv_now); false after 5 s. */
bool fixture_run_till(struct daemon_fixture *f, uint64_t when);

#endif
