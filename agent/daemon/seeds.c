/*
 * seeds.c — seed addresses with host names, resolved off the loop; see
 * seeds.h.
 *
 * One request at a time (struct seeds_req): its seeds, a slot per name
 * with the address it resolved to, and the number of lookups still out.
 * A newer request detaches the older one (req->a = NULL): its lookups
 * finish and free it without touching anything else.
 */
#include "seeds.h"

#include "agent.h"
#include "hostaddr.h"
#include "log.h"
#include "membership.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEEDS_RETRY_MIN_MS 1000u
#define SEEDS_RETRY_MAX_MS 30000u
/* A name that does not resolve is warned about on its first lookups, up
 * to this many; then it is looked up again every SEEDS_RETRY_MAX_MS at
 * debug level (it may come back; a WARN every 30 s forever is noise). */
#define SEEDS_WARN_TRIES 3u
#define SEEDS_PER_NAME 4u /* addresses of one name tried */

struct seeds_req;

struct seeds_lookup {
	uv_getaddrinfo_t gai;
	struct seeds_req *req;
	size_t slot;
};

struct seeds_req {
	struct agent *a; /* NULL: replaced or closed; free when no lookup is out */
	size_t n;
	char (*seed)[SWIM_ADDR_MAX]; /* as given */
	/* SEEDS_PER_NAME slots per seed: a literal's first slot is itself; a
	 * name's are the addresses it resolved to ("" when unused) */
	char (*resolved)[SWIM_ADDR_MAX];
	unsigned out;                  /* lookups in flight */
	struct seeds_lookup **lookups; /* per slot, while in flight (for uv_cancel) */
	unsigned *fails;               /* per slot: lookups that failed so far */
	unsigned retry_ms;
	uv_timer_t *retry; /* allocated while a retry is scheduled */
	size_t joined;     /* addresses handed to swim_join last time (0: none yet) */
};

struct seeds_state {
	struct seeds_req *cur;
};

bool seed_parse(const char *seed, char *host, size_t hostlen, unsigned *port)
{
	const char *p;
	size_t n;
	unsigned char bin[16];
	if (seed[0] == '[') {
		const char *close = strchr(seed, ']');
		if (close == NULL || close[1] != ':')
			return false;
		n = (size_t)(close - seed - 1);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, seed + 1, n);
		host[n] = '\0';
		if (inet_pton(AF_INET6, host, bin) != 1)
			return false;
		p = close + 2;
	} else {
		const char *colon = strrchr(seed, ':');
		if (colon == NULL)
			return false;
		n = (size_t)(colon - seed);
		if (n == 0 || n >= hostlen)
			return false;
		memcpy(host, seed, n);
		host[n] = '\0';
		if (inet_pton(AF_INET, host, bin) != 1 && !mv_is_dns_name(host))
			return false;
		p = colon + 1;
	}
	if (*p == '\0' || strlen(p) > 5)
		return false;
	unsigned v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*port = v;
	return true;
}

static void seeds_req_free(struct seeds_req *r)
{
	free(r->lookups);
	free(r->fails);
	free(r->seed);
	free(r->resolved);
	free(r);
}

static void seeds_timer_closed(uv_handle_t *h)
{
	struct seeds_req *r = h->data;
	free(h);
	if (r != NULL) {
		r->retry = NULL;
		if (r->a == NULL && r->out == 0)
			seeds_req_free(r);
	}
}

/* The request is over for its owner: free it now or when its lookups and
 * timer are done. */
static void seeds_req_detach(struct seeds_req *r)
{
	r->a = NULL;
	if (r->retry != NULL) {
		uv_timer_stop(r->retry);
		if (!uv_is_closing((uv_handle_t *)r->retry))
			uv_close((uv_handle_t *)r->retry, seeds_timer_closed);
		return;
	}
	if (r->out == 0)
		seeds_req_free(r);
}

static void seeds_start_lookups(struct seeds_req *r);

static void seeds_on_retry(uv_timer_t *t)
{
	struct seeds_req *r = t->data;
	if (r->a != NULL)
		seeds_start_lookups(r);
}

/* Schedules the next round of lookups of the names still unresolved:
 * 1 s, doubling to 30 s. */
