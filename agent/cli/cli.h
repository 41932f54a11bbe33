/*
 * cli.h — entry points of the `meshvisor` subcommands. Each takes the
 * argument vector starting at the subcommand's own name and returns the
 * process exit code (exit_codes.h): 0 success, 1 failure, 2 usage error.
 * `meshvisor agent` is the daemon's (agent_main, daemon/agent.h).
 */
#ifndef MESHVISOR_CLI_H
#define MESHVISOR_CLI_H

#include "exit_codes.h"

/* members | status | join | leave | nodes | node | vms | vm | migrate |
 * migrations | drain | undrain | events | failovers | ha | force-leave */
int cli_client_main(int argc, char **argv);
int cli_tls_main(int argc, char **argv); /* meshvisor tls ... */

#endif
