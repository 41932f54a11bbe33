/*
 * test_sdnotify.c — agent/util/sdnotify.c: the sd_notify(3) datagram to a
 * path socket and to an abstract one, nothing without $NOTIFY_SOCKET, and
 * $WATCHDOG_USEC / $WATCHDOG_PID.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

static int bound_socket(const char *name, bool abstract)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t len = strlen(name);
	memcpy(sa.sun_path + (abstract ? 1 : 0), name, len);
	socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, salen), 0);
	return fd;
}

static void expect_datagram(int fd, const char *want)
{
	char buf[512];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void test_path_socket(void **state)
{
	(void)state;
	char path[64];
	snprintf(path, sizeof(path), "/tmp/mv-test-sd-%d.sock", (int)getpid());
	unlink(path);
	int fd = bound_socket(path, false);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(mv_sd_notify("READY=1\nSTATUS=serving"), 1);
	expect_datagram(fd, "READY=1\nSTATUS=serving");
	close(fd);
	unlink(path);
	/* the socket is gone: an error, not a crash or a block */
	assert_true(mv_sd_notify("WATCHDOG=1") < 0);
	unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void **state)
{
	(void)state;
	char name[64];
	snprintf(name, sizeof(name), "mv-test-sd-abstract-%d", (int)getpid());
	int fd = bound_socket(name, true);
	char env[80];
	snprintf(env, sizeof(env), "@%s", name);
	setenv("NOTIFY_SOCKET", env, 1);
	assert_int_equal(mv_sd_notify("WATCHDOG=1"), 1);
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void test_no_socket_is_a_noop(void **state)
{
	(void)state;
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(mv_sd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(mv_sd_notify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(mv_sd_notify("READY=1"), -EINVAL);
	char longname[200];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	setenv("NOTIFY_SOCKET", longname, 1);
	assert_int_equal(mv_sd_notify("READY=1"), -EINVAL);
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_usec(void **state)
{
	(void)state;
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(mv_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	assert_int_equal(mv_sd_watchdog_usec(), 30000000);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(mv_sd_watchdog_usec(), 30000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(mv_sd_watchdog_usec(), 0); /* another process's */
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "-5", 1);
	assert_int_equal(mv_sd_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "12x", 1);
	assert_int_equal(mv_sd_watchdog_usec(), 0);
	unsetenv("WATCHDOG_USEC");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_path_socket),
	    cmocka_unit_test(test_abstract_socket),
	    cmocka_unit_test(test_no_socket_is_a_noop),
	    cmocka_unit_test(test_watchdog_usec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
