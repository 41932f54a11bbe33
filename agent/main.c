/*
 * main.c — the one `meshvisor` binary: the agent daemon and its CLI.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "cli.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: meshvisor <command> [options]\n"
	        "\n"
	        "Daemon:\n"
	        "  agent       run the node agent (see 'meshvisor agent --help')\n"
	        "\n"
	        "Cluster queries and operations (against any node's RPC port):\n"
	        "  members     list cluster members as that node sees them\n"
	        "  status      show that agent's status and health\n"
	        "  join        ask that agent to join a cluster through seed addresses\n"
	        "  leave       ask that agent to leave the cluster gracefully and stop\n"
	        "  nodes       every host: capacity, allocation, health, labels\n"
	        "  node NAME   one host in full\n"
	        "  vms         every VM in the cluster and its host (--node NAME: one host)\n"
	        "  vm          show, create, start, shutdown, destroy, undefine, set-ha\n"
	        "              (see 'meshvisor vm --help'; forwarded to the VM's host)\n"
	        "  migrate     move a VM to another host (live where the hypervisor can)\n"
	        "  migrations  running and recent migrations across the cluster\n"
	        "  drain       move every VM off a host and keep new ones away; undrain\n"
	        "\n"
	        "High availability:\n"
	        "  events      stream cluster events (membership, quorum, fencing, restarts)\n"
	        "  failovers   past and running failovers: timings and each VM's outcome\n"
	        "  ha          can every HA VM survive the loss of any one host? quorum\n"
	        "  force-leave NODE  remove a dead host from the voting set (asks to confirm;\n"
	        "              refused by a node that does not hear a majority unless\n"
	        "              --majority-is-gone: you verified the others are powered off)\n"
	        "\n"
	        "Certificates:\n"
	        "  tls         create the cluster CA and node/operator/viewer certificates\n"
	        "\n"
	        "  version     print the version\n"
	        "\n"
	        "Client commands read MESHVISOR_ADDR, MESHVISOR_CA, MESHVISOR_CERT and\n"
	        "MESHVISOR_KEY from the environment when --addr/--ca/--cert/--key are absent.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (strcmp(cmd, "agent") == 0)
		return agent_main(argc - 1, argv + 1);
	if (strcmp(cmd, "members") == 0 || strcmp(cmd, "status") == 0 || strcmp(cmd, "join") == 0 ||
	    strcmp(cmd, "leave") == 0 || strcmp(cmd, "nodes") == 0 || strcmp(cmd, "node") == 0 ||
	    strcmp(cmd, "vms") == 0 || strcmp(cmd, "vm") == 0 || strcmp(cmd, "migrate") == 0 ||
	    strcmp(cmd, "migrations") == 0 || strcmp(cmd, "drain") == 0 ||
	    strcmp(cmd, "undrain") == 0 || strcmp(cmd, "events") == 0 ||
	    strcmp(cmd, "failovers") == 0 || strcmp(cmd, "ha") == 0 ||
	    strcmp(cmd, "force-leave") == 0)
		return cli_client_main(argc - 1, argv + 1);
	if (strcmp(cmd, "tls") == 0)
		return cli_tls_main(argc - 1, argv + 1);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("meshvisor %s\n", MV_VERSION);
		return CLI_EXIT_OK;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return CLI_EXIT_OK;
	}
	fprintf(stderr, "meshvisor: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
