/*
 * fuzz_crl.c — libFuzzer target for the revocation list an agent reads
 * from tls.crl (agent/net/tls.c: tls_use_crl through tls_ctx_reload), a
 * file an operator copies onto every host, maybe truncated or the wrong
 * one.
 *
 * Once per process: a CA, a node certificate for the agent, a second node
 * certificate ("other"), and a CRL of that CA that revokes "other"; a
 * server context is made with that CRL. Input layout:
 *
 *   byte 0 even  the rest is the CRL's DER, written as one PEM block
 *   byte 0 odd   the rest patches the valid CRL's DER: pairs [offset
 *                (mod its length), xor], then written as PEM
 *   byte 0 = 2   the rest is written to the file as is (PEM text or not)
 *
 * Then the context reloads from the file. Invariants: a reload that fails
 * keeps the CRL in force (still one certificate revoked); one that succeeds
 * leaves a CRL in force. Any violation aborts; ASan/UBSan catch memory
 * errors in our parsing and signature checks.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];
static struct tls_ctx *g_ctx;
static uint8_t *g_der; /* the valid CRL, DER */
static size_t g_der_len;

static const char *fpath(const char *name)
{
	static char b[4][128];
	static int next;
	char *p = b[next++ % 4];
	snprintf(p, sizeof(b[0]), "%s/%s", g_dir, name);
	return p;
}

static void write_pem(const uint8_t *der, size_t len)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	FILE *f = fopen(fpath("crl.pem"), "w");
	if (!f)
		abort();
	fputs("-----BEGIN X509 CRL-----\n", f);
	for (size_t i = 0, col = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16 |
		             (i + 1 < len ? (uint32_t)der[i + 1] << 8 : 0) |
		             (i + 2 < len ? der[i + 2] : 0);
		char q[4] = {b64[v >> 18 & 63], b64[v >> 12 & 63],
		             i + 1 < len ? b64[v >> 6 & 63] : '=', i + 2 < len ? b64[v & 63] : '='};
		fwrite(q, 1, 4, f);
		if ((col += 4) == 64) {
			fputc('\n', f);
			col = 0;
		}
	}
	fputs("\n-----END X509 CRL-----\n", f);
	fclose(f);
}

/* The DER inside the PEM file tls_crl_create wrote (base64 decoded). */
static void read_der(void)
{
	char line[256];
	FILE *f = fopen(fpath("crl.pem"), "r");
	uint32_t acc = 0;
	int bits = 0;
	if (!f || !(g_der = malloc(8192)))
		abort();
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == '-')
			continue;
		for (char *c = line; *c && *c != '\n' && *c != '='; c++) {
			const char *set =
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
			const char *at = strchr(set, *c);
			if (!at)
				abort();
			acc = acc << 6 | (uint32_t)(at - set);
			if ((bits += 6) >= 8) {
				bits -= 8;
				if (g_der_len < 8192)
					g_der[g_der_len++] = (uint8_t)(acc >> bits);
			}
		}
	}
	fclose(f);
}

/* The files made at start go when the process ends. */
static void cleanup(void)
{
	static const char *const names[] = {"ca.pem",    "ca-key.pem",    "n1.pem", "n1-key.pem",
	                                    "other.pem", "other-key.pem", "crl.pem"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		unlink(fpath(names[i]));
	rmdir(g_dir);
}

static void setup(void)
{
	const char *ips[] = {"127.0.0.1"};
	struct tls_cert_request r = {
	    .role = TLS_ROLE_NODE, .ips = ips, .n_ips = 1, .valid_s = 86400};
	char err[512];
	static char other_path[128];
	const char *rev[1] = {other_path};

	snprintf(g_dir, sizeof(g_dir), "/tmp/mv-fuzz-crl-XXXXXX");
	if (!mkdtemp(g_dir))
		abort();
	atexit(cleanup);
	if (tls_ca_create(fpath("ca.pem"), fpath("ca-key.pem"), "fuzz CA", 10, err, sizeof(err)))
		abort();
	r.name = "n1";
	if (tls_cert_create(fpath("ca.pem"), fpath("ca-key.pem"), &r, fpath("n1.pem"),
	                    fpath("n1-key.pem"), err, sizeof(err)))
		abort();
	r.name = "other";
	if (tls_cert_create(fpath("ca.pem"), fpath("ca-key.pem"), &r, fpath("other.pem"),
	                    fpath("other-key.pem"), err, sizeof(err)))
		abort();
	snprintf(other_path, sizeof(other_path), "%s", fpath("other.pem"));
	if (tls_crl_create(fpath("ca.pem"), fpath("ca-key.pem"), rev, 1, NULL, 7, fpath("crl.pem"),
	                   err, sizeof(err)))
		abort();
	read_der();
	if (tls_ctx_new_crl(&g_ctx, true, fpath("ca.pem"), fpath("n1.pem"), fpath("n1-key.pem"),
	                    fpath("crl.pem"), err, sizeof(err)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n;
	int64_t next;
	char err[512];

	if (g_ctx == NULL)
		setup();
	if (size == 0)
		return 0;
	if (data[0] == 2) {
		FILE *f = fopen(fpath("crl.pem"), "w");
		if (!f)
			abort();
		fwrite(data + 1, 1, size - 1, f);
		fclose(f);
	} else if (data[0] & 1) {
		uint8_t *d = malloc(g_der_len);
		if (!d)
			abort();
		memcpy(d, g_der, g_der_len);
		for (size_t i = 1; i + 1 < size; i += 2)
			d[data[i] % g_der_len] ^= data[i + 1];
		write_pem(d, g_der_len);
		free(d);
	} else {
		write_pem(data + 1, size - 1);
	}
	if (tls_ctx_reload(g_ctx, err, sizeof(err)) != 0) {
		/* the list in force stays: still "other" revoked */
		if (!tls_ctx_crl_info(g_ctx, &n, &next) || n != 1 || err[0] == '\0')
			abort();
	} else if (!tls_ctx_crl_info(g_ctx, &n, &next)) {
		abort();
	} else if (n != 1) {
		/* a changed list was accepted: it must carry the CA's signature,
		 * so put the original back for the next input */
		write_pem(g_der, g_der_len);
		if (tls_ctx_reload(g_ctx, err, sizeof(err)) != 0)
			abort();
	}
	return 0;
}
