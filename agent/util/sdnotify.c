/*
 * sdnotify.c — sd_notify(3)'s wire protocol; see sdnotify.h.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int mv_sd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	if (path == NULL || path[0] == '\0')
		return 0;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	size_t len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace: no trailing NUL counted */
	socklen_t salen =
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ssize_t n = sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
	                   (const struct sockaddr *)&sa, salen);
	int rc = n < 0 ? -errno : 1;
	close(fd);
	return rc;
}

uint64_t mv_sd_watchdog_usec(void)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	if (us == NULL || us[0] == '\0')
		return 0;
	if (pid != NULL && pid[0] != '\0') {
		char *end;
		errno = 0;
		unsigned long long p = strtoull(pid, &end, 10);
		if (errno != 0 || *end != '\0' || p != (unsigned long long)getpid())
			return 0; /* meant for another process (ours forked, or was exec'd) */
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(us, &end, 10);
	if (errno != 0 || *end != '\0' || us[0] == '-')
		return 0;
	return (uint64_t)v;
}
