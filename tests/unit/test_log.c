/*
 * test_log.c — agent/util/log.c: journald priorities, and repeated
 * warnings held back per call site with a summary of how many.
 * stderr is redirected to a temporary file and read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int saved_stderr = -1;
static char capture_path[] = "/tmp/mv-test-log-XXXXXX";
static int capture_fd = -1;

static int capture_start(void **state)
{
	(void)state;
	strcpy(capture_path, "/tmp/mv-test-log-XXXXXX");
	capture_fd = mkstemp(capture_path);
	assert_true(capture_fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(dup2(capture_fd, STDERR_FILENO) >= 0);
	mv_log_set_level(MV_LOG_DEBUG);
	mv_log_set_warn_limit(0, 0);
	mv_log_set_journal(0);
	return 0;
}

static int capture_stop(void **state)
{
	(void)state;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	close(capture_fd);
	unlink(capture_path);
	unsetenv("JOURNAL_STREAM");
	mv_log_set_journal(-1);
	return 0;
}

/* Everything written so far. */
static char *captured(void)
{
	static char buf[1 << 16];
	ssize_t n = pread(capture_fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_journal_priorities(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	char js[64];
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	mv_log_set_journal(-1); /* detect: stderr is "the journal" */
	MV_DEBUG("t", "d key=1");
	MV_INFO("t", "i key=2");
	MV_WARN("t", "w key=3");
	MV_ERROR("t", "e key=4");
	const char *out = captured();
	assert_non_null(strstr(out, "<7>"));
	assert_true(strncmp(out, "<7>", 3) == 0);
	assert_non_null(strstr(out, "\n<6>"));
	assert_non_null(strstr(out, "\n<4>"));
	assert_non_null(strstr(out, "\n<3>"));
	assert_non_null(strstr(out, "DEBUG t d key=1"));
}

static void test_no_priorities_elsewhere(void **state)
{
	(void)state;
	setenv("JOURNAL_STREAM", "1:2", 1); /* some other stream */
	mv_log_set_journal(-1);
	MV_INFO("t", "plain");
	const char *out = captured();
	assert_true(out[0] != '<');
	assert_non_null(strstr(out, "INFO  t plain"));
}

static void warn_site(int i)
{
	MV_WARN("net", "connection refused addr=%d", i);
}

static void test_repeated_warnings_held_back(void **state)
{
	(void)state;
	mv_log_set_warn_limit(5, 200);
	for (int i = 0; i < 50; i++)
		warn_site(i);
	MV_WARN("net", "another site key=1"); /* a different call site: not held */
	const char *out = captured();
	assert_int_equal(count_lines(out, "connection refused addr="), 5);
	assert_int_equal(count_lines(out, "another site"), 1);
	assert_null(strstr(out, "suppressed="));
	/* errors and info are never held back, nor safety records */
	for (int i = 0; i < 30; i++)
		MV_ERROR("t", "error line n=%d", i);
	assert_int_equal(count_lines(captured(), "error line n="), 30);
	for (int i = 0; i < 30; i++)
		MV_WARN_ALWAYS("failover", "fenced vm name=v%d", i);
	assert_int_equal(count_lines(captured(), "fenced vm name=v"), 30);

	/* the window ends: the flush says how many were held */
	struct timespec ts = {0, 250 * 1000000L};
	nanosleep(&ts, NULL);
	mv_log_flush_suppressed();
	out = captured();
	assert_non_null(strstr(out, "WARN  log repeated warning suppressed=45 window_ms=200 "
	                            "component=net message=\"connection refused\""));
	/* said once */
	mv_log_flush_suppressed();
	assert_int_equal(count_lines(captured(), "suppressed="), 1);
	/* a new window writes again */
	warn_site(99);
	assert_non_null(strstr(captured(), "connection refused addr=99"));
}

static void test_summary_with_next_line(void **state)
{
	(void)state;
	mv_log_set_warn_limit(2, 100);
	for (int i = 0; i < 10; i++)
		warn_site(i);
	struct timespec ts = {0, 150 * 1000000L};
	nanosleep(&ts, NULL);
	warn_site(1000); /* the site's next line brings the summary first */
	const char *out = captured();
	const char *sum = strstr(out, "suppressed=8 ");
	const char *next = strstr(out, "connection refused addr=1000");
	assert_non_null(sum);
	assert_non_null(next);
	assert_true(sum < next);
}

static void test_level_names(void **state)
{
	(void)state;
	for (int l = MV_LOG_DEBUG; l <= MV_LOG_ERROR; l++)
		assert_int_equal(mv_log_level_parse(mv_log_level_name((enum mv_log_level)l)), l);
	assert_string_equal(mv_log_level_name((enum mv_log_level)9), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_journal_priorities, capture_start, capture_stop),
	    cmocka_unit_test_setup_teardown(test_no_priorities_elsewhere, capture_start,
	                                    capture_stop),
	    cmocka_unit_test_setup_teardown(test_repeated_warnings_held_back, capture_start,
	                                    capture_stop),
	    cmocka_unit_test_setup_teardown(test_summary_with_next_line, capture_start,
	                                    capture_stop),
	    cmocka_unit_test(test_level_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
