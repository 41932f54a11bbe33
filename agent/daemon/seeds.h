/*
 * seeds.h — joining through seed addresses that may be host names.
 *
 * A seed is "IP:PORT", "[IPv6]:PORT" or "NAME:PORT" (a DNS name, as an
 * operator types it in `join` or `meshvisor join`). Literals go to SWIM as
 * they are; names are resolved off the loop (uv_getaddrinfo, libuv's
 * thread pool), and SWIM is asked to join once every name of the request
 * has an answer, through the literals and the addresses (up to 4) each
 * name resolved to. The names that did not resolve are looked up again
 * (1 s, doubling to 30 s) until every one has, or a newer request replaces
 * it; each round that resolves a new address joins again through all of
 * them, so a seed whose DNS comes back later is joined even when the
 * others never answer. Each failure is logged once per attempt. SWIM's
 * own join retries reuse the resolved addresses. Peers are authenticated by the cluster CA and
 * their certificate's name, not by the seed's DNS name: a name only says
 * where to knock.
 *
 * Ownership: the module's state hangs off struct agent (a->seeds);
 * seeds_close() cancels what is in flight. Loop thread only.
 */
#ifndef MESHVISOR_SEEDS_H
#define MESHVISOR_SEEDS_H

#include <stdbool.h>
#include <stddef.h>

struct agent;

/* "HOST:PORT" with HOST an IP literal ([v6] bracketed) or a DNS name
 * (mv_is_dns_name, util/hostaddr.h), and PORT 1..65535; host
 * (NUL-terminated, without brackets) and port out. */
bool seed_parse(const char *seed, char *host, size_t hostlen, unsigned *port);

/* Joins through seeds (any mix of literals and names); replaces a request
 * still resolving. 0, or -EINVAL (a seed that does not parse: nothing
 * done) or -ENOMEM. */
int seeds_join(struct agent *a, const char *const *seeds, size_t n);
void seeds_close(struct agent *a);

#endif
