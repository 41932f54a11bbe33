/*
 * cli_client.h — the pieces of the RPC client (cli_client.c) that decide
 * what `meshvisor ha` prints and exits with, and how the agent address is
 * read, exposed for the unit tests
 * (tests/unit/test_cli.c). Pure: no I/O, no clock.
 *
 * Ownership: every function writes into the caller's buffer (always
 * NUL-terminated, truncated to fit) and returns it; nothing is allocated.
 */
#ifndef MESHVISOR_CLI_CLIENT_H
#define MESHVISOR_CLI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "meshvisor.pb-c.h"

/* A duration for people: "850 ms", "12.4 s", "3 min 05 s", "2 h 10 min",
 * "3 d 04 h". */
const char *cli_duration_text(uint64_t ms, char *buf, size_t len);

/* One row of `meshvisor ha`'s list of HA VMs that should run and do not,
 * under the header cli_owed_header() gives: VM, its host, down for, why,
 * what the cluster is doing. Empty fields print as "-". */
const char *cli_owed_header(char *buf, size_t len);
const char *cli_owed_row(const Mv__OwedVm *o, char *buf, size_t len);

/* The exit status of `meshvisor ha` (cli.h codes): CLI_EXIT_FAIL when an
 * HA VM that should run does not (the reply lists it), or when the loss of
 * some one host would leave HA VMs without room (ok false); else
 * CLI_EXIT_OK. */
int cli_ha_exit_code(const Mv__HaReply *h);

/* Splits the agent address "HOST:PORT", "IP:PORT" or "[IPv6]:PORT" into
 * its host (brackets removed; a name is resolved later) and port (1 to
 * 65535, digits only). 0, or -EINVAL when addr has no such shape or a part
 * does not fit its buffer. */
int cli_split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen);

#endif
