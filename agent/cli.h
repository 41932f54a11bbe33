/*
 * cli.h — entry points of the `meshvisor` subcommands. Each takes the
 * argument vector starting at the subcommand's own name and returns the
 * process exit code: 0 success, 1 failure, 2 usage error.
 */
#ifndef MESHVISOR_CLI_H
#define MESHVISOR_CLI_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

int agent_main(int argc, char **argv);      /* meshvisor agent ... (agent.c) */
/* members | status | join | leave | nodes | node | vms | vm | migrate |
 * migrations | drain | undrain | events | failovers | ha | force-leave */
int cli_client_main(int argc, char **argv);
int cli_tls_main(int argc, char **argv);    /* meshvisor tls ... */

#endif
