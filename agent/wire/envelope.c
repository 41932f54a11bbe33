/*
 * envelope.c — decode and encode mv.Envelope frame payloads.
 *
 * The payload length was capped by the frame decoder before any byte was
 * allocated; protobuf-c then bounds every nested allocation by that length.
 * After unpacking we check what protobuf cannot: the wire version and that
 * exactly one body is present.
 *
 * Before unpacking, envelope_scan walks the wire format once with the
 * generated descriptors: known message fields are descended into (their
 * nesting is bounded by the schema, and by ENVELOPE_SCAN_DEPTH anyway),
 * every other field is skipped by its wire type, and fields the schema
 * does not know are counted. Cost: one pass, no allocation. It refuses
 * what protobuf-c would refuse too (bad tags, lengths past the end) and
 * what it would accept at great cost (ENVELOPE_MAX_UNKNOWN,
 * ENVELOPE_MAX_FIELDS, ENVELOPE_MAX_MESSAGES).
 */
#include "envelope.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "frame.h"

#define ENVELOPE_SCAN_DEPTH 32

/* Reads a varint at *p (< end); 0 or -EBADMSG. */
static int scan_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*p >= end)
			return -EBADMSG;
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return -EBADMSG;
}

struct scan_state {
	size_t unknown;
	size_t fields;   /* every field occurrence, at every depth */
	size_t messages; /* sub-messages protobuf-c will allocate */
};

static int envelope_scan(const ProtobufCMessageDescriptor *desc, const uint8_t *p,
                         const uint8_t *end, unsigned depth, struct scan_state *st)
{
	if (depth > ENVELOPE_SCAN_DEPTH)
		return -EBADMSG;
	while (p < end) {
		uint64_t tag, n;
		if (scan_varint(&p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
			return -EBADMSG;
		const ProtobufCFieldDescriptor *f =
		    desc ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))
			 : NULL;
		if (f == NULL && ++st->unknown > ENVELOPE_MAX_UNKNOWN)
			return -E2BIG;
		if (++st->fields > ENVELOPE_MAX_FIELDS)
			return -ERANGE;
		switch (tag & 7) {
		case 0: /* varint */
			if (scan_varint(&p, end, &n) < 0)
				return -EBADMSG;
			break;
		case 1: /* 64-bit */
			if (end - p < 8)
				return -EBADMSG;
			p += 8;
			break;
		case 5: /* 32-bit */
			if (end - p < 4)
				return -EBADMSG;
			p += 4;
			break;
		case 2: /* length-delimited */
			if (scan_varint(&p, end, &n) < 0 || n > (uint64_t)(end - p))
				return -EBADMSG;
			if (f != NULL && f->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (++st->messages > ENVELOPE_MAX_MESSAGES)
					return -ERANGE;
				int rc = envelope_scan(f->descriptor, p, p + n, depth + 1, st);
				if (rc < 0)
					return rc;
			}
			p += n;
			break;
		default: /* groups (3, 4) and 6, 7: never sent by meshvisor */
			return -EBADMSG;
		}
	}
	return 0;
}

int envelope_peek_op(const uint8_t *prefix, size_t len, uint64_t *id, uint32_t *op_field)
{
	const uint8_t *p = prefix, *end = prefix + len;
	*id = 0;
	*op_field = 0;
	bool inside = false; /* in the request's bytes */
	const uint8_t *req_start = NULL;
	uint64_t req_len = 0; /* as declared: the answer must not depend on len */
	while (p < end) {
		uint64_t tag, v;
		if (scan_varint(&p, end, &tag) < 0)
			return -EAGAIN; /* cut inside a tag (a bad one fails the decode later) */
		uint32_t field = (uint32_t)(tag >> 3);
		unsigned wt = (unsigned)(tag & 7);
		if (inside && (uint64_t)(p - req_start) > req_len)
			return -EBADMSG;
		if (wt == 0) {
			if (scan_varint(&p, end, &v) < 0)
				return -EAGAIN;
			if (inside && field == 1)
				*id = v;
			continue;
		}
		if (wt == 1 || wt == 5) {
			size_t skip = wt == 1 ? 8 : 4;
			if ((size_t)(end - p) < skip)
				return -EAGAIN;
			p += skip;
			continue;
		}
		if (wt != 2)
			return -EBADMSG;
		if (inside && protobuf_c_message_descriptor_get_field(&mv__rpc_request__descriptor,
		                                                      field) != NULL) {
			*op_field = field; /* every length-delimited RpcRequest field is an op */
			return 0;
		}
		if (scan_varint(&p, end, &v) < 0)
			return -EAGAIN;
		if (!inside && field == 20) { /* Envelope.request */
			inside = true;
			req_start = p;
			req_len = v;
			continue;
		}
		if (!inside && field != 2)
			return -EBADMSG; /* a body other than a request */
		if (v > (uint64_t)(end - p))
			return -EAGAIN;
		p += v;
	}
	return -EAGAIN;
}

int envelope_decode(const uint8_t *payload, size_t len, Mv__Envelope **out, const char **why)
{
	*out = NULL;
	if (len == 0 || len > FRAME_MAX) {
		*why = "frame length out of range";
		return -EMSGSIZE;
	}
	struct scan_state st = {0};
	int src = envelope_scan(&mv__envelope__descriptor, payload, payload + len, 0, &st);
	if (src == -E2BIG) {
		*why = "too many unknown fields";
		return -EBADMSG;
	}
	if (src == -ERANGE) {
		*why = "too many fields";
		return -EBADMSG;
	}
	if (src < 0) {
		*why = "not a valid protobuf Envelope";
		return -EBADMSG;
	}
	Mv__Envelope *env = mv__envelope__unpack(NULL, len, payload);
	if (env == NULL) {
		*why = "not a valid protobuf Envelope";
		return -EBADMSG;
	}
	if (env->version != ENVELOPE_VERSION) {
		*why = "unsupported wire version";
		mv__envelope__free_unpacked(env, NULL);
		return -EPROTO;
	}
	if (env->body_case == MV__ENVELOPE__BODY__NOT_SET) {
		*why = "envelope carries no body";
		mv__envelope__free_unpacked(env, NULL);
		return -EBADMSG;
	}
	*why = "";
	*out = env;
	return 0;
}

int envelope_peek_request(const uint8_t *payload, size_t len, uint32_t *version, uint64_t *id)
{
	if (len == 0 || len > FRAME_MAX)
		return -EBADMSG;
	Mv__Envelope *env = mv__envelope__unpack(NULL, len, payload);
	if (env == NULL)
		return -EBADMSG;
	int rc = -EBADMSG;
	if (env->body_case == MV__ENVELOPE__BODY_REQUEST && env->request != NULL) {
		*version = env->version;
		*id = env->request->id;
		rc = 0;
	}
	mv__envelope__free_unpacked(env, NULL);
	return rc;
}

void envelope_free(Mv__Envelope *env)
{
	if (env != NULL)
		mv__envelope__free_unpacked(env, NULL);
}

int envelope_encode_frame(const Mv__Envelope *env, uint8_t **out, size_t *out_len)
{
	size_t n = mv__envelope__get_packed_size(env);
	if (n == 0 || n > FRAME_MAX)
		return -EMSGSIZE;
	uint8_t *buf = malloc(FRAME_HEADER_LEN + n);
	if (buf == NULL)
		return -ENOMEM;
	frame_header_write(buf, (uint32_t)n);
	mv__envelope__pack(env, buf + FRAME_HEADER_LEN);
	*out = buf;
	*out_len = FRAME_HEADER_LEN + n;
	return 0;
}