static void seeds_retry_later(struct seeds_req *r)
{
	r->retry_ms = r->retry_ms ? r->retry_ms * 2 : SEEDS_RETRY_MIN_MS;
	if (r->retry_ms > SEEDS_RETRY_MAX_MS)
		r->retry_ms = SEEDS_RETRY_MAX_MS;
	if (r->retry == NULL) {
		r->retry = malloc(sizeof(*r->retry));
		if (r->retry == NULL || uv_timer_init(r->a->loop, r->retry) < 0) {
			free(r->retry);
			r->retry = NULL;
			return;
		}
		r->retry->data = r;
	}
	uv_timer_start(r->retry, seeds_on_retry, r->retry_ms, 0);
}

/* Every lookup of a round answered: join through what we have once it
 * holds an address more than the last join had, and look the names that
 * did not resolve up again later, so that a seed whose DNS comes back is
 * joined too (another seed may never answer). The request ends when every
 * name has resolved, or when a newer one replaces it. */
static void seeds_settle(struct seeds_req *r)
{
	struct agent *a = r->a;
	const char *addrs[AGENT_MAX_SEEDS * SEEDS_PER_NAME];
	size_t k = 0, unresolved = 0;
	bool loud = false; /* a name still on its warned lookups */
	for (size_t i = 0; i < r->n; i++) {
		if (r->resolved[i * SEEDS_PER_NAME][0] == '\0') {
			unresolved++;
			loud |= r->fails[i] <= SEEDS_WARN_TRIES;
		}
		for (size_t j = 0; j < SEEDS_PER_NAME; j++)
			if (r->resolved[i * SEEDS_PER_NAME + j][0] != '\0')
				addrs[k++] = r->resolved[i * SEEDS_PER_NAME + j];
	}
	if (k > r->joined) {
		int rc = swim_join(membership_swim(a), addrs, k, uv_now(a->loop));
		if (rc < 0)
			MV_WARN("swim", "cannot join through the resolved seeds error=\"%s\"",
			        strerror(-rc));
		else
			r->joined = k;
		membership_pump(a);
	}
	if (unresolved == 0)
		return;
	seeds_retry_later(r);
	enum mv_log_level lvl = loud ? MV_LOG_WARN : MV_LOG_DEBUG;
	if (k == 0)
		mv_log(lvl, "swim", "no seed address resolved; trying again in_ms=%u", r->retry_ms);
	else
		mv_log(lvl, "swim",
		       "seeds still unresolved n=%zu; joined through the others, trying them "
		       "again in_ms=%u",
		       unresolved, r->retry_ms);
}

/* A lookup of seed `slot` failed: warned about on its first
 * SEEDS_WARN_TRIES failures (the last one says so), at debug level after. */
static void seeds_lookup_failed(struct seeds_req *r, size_t slot, const char *what, int err)
{
	unsigned n = ++r->fails[slot];
	if (n < SEEDS_WARN_TRIES)
		MV_WARN("swim", "%s seed=%s error=\"%s\"", what, r->seed[slot], uv_strerror(err));
	else if (n == SEEDS_WARN_TRIES)
		MV_WARN("swim",
		        "%s seed=%s error=\"%s\" tries=%u; still trying every in_ms=%u, "
		        "logged at debug level from now on",
		        what, r->seed[slot], uv_strerror(err), n, SEEDS_RETRY_MAX_MS);
	else
		MV_DEBUG("swim", "%s seed=%s error=\"%s\" tries=%u", what, r->seed[slot],
		         uv_strerror(err), n);
}

static void seeds_on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	struct seeds_lookup *l = g->data;
	struct seeds_req *r = l->req;
	r->out--;
	r->lookups[l->slot] = NULL;
	if (r->a == NULL) { /* replaced or closed meanwhile */
		uv_freeaddrinfo(res);
		free(l);
		if (r->out == 0 && r->retry == NULL)
			seeds_req_free(r);
		return;
	}
	char host[256];
	unsigned port = 0;
	seed_parse(r->seed[l->slot], host, sizeof(host), &port);
	if (status < 0 || res == NULL) {
		seeds_lookup_failed(r, l->slot, "seed does not resolve",
		                    status < 0 ? status : UV_EAI_NONAME);
	} else {
		/* every address the name has (up to SEEDS_PER_NAME), IPv4 first:
		 * SWIM knocks at each, and those that do not answer cost nothing */
		size_t k = 0;
		for (int pass = 0; pass < 2; pass++)
			for (struct addrinfo *ai = res; ai != NULL && k < SEEDS_PER_NAME;
			     ai = ai->ai_next) {
				if ((pass == 0) != (ai->ai_family == AF_INET))
					continue;
				char ip[INET6_ADDRSTRLEN] = "";
				if (ai->ai_family == AF_INET6)
					uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip,
					            sizeof(ip));
				else if (ai->ai_family == AF_INET)
					uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip,
					            sizeof(ip));
				else
					continue;
				char addr[SWIM_ADDR_MAX];
				snprintf(addr, sizeof(addr),
				         ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
				bool dup = false;
				for (size_t j = 0; j < k; j++)
					dup |= strcmp(r->resolved[l->slot * SEEDS_PER_NAME + j],
					              addr) == 0;
				if (!dup)
					snprintf(r->resolved[l->slot * SEEDS_PER_NAME + k++],
					         SWIM_ADDR_MAX, "%s", addr);
			}
		if (k > 0) {
			r->fails[l->slot] = 0; /* its failures are behind it */
			MV_INFO("swim", "seed resolved seed=%s addrs=%zu first=%s",
			        r->seed[l->slot], k, r->resolved[l->slot * SEEDS_PER_NAME]);
		} else { /* no IPv4 or IPv6 address: looked up again, as a failure */
			seeds_lookup_failed(r, l->slot, "seed has no IP address", UV_EAI_NODATA);
		}
	}
	uv_freeaddrinfo(res);
	free(l);
	if (r->out == 0)
		seeds_settle(r);
}

