/*
 * fuzz_config.c — libFuzzer target for the agent's config file reader.
 *
 * Each input is written whole to an anonymous memory file and read back
 * through agent_options_load_file() by its /proc/self/fd path, exactly as
 * the agent reads /etc/meshvisor/meshvisor.json; whatever loads is then
 * validated. The reader must never crash, leak or read out of bounds, and
 * must set an error message whenever it refuses. Needs mv_agent (json-c).
 *
 *   seeds: printf '{"name":"n1","swim":{"probe_interval_ms":900}}' > corpus/a
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	if (fd < 0) {
		fd = memfd_create("fuzz_config.json", 0);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: writing memfd");
		abort();
	}

	struct agent_options o;
	char err[512];
	agent_options_init(&o);
	err[0] = '\0';
	int rc = agent_options_load_file(&o, path, err, sizeof(err));
	if (rc < 0 && err[0] == '\0')
		abort(); /* every refusal must say why */
	if (rc == 0) {
		err[0] = '\0';
		rc = agent_options_validate(&o, err, sizeof(err));
		if (rc < 0 && err[0] == '\0')
			abort();
	}
	agent_options_free(&o);
	return 0;
}
