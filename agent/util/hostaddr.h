/*
 * hostaddr.h — what an operator may type as a host: an IP address literal
 * or a DNS name, told apart in one place (the config's bind and advertise,
 * seeds, `meshvisor join`), and the one blocking lookup the agent makes
 * before its loop serves (hostaddr.c).
 */
#ifndef MESHVISOR_HOSTADDR_H
#define MESHVISOR_HOSTADDR_H

#include <stdbool.h>
#include <stddef.h>

/* AF_INET or AF_INET6 for an IPv4 or IPv6 literal (no brackets, no port),
 * 0 otherwise; with bin16 non-NULL, the address (4 or 16 bytes) there. */
int mv_addr_family(const char *s, void *bin16);
/* Whether s is the wildcard literal 0.0.0.0 or :: (any spelling of it). */
bool mv_addr_is_wildcard(const char *s);
/* Whether s is a loopback literal: 127.0.0.0/8, ::1, or an IPv4-mapped
 * 127.x (::ffff:127.0.1.1). */
bool mv_addr_is_loopback(const char *s);
/* Whether host is a syntactically valid DNS name: 1..253 characters,
 * labels of 1..63 letters, digits and inner hyphens, not all digits and
 * dots (that is a malformed IPv4 literal). */
bool mv_is_dns_name(const char *host);

/* Resolves a DNS name (or passes a literal through) to one address
 * literal, IPv4 first, into ip (INET6_ADDRSTRLEN bytes are enough).
 * Blocks on the system resolver: call it only where nothing waits on the
 * calling thread (the agent calls it before its loop starts). 0, or a
 * getaddrinfo error code (EAI_*) with a sentence in err. */
int mv_resolve_host(const char *host, char *ip, size_t iplen, char *err, size_t errlen);

#endif