static void seeds_start_lookups(struct seeds_req *r)
{
	struct agent *a = r->a;
	for (size_t i = 0; i < r->n; i++) {
		char host[256];
		unsigned port;
		if (!seed_parse(r->seed[i], host, sizeof(host), &port) ||
		    mv_addr_family(host, NULL) != 0 || r->resolved[i * SEEDS_PER_NAME][0] != '\0')
			continue;
		struct seeds_lookup *l = calloc(1, sizeof(*l));
		if (l == NULL)
			continue;
		l->req = r;
		l->slot = i;
		r->lookups[i] = l;
		l->gai.data = l;
		struct addrinfo hints;
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		int rc = uv_getaddrinfo(a->loop, &l->gai, seeds_on_resolved, host, NULL, &hints);
		if (rc < 0) {
			seeds_lookup_failed(r, i, "cannot resolve seed", rc);
			r->lookups[i] = NULL;
			free(l);
			continue;
		}
		r->out++;
	}
	if (r->out == 0)
		seeds_settle(r);
}

int seeds_join(struct agent *a, const char *const *seeds, size_t n)
{
	if (n == 0 || n > AGENT_MAX_SEEDS)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char host[256];
		unsigned port;
		if (strlen(seeds[i]) >= SWIM_ADDR_MAX ||
		    !seed_parse(seeds[i], host, sizeof(host), &port))
			return -EINVAL;
	}
	if (a->seeds == NULL && (a->seeds = calloc(1, sizeof(*a->seeds))) == NULL)
		return -ENOMEM;
	struct seeds_req *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->seed = calloc(n, sizeof(*r->seed))) == NULL ||
	    (r->resolved = calloc(n * SEEDS_PER_NAME, sizeof(*r->resolved))) == NULL ||
	    (r->lookups = calloc(n, sizeof(*r->lookups))) == NULL ||
	    (r->fails = calloc(n, sizeof(*r->fails))) == NULL) {
		if (r != NULL)
			seeds_req_free(r);
		return -ENOMEM;
	}
	r->a = a;
	r->n = n;
	for (size_t i = 0; i < n; i++) {
		char host[256];
		unsigned port;
		snprintf(r->seed[i], SWIM_ADDR_MAX, "%s", seeds[i]);
		seed_parse(seeds[i], host, sizeof(host), &port);
		if (mv_addr_family(host, NULL) != 0)
			snprintf(r->resolved[i * SEEDS_PER_NAME], SWIM_ADDR_MAX, "%s", seeds[i]);
	}
	if (a->seeds->cur != NULL)
		seeds_req_detach(a->seeds->cur);
	a->seeds->cur = r;
	seeds_start_lookups(r);
	return 0;
}

void seeds_close(struct agent *a)
{
	if (a->seeds == NULL)
		return;
	if (a->seeds->cur != NULL) {
		struct seeds_req *r = a->seeds->cur;
		a->seeds->cur = NULL;
		/* the agent stops: lookups not started on a thread yet end now
		 * (UV_ECANCELED); one already asking DNS ends when it answers */
		for (size_t i = 0; i < r->n; i++)
			if (r->lookups[i] != NULL)
				uv_cancel((uv_req_t *)&r->lookups[i]->gai);
		seeds_req_detach(r);
	}
	free(a->seeds);
	a->seeds = NULL;
}
