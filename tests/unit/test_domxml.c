/* test_domxml.c — reading name, UUID, vCPUs and memory from domain XML. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "domxml.h"

static int parse(const char *xml, struct domxml_info *d, char *err)
{
	return domxml_parse(xml, strlen(xml), d, err, 256);
}

static void test_full(void **state)
{
	(void)state;
	struct domxml_info d;
	char err[256];
	assert_int_equal(parse("<domain type='qemu'>\n <name> web1 </name>\n"
	                       " <uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>\n"
	                       " <memory unit='MiB'>512</memory>\n <vcpu>2</vcpu>\n</domain>",
	                       &d, err),
	                 0);
	assert_string_equal(d.name, "web1");
	assert_string_equal(d.uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
	assert_int_equal(d.vcpus, 2);
	assert_int_equal(d.memory_kib, 512 * 1024);
}

static void test_units_and_defaults(void **state)
{
	(void)state;
	struct domxml_info d;
	char err[256];
	assert_int_equal(parse("<domain><name>a</name><memory>2048</memory></domain>", &d, err), 0);
	assert_int_equal(d.memory_kib, 2048); /* KiB by default */
	assert_int_equal(d.vcpus, 1);         /* libvirt's default */
	assert_string_equal(d.uuid, "");
	assert_int_equal(
	    parse("<domain><name>a</name><memory unit='G'>1</memory></domain>", &d, err), 0);
	assert_int_equal(d.memory_kib, 1024 * 1024);
	assert_int_equal(
	    parse("<domain><name>a</name><memory unit='MB'>1</memory></domain>", &d, err), 0);
	assert_int_equal(d.memory_kib, 976); /* 10^6 bytes, floor in KiB */
}

static void test_errors(void **state)
{
	(void)state;
	struct domxml_info d;
	char err[256];
	assert_int_equal(parse("<domain><name>a</name>", &d, err), -EINVAL);
	assert_non_null(strstr(err, "bad XML: line 1"));
	assert_int_equal(parse("<network><name>a</name></network>", &d, err), -EINVAL);
	assert_string_equal(err, "not a libvirt domain: the root element must be <domain>");
	assert_int_equal(parse("<domain><memory>1</memory></domain>", &d, err), -EINVAL);
	assert_string_equal(err, "domain XML has no <name>");
	assert_int_equal(parse("<domain><name>a</name></domain>", &d, err), -EINVAL);
	assert_string_equal(err, "domain XML has no <memory>");
	assert_int_equal(
	    parse("<domain><name>a</name><memory unit='parsec'>1</memory></domain>", &d, err),
	    -EINVAL);
	assert_string_equal(err, "domain XML <memory unit='parsec'>: unknown unit");
	assert_int_equal(parse("<domain><name>a</name><memory>lots</memory></domain>", &d, err),
	                 -EINVAL);
	assert_int_equal(
	    parse("<domain><name>a</name><memory>1</memory><vcpu>0</vcpu></domain>", &d, err),
	    -EINVAL);
	assert_string_equal(err, "domain XML <vcpu> must be a number from 1 to 4096");
	assert_int_equal(domxml_parse("", 0, &d, err, sizeof(err)), -EINVAL);
}

static void test_no_entity_expansion(void **state)
{
	(void)state;
	struct domxml_info d;
	char err[256];
	/* an external entity must not be fetched or expanded into the name */
	int rc = parse("<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/hostname'>]>"
	               "<domain><name>&x;</name><memory>1</memory></domain>",
	               &d, err);
	if (rc == 0)
		assert_string_equal(d.name, "");
	else
		assert_int_equal(rc, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_units_and_defaults),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_no_entity_expansion),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
