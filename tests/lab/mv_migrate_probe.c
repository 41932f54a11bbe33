/*
 * mv_migrate_probe — drives agent/hv/virt.c's migration calls against lab
 * hosts the way the agent will: the blocking virt_vm_migrate() on a libuv
 * worker (uv_queue_work), job statistics polled and abort issued from the
 * loop thread meanwhile, virt_vm_where() afterwards. Prints one JSON object
 * per line on stdout (for tests/lab/test_lab_migrate.py).
 *
 *   mv_migrate_probe migrate SRC_URI NAME DEST_URI [options]
 *       --migrate-uri tcp://ADDR   --bw MIB_S   --downtime MS   --tls
 *       --query-uri URI   (the target as this process reaches it: stats
 *                          after success, where() after failure)
 *       --poll-ms N       (job statistics period, default 100)
 *       --abort-after-ms N (abort once a job has run N ms and reports
 *                            transfer data)
 *   mv_migrate_probe where SRC_URI NAME DEST_QUERY_URI
 *
 * Lines: {"event":"progress",...} while the job runs, then
 * {"event":"result","rc":0|-errno,...}, then (after a failure, with
 * --query-uri) {"event":"where",...}. Exit 0 when the call succeeded.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "log.h"
#include "virt.h"

static void json_str(const char *s)
{
	putchar('"');
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

struct job {
	uv_work_t work;
	struct virt *v;
	const char *name;
	struct virt_migrate_params p;
	struct virt_migrate_result res;
	char err[1024];
	int rc;
	bool done;
};

static void on_work(uv_work_t *w)
{
	struct job *j = w->data;
	j->rc = virt_vm_migrate(j->v, j->name, &j->p, &j->res, j->err, sizeof(j->err));
}

static void on_after(uv_work_t *w, int status)
{
	struct job *j = w->data;
	(void)status;
	j->done = true;
}

struct poll {
	struct job *j;
	uint64_t t0;
	long abort_after_ms;
	bool aborted;
	uint64_t last_processed;
};

static void print_stats(const char *event, const struct virt_job_stats *s, uint64_t t_ms)
{
	printf("{\"event\":\"%s\",\"t_ms\":%" PRIu64 ",\"state\":%d,\"migration\":%s,"
	       "\"elapsed_ms\":%" PRIu64 ",\"data_total\":%" PRIu64 ",\"data_processed\":%" PRIu64
	       ",\"data_remaining\":%" PRIu64 ",\"memory_bps\":%" PRIu64 ",\"iteration\":%" PRIu64
	       ",\"have_downtime\":%s,\"downtime_ms\":%" PRIu64 "}\n",
	       event, t_ms, (int)s->state, s->migration ? "true" : "false", s->elapsed_ms,
	       s->data_total, s->data_processed, s->data_remaining, s->memory_bps, s->iteration,
	       s->have_downtime ? "true" : "false", s->downtime_ms);
	fflush(stdout);
}

static void on_poll(uv_timer_t *t)
{
	struct poll *pl = t->data;
	struct job *j = pl->j;
	if (j->done) {
		uv_timer_stop(t);
		uv_stop(t->loop);
		return;
	}
	struct virt_job_stats s;
	char err[512];
	uint64_t now = uv_now(t->loop) - pl->t0;
	if (virt_vm_job_stats(j->v, j->name, false, &s, err, sizeof(err)) == 0 &&
	    s.state == VIRT_JOB_RUNNING) {
		print_stats("progress", &s, now);
		/* abort once the job has run long enough AND is visibly migrating
		 * (stats with data): on a busy machine the first samples can come
		 * before libvirt reports any transfer */
		if (pl->abort_after_ms >= 0 && !pl->aborted &&
		    s.elapsed_ms >= (uint64_t)pl->abort_after_ms && s.migration &&
		    s.data_total > 0) {
			int rc = virt_vm_abort_job(j->v, j->name, err, sizeof(err));
			pl->aborted = true;
			printf("{\"event\":\"abort\",\"t_ms\":%" PRIu64 ",\"rc\":%d,\"err\":", now,
			       rc);
			json_str(rc < 0 ? err : "");
			printf("}\n");
			fflush(stdout);
		}
	}
}

static void print_where(struct virt *v, const char *name, const char *uri)
{
	struct virt_where w;
	char err[1024] = "";
	int rc = virt_vm_where(v, name, uri, &w, err, sizeof(err));
	printf("{\"event\":\"where\",\"rc\":%d,\"where\":\"%s\",\"source\":\"%s\",\"dest\":\"%s\","
	       "\"source_state\":\"%s\",\"dest_state\":\"%s\",\"uuid\":",
	       rc, virt_location_name(w.where), virt_presence_name(w.source),
	       virt_presence_name(w.dest), virt_vm_state_name(w.source_state),
	       virt_vm_state_name(w.dest_state));
	json_str(w.uuid);
	printf(",\"err\":");
	json_str(err);
	printf("}\n");
	fflush(stdout);
}

