/*
 * envelope.c — decode and encode mv.Envelope frame payloads.
 *
 * The payload length was capped by the frame decoder before any byte was
 * allocated; protobuf-c then bounds every nested allocation by that length.
 * After unpacking we check what protobuf cannot: the wire version and that
 * exactly one body is present.
 */
#include "envelope.h"

#include <errno.h>
#include <stdlib.h>

#include "frame.h"

int envelope_decode(const uint8_t *payload, size_t len, Mv__Envelope **out, const char **why)
{
	*out = NULL;
	if (len == 0 || len > FRAME_MAX) {
		*why = "frame length out of range";
		return -EMSGSIZE;
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
