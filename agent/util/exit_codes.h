/*
 * exit_codes.h — the exit status of every meshvisor command line: the
 * agent (`meshvisor agent`) and the client commands alike.
 */
#ifndef MESHVISOR_EXIT_CODES_H
#define MESHVISOR_EXIT_CODES_H

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

#endif