static bool pred_connected(struct virt *v)
{
	return virt_health(v)->reachable;
}

int main(int argc, char **argv)
{
	mv_log_set_level(MV_LOG_WARN);
	if (argc < 5 || (strcmp(argv[1], "migrate") != 0 && strcmp(argv[1], "where") != 0)) {
		fprintf(stderr,
		        "usage: %s migrate SRC_URI NAME DEST_URI [options] | "
		        "where SRC_URI NAME DEST_QUERY_URI\n",
		        argv[0]);
		return 2;
	}
	uv_loop_t *loop = uv_default_loop();
	if (virt_event_register_uv(loop) != 0)
		return 2;
	struct virt_options o = {.uri = argv[2], .loop = loop};
	struct virt *v = virt_new_opts(&o);
	if (v == NULL || !virt_check(v) || !pred_connected(v)) {
		printf("{\"event\":\"result\",\"rc\":%d,\"err\":", -ENOTCONN);
		json_str(v != NULL ? virt_health(v)->error : "out of memory");
		printf("}\n");
		return 1;
	}
	int ret = 0;
	if (strcmp(argv[1], "where") == 0) {
		print_where(v, argv[3], argv[4]);
	} else {
		static struct job j;
		struct poll pl = {.j = &j, .abort_after_ms = -1};
		unsigned poll_ms = 100;
		j.v = v;
		j.name = argv[3];
		j.p.dest_uri = argv[4];
		for (int i = 5; i < argc; i++) {
			const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
			if (strcmp(a, "--tls") == 0) {
				j.p.tls = true;
				continue;
			}
			if (val == NULL) {
				fprintf(stderr, "%s needs a value\n", a);
				return 2;
			}
			i++;
			if (strcmp(a, "--migrate-uri") == 0)
				j.p.migrate_uri = val;
			else if (strcmp(a, "--bw") == 0)
				j.p.bandwidth_mib_s = strtoull(val, NULL, 10);
			else if (strcmp(a, "--downtime") == 0)
				j.p.max_downtime_ms = strtoull(val, NULL, 10);
			else if (strcmp(a, "--query-uri") == 0)
				j.p.query_uri = val;
			else if (strcmp(a, "--poll-ms") == 0)
				poll_ms = (unsigned)strtoul(val, NULL, 10);
			else if (strcmp(a, "--abort-after-ms") == 0)
				pl.abort_after_ms = strtol(val, NULL, 10);
			else {
				fprintf(stderr, "unknown option %s\n", a);
				return 2;
			}
		}
		j.work.data = &j;
		uv_timer_t t;
		uv_timer_init(loop, &t);
		t.data = &pl;
		pl.t0 = uv_now(loop);
		if (uv_queue_work(loop, &j.work, on_work, on_after) != 0)
			return 2;
		uv_timer_start(&t, on_poll, poll_ms, poll_ms);
		while (!j.done)
			uv_run(loop, UV_RUN_ONCE);
		uv_close((uv_handle_t *)&t, NULL);
		printf("{\"event\":\"result\",\"rc\":%d,\"name\":", j.rc);
		json_str(j.res.name);
		printf(",\"uuid\":");
		json_str(j.res.uuid);
		printf(
		    ",\"elapsed_ms\":%" PRIu64 ",\"have_stats\":%s,\"downtime_ms\":%" PRIu64
		    ",\"have_downtime\":%s,\"data_processed\":%" PRIu64 ",\"memory_total\":%" PRIu64
		    ",\"stats_elapsed_ms\":%" PRIu64 ",\"iteration\":%" PRIu64 ",\"err\":",
		    j.res.elapsed_ms, j.res.have_stats ? "true" : "false", j.res.stats.downtime_ms,
		    j.res.stats.have_downtime ? "true" : "false", j.res.stats.data_processed,
		    j.res.stats.memory_total, j.res.stats.elapsed_ms, j.res.stats.iteration);
		json_str(j.rc < 0 ? j.err : j.res.stats_error);
		printf("}\n");
		fflush(stdout);
		if (j.rc < 0 && j.p.query_uri != NULL)
			print_where(v, j.res.uuid[0] ? j.res.uuid : j.name, j.p.query_uri);
		ret = j.rc < 0 ? 1 : 0;
	}
	virt_free(v);
	for (int i = 0; i < 5; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	return ret;
}
