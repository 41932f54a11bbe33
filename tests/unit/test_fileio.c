/*
 * test_fileio.c — agent/util/fileio.c: bounded whole-file reads and durable
 * (temporary file + fsync + rename) writes, and every error they return.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileio.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/mv-fileio-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void test_round_trip(void **state)
{
	(void)state;
	char p[300], tmp[310];
	path_of(p, sizeof(p), "f");
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	assert_int_equal(mv_file_write_durable(p, "one\n", 4), 0);
	assert_int_equal(mv_file_write_durable(p, "two lines\nhere\n", 15), 0); /* replaces */
	assert_int_equal(access(tmp, F_OK), -1);
	char *buf;
	size_t len;
	assert_int_equal(mv_file_read(p, 100, &buf, &len), 0);
	assert_int_equal(len, 15);
	assert_string_equal(buf, "two lines\nhere\n");
	free(buf);
	/* empty file, and a file larger than the first 4 KiB buffer */
	assert_int_equal(mv_file_write_durable(p, "", 0), 0);
	assert_int_equal(mv_file_read(p, 100, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	size_t big = 3 * 4096 + 17;
	char *data = malloc(big);
	assert_non_null(data);
	for (size_t i = 0; i < big; i++)
		data[i] = (char)('a' + i % 26);
	assert_int_equal(mv_file_write_durable(p, data, big), 0);
	assert_int_equal(mv_file_read(p, big, &buf, &len), 0);
	assert_int_equal(len, big);
	assert_memory_equal(buf, data, big);
	assert_int_equal(buf[big], '\0');
	free(buf);
	/* one byte over the bound */
	assert_int_equal(mv_file_read(p, big - 1, &buf, &len), -EFBIG);
	free(data);
}

static void test_errors(void **state)
{
	(void)state;
	char p[300], tmp[310];
	char *buf = NULL;
	size_t len = 0;
	path_of(p, sizeof(p), "missing");
	assert_int_equal(mv_file_read(p, 100, &buf, &len), -ENOENT);
	assert_int_equal(mv_file_read(dir, 100, &buf, &len), -EISDIR);
	/* a directory that does not exist */
	path_of(p, sizeof(p), "nodir/f");
	assert_int_equal(mv_file_write_durable(p, "x", 1), -ENOENT);
	/* the temporary file's name is taken by a directory: nothing changes */
	path_of(p, sizeof(p), "g");
	assert_int_equal(mv_file_write_durable(p, "old", 3), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(mv_file_write_durable(p, "new", 3), -EISDIR);
	assert_int_equal(mv_file_read(p, 100, &buf, &len), 0);
	assert_string_equal(buf, "old");
	free(buf);
	assert_int_equal(rmdir(tmp), 0);
	/* the target is a non-empty directory: rename fails, the temporary
	 * file is removed */
	path_of(p, sizeof(p), "d");
	assert_int_equal(mkdir(p, 0700), 0);
	char inner[320];
	snprintf(inner, sizeof(inner), "%s/x", p);
	assert_int_equal(mv_file_write_durable(inner, "x", 1), 0);
	int rc = mv_file_write_durable(p, "x", 1);
	assert_true(rc == -EISDIR || rc == -ENOTEMPTY || rc == -EEXIST);
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	assert_int_equal(access(tmp, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
