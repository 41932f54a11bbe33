/*
 * test_cli.c — what `meshvisor ha` prints and exits with (agent/cli/cli_client.h):
 * durations for people, the rows of HA VMs that should run and do not,
 * and the exit status that says whether every HA VM that should run does
 * and survives the loss of any one host; and how the agent address is read
 * (the host part is what the agent's certificate must name).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "cli_client.h"

static void test_duration(void **state)
{
	(void)state;
	char b[32];
	assert_string_equal(cli_duration_text(0, b, sizeof(b)), "0 ms");
	assert_string_equal(cli_duration_text(999, b, sizeof(b)), "999 ms");
	assert_string_equal(cli_duration_text(1000, b, sizeof(b)), "1.0 s");
	assert_string_equal(cli_duration_text(12480, b, sizeof(b)), "12.4 s");
	assert_string_equal(cli_duration_text(59999, b, sizeof(b)), "59.9 s");
	assert_string_equal(cli_duration_text(60000, b, sizeof(b)), "1 min 00 s");
	assert_string_equal(cli_duration_text(185000, b, sizeof(b)), "3 min 05 s");
	assert_string_equal(cli_duration_text(3600000, b, sizeof(b)), "1 h 00 min");
	assert_string_equal(cli_duration_text(7800000 + 59000, b, sizeof(b)), "2 h 10 min");
	assert_string_equal(cli_duration_text(3 * 86400000ull + 4 * 3600000ull, b, sizeof(b)),
	                    "3 d 04 h");
	/* never more than the buffer */
	char small[4];
	assert_string_equal(cli_duration_text(185000, small, sizeof(small)), "3 m");
}

static void test_owed_row(void **state)
{
	(void)state;
	char hdr[256], row[512];
	cli_owed_header(hdr, sizeof(hdr));
	assert_non_null(strstr(hdr, "VM"));
	assert_non_null(strstr(hdr, "DOWN FOR"));
	assert_non_null(strstr(hdr, "WHAT THE CLUSTER IS DOING"));

	Mv__OwedVm o = MV__OWED_VM__INIT;
	o.name = "ha-db";
	o.host = "n2";
	o.down_ms = 4200;
	o.why = "its host is dead";
	o.doing = "planned on n1; waiting 1200 ms more for the fence of n2";
	cli_owed_row(&o, row, sizeof(row));
	assert_string_equal(row,
	                    "ha-db                    n2               4.2 s       its host is "
	                    "dead             planned on n1; waiting 1200 ms more for the fence "
	                    "of n2");
	/* the columns line up under the header */
	assert_int_equal(strstr(row, "n2") - row, strstr(hdr, "HOST") - hdr);
	assert_int_equal(strstr(row, "4.2 s") - row, strstr(hdr, "DOWN FOR") - hdr);
	assert_int_equal(strstr(row, "its host") - row, strstr(hdr, "WHY") - hdr);
	assert_int_equal(strstr(row, "planned") - row, strstr(hdr, "WHAT THE") - hdr);

	/* empty fields read "-" (protobuf-c gives "" for an absent string) */
	Mv__OwedVm e = MV__OWED_VM__INIT;
	cli_owed_row(&e, row, sizeof(row));
	assert_string_equal(row, "-                        -                0 ms        -          "
	                         "                  -");
	/* truncated, NUL-terminated */
	char tiny[8];
	cli_owed_row(&o, tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), 7);
}

static void test_ha_exit_code(void **state)
{
	(void)state;
	Mv__HaReply h = MV__HA_REPLY__INIT;
	h.ok = true;
	assert_int_equal(cli_ha_exit_code(&h), CLI_EXIT_OK);
	/* an HA VM that should run does not */
	Mv__OwedVm o = MV__OWED_VM__INIT;
	Mv__OwedVm *list[] = {&o};
	h.n_owed = 1;
	h.owed = list;
	assert_int_equal(cli_ha_exit_code(&h), CLI_EXIT_FAIL);
	/* the loss of some host would leave HA VMs without room */
	h.n_owed = 0;
	h.ok = false;
	assert_int_equal(cli_ha_exit_code(&h), CLI_EXIT_FAIL);
	h.n_owed = 1;
	assert_int_equal(cli_ha_exit_code(&h), CLI_EXIT_FAIL);
	/* not quorate alone changes nothing: the reply says so, the CLI warns */
	h.ok = true;
	h.n_owed = 0;
	h.quorate = false;
	assert_int_equal(cli_ha_exit_code(&h), CLI_EXIT_OK);
}

/* --addr: IP, [IPv6] or host name, then a port; the host is what the
 * agent's certificate is checked against, so it must come out exact. */
static void test_split_addr(void **state)
{
	(void)state;
	static const struct {
		const char *addr, *host, *port;
	} good[] = {
	    {"127.0.0.1:7947", "127.0.0.1", "7947"},
	    {"[fd00::1]:7947", "fd00::1", "7947"},
	    {"::1:7947", "::1", "7947"}, /* unbracketed IPv6: the last colon */
	    {"hv-a01.example.org:1", "hv-a01.example.org", "1"},
	    {"localhost:65535", "localhost", "65535"},
	};
	static const char *const bad[] = {
	    "127.0.0.1",   "127.0.0.1:", ":7947",      "[fd00::1]7947", "[]:7947",
	    "[fd00::1:80", "host:0",     "host:65536", "host:-1",       "host:+80",
	    "host: 80",    "host:80x",   "a]b:80",     "[a[b]:80",      "",
	};
	char host[64], port[8];
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(
		    cli_split_addr(good[i].addr, host, sizeof(host), port, sizeof(port)), 0);
		assert_string_equal(host, good[i].host);
		assert_string_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cli_split_addr(bad[i], host, sizeof(host), port, sizeof(port)) != -EINVAL)
			fail_msg("'%s' accepted as an agent address", bad[i]);
	assert_int_equal(cli_split_addr(NULL, host, sizeof(host), port, sizeof(port)), -EINVAL);
	/* a host longer than the buffer is refused, not cut */
	assert_int_equal(cli_split_addr("abcdefgh:80", host, 8, port, sizeof(port)), -EINVAL);
	assert_int_equal(cli_split_addr("abcdefg:80", host, 8, port, sizeof(port)), 0);
	assert_int_equal(cli_split_addr("h:65535", host, sizeof(host), port, 5), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_split_addr),
	    cmocka_unit_test(test_owed_row),
	    cmocka_unit_test(test_ha_exit_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
