/*
 * hostaddr.c — IP literals and DNS names (hostaddr.h). libc only.
 */
#include "hostaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int mv_addr_family(const char *s, void *bin16)
{
	unsigned char tmp[16];
	if (bin16 == NULL)
		bin16 = tmp;
	if (inet_pton(AF_INET, s, bin16) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, bin16) == 1)
		return AF_INET6;
	return 0;
}

bool mv_addr_is_wildcard(const char *s)
{
	unsigned char b[16];
	static const unsigned char zero[16];
	int af = mv_addr_family(s, b);
	return af != 0 && memcmp(b, zero, af == AF_INET ? 4 : 16) == 0;
}

bool mv_addr_is_loopback(const char *s)
{
	unsigned char b[16];
	static const unsigned char one[16] = {[15] = 1};
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	int af = mv_addr_family(s, b);
	if (af == AF_INET)
		return b[0] == 127;
	if (af == AF_INET6)
		return memcmp(b, one, 16) == 0 || (memcmp(b, mapped, 12) == 0 && b[12] == 127);
	return false;
}

bool mv_is_dns_name(const char *host)
{
	size_t len = strlen(host), label = 0;
	if (len == 0 || len > 253)
		return false;
	bool all_digits = true;
	for (size_t i = 0; i < len; i++) {
		char ch = host[i];
		if (ch == '.') {
			if (label == 0 || host[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		             (ch >= '0' && ch <= '9');
		if (!alnum && !(ch == '-' && label > 0))
			return false;
		if (!(ch >= '0' && ch <= '9') && ch != '.')
			all_digits = false;
		if (++label > 63)
			return false;
	}
	/* a trailing hyphen, or all digits and dots (a malformed IPv4 literal) */
	return host[len - 1] != '-' && !all_digits;
}

int mv_resolve_host(const char *host, char *ip, size_t iplen, char *err, size_t errlen)
{
	if (mv_addr_family(host, NULL) != 0) {
		snprintf(ip, iplen, "%s", host);
		return 0;
	}
	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "host name '%s' does not resolve: %s", host,
		         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return rc;
	}
	const struct addrinfo *pick = NULL;
	for (const struct addrinfo *ai = res; ai != NULL && pick == NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET)
			pick = ai;
	for (const struct addrinfo *ai = res; ai != NULL && pick == NULL; ai = ai->ai_next)
		if (ai->ai_family == AF_INET6)
			pick = ai;
	const void *bin = NULL;
	if (pick != NULL && pick->ai_family == AF_INET)
		bin = &((const struct sockaddr_in *)pick->ai_addr)->sin_addr;
	else if (pick != NULL)
		bin = &((const struct sockaddr_in6 *)pick->ai_addr)->sin6_addr;
	if (bin == NULL || inet_ntop(pick->ai_family, bin, ip, (socklen_t)iplen) == NULL) {
		freeaddrinfo(res);
		snprintf(err, errlen, "host name '%s' has no IPv4 or IPv6 address", host);
		return EAI_NONAME;
	}
	freeaddrinfo(res);
	return 0;
}
