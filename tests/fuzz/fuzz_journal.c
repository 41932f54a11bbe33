/*
 * fuzz_journal.c — libFuzzer target for the failover journal reader
 * (fo_journal_restore, include/meshvisor/fo.h), the text the agent
 * reads back from data_dir/failover-journal at start.
 *
 * Each input is restored into a fresh core. The reader must never crash,
 * leak or read out of bounds; a refusal must say why and apply nothing
 * (the journal version stays 0); an accepted journal must encode to text
 * that restores to the very same text again (a fixed point), and a
 * heartbeat from every restored name must be refused, not acknowledged.
 *
 *   seeds: printf 'failed-over n2 7\n' > corpus/fuzz_journal/one
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshvisor/fo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fo *fresh(void)
{
	struct fo_config c;
	fo_config_default(&c);
	snprintf(c.name, sizeof(c.name), "self");
	c.join_after_ms = 0; /* members vote at once, as before the journal */
	struct fo *f = fo_new(&c, 1000);
	if (!f)
		abort();
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fo *f = fresh();
	char err[256];
	int n = fo_journal_restore(f, (const char *)data, size, err, sizeof(err));
	if (n < 0) {
		if (n != -EINVAL && n != -ENOMEM)
			abort();
		if (n == -EINVAL && err[0] == '\0')
			abort(); /* a refusal always says why */
		if (fo_journal_version(f) != 0)
			abort(); /* and applies nothing */
		fo_free(f);
		return 0;
	}
	char *text;
	size_t len;
	if (fo_journal_encode(f, &text, &len) < 0)
		abort();
	struct fo *g = fresh();
	if (fo_journal_restore(g, text, len, err, sizeof(err)) < 0)
		abort(); /* what we write we can read */
	char *again;
	size_t alen;
	if (fo_journal_encode(g, &again, &alen) < 0)
		abort();
	if (alen != len || memcmp(text, again, len) != 0)
		abort();
	/* every restored name is refused an ack (it is not fenced through
	 * anything), once it is a member */
	const char *line = strstr(text, "\nfailed-over ");
	if (line) {
		struct fo_msg m;
		memset(&m, 0, sizeof(m));
		m.type = FO_HEARTBEAT;
		sscanf(line + 13, "%63s", m.from);
		snprintf(m.to, sizeof(m.to), "self");
		m.incarnation = 1;
		m.stamp = 5;
		fo_member(g, m.from, FO_ALIVE, 1, 2000);
		if (fo_handle_message(g, &m, 2001) != 0)
			abort();
		struct fo_msg out;
		while (fo_pop_output(g, &out)) {
			if (out.type == FO_HB_ACK)
				abort();
			fo_msg_clear(&out);
		}
	}
	free(text);
	free(again);
	fo_free(f);
	fo_free(g);
	return 0;
}
