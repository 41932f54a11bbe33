/*
 * fuzz_envelope.c — libFuzzer target for envelope_decode(), the trust
 * boundary for every frame payload a peer or client sends.
 *
 * The input is one frame payload. A successful decode must honour the
 * contract (version 1, a body present, a reason string on every failure),
 * and must survive a round trip: encoding the decoded tree and decoding it
 * again succeeds, and encoding that gives the same bytes (encoding is a
 * function of the tree, so a second pass cannot change anything).
 * envelope_peek_request (what the RPC port answers a request of another
 * version with) must agree with the decode: a payload refused for its
 * version never peeks as version 1, a decoded request peeks as itself.
 *
 * The round trip is only asserted for trees without unknown fields:
 * protobuf-c keeps unknown fields to re-emit them, and it accepts an
 * over-long encoding of field number 0 that it re-emits in the short form
 * it then rejects (input 08 01 a2 01 04 08 01 52 00 81 00 ff 3f 00 ...).
 * That is a library quirk, harmless as long as the agent never relays a
 * received tree verbatim.
 *
 * envelope_peek_op (the RPC port's size caps read it from a frame's
 * first bytes) runs on every prefix length up to 80 bytes: it must never
 * read past its length, and what it finds must not change once found.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does any message in the tree carry fields this build does not know? */
static bool has_unknown(const ProtobufCMessage *m)
{
	if (m == NULL)
		return false;
	if (m->n_unknown_fields != 0)
		return true;
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		if (f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(const void *)(base + f->quantifier_offset);
			ProtobufCMessage *const *arr =
			    *(ProtobufCMessage *const *const *)(const void *)(base + f->offset);
			for (size_t j = 0; j < n; j++)
				if (has_unknown(arr[j]))
					return true;
			continue;
		}
		if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
		    *(const uint32_t *)(const void *)(base + f->quantifier_offset) != f->id)
			continue;
		if (has_unknown(*(ProtobufCMessage *const *)(const void *)(base + f->offset)))
			return true;
	}
	return false;
}

/* Reads every string of the tree, so ASan sees any that is not terminated. */
static size_t touch(const char *s)
{
	return s ? strlen(s) : 0;
}

static size_t walk_replica(const Mv__HaReplica *r)
{
	if (r == NULL)
		return 0;
	return touch(r->owner) + touch(r->uuid) + touch(r->name) + touch(r->group) + touch(r->xml);
}

/* Every body, every RPC operation and every result must be listed here:
 * an unknown oneof case aborts, so a new one cannot go unwalked. */
static size_t walk(const Mv__Envelope *env)
{
	size_t t = touch(env->from);
	switch (env->body_case) {
	case MV__ENVELOPE__BODY_SWIM: {
		const Mv__SwimMessage *m = env->swim;
		t += touch(m->from_addr) + touch(m->to) + touch(m->target) + touch(m->target_addr);
		for (size_t i = 0; i < m->n_updates; i++) {
			const Mv__MemberUpdate *u = m->updates[i];
			t += touch(u->name) + touch(u->addr) + touch(u->origin) + (size_t)u->state;
		}
		break;
	}
	case MV__ENVELOPE__BODY_STATE: {
		const Mv__StateMessage *m = env->state;
		for (size_t i = 0; i < m->n_versions; i++)
			t += touch(m->versions[i]->name);
		for (size_t i = 0; i < m->n_records; i++)
			t += touch(m->records[i]->name) + m->records[i]->data.len;
		break;
	}
	case MV__ENVELOPE__BODY_MIG: {
		const Mv__MigMessage *m = env->mig;
		t += touch(m->to) + touch(m->proposal_id) + touch(m->vm_name) + touch(m->vm_uuid) +
		     touch(m->cpu_model) + touch(m->reason_text) + touch(m->dest_uri) +
		     touch(m->migrate_uri);
		break;
	}
	case MV__ENVELOPE__BODY_FAILOVER: {
		const Mv__FailoverMessage *m = env->failover;
		t += touch(m->to) + touch(m->dead) + touch(m->ballot_proposer) +
		     touch(m->accepted_proposer) + touch(m->vm_uuid) + touch(m->text) +
		     (size_t)m->type;
		for (size_t i = 0; i < m->n_removed; i++)
			t += touch(m->removed[i]->name);
		for (size_t i = 0; i < m->n_plan; i++) {
			const Mv__FoPlanEntry *e = m->plan[i];
			t += touch(e->uuid) + touch(e->name) + touch(e->target) + touch(e->group);
		}
		break;
	}
	case MV__ENVELOPE__BODY_REQUEST: {
		const Mv__RpcRequest *r = env->request;
		switch (r->op_case) {
		case MV__RPC_REQUEST__OP_MIGRATE:
			t += touch(r->migrate->vm) + touch(r->migrate->to);
			break;
		case MV__RPC_REQUEST__OP_DRAIN:
			t += touch(r->drain->node);
			break;
		case MV__RPC_REQUEST__OP_VM_RECEIVE:
			t += touch(r->vm_receive->xml) + touch(r->vm_receive->proposal_id);
			break;
		case MV__RPC_REQUEST__OP_JOIN:
			for (size_t i = 0; i < r->join->n_seeds; i++)
				t += touch(r->join->seeds[i]);
			break;
		case MV__RPC_REQUEST__OP_NODE:
			t += touch(r->node->name);
			break;
		case MV__RPC_REQUEST__OP_VMS:
			t += touch(r->vms->node);
			break;
		case MV__RPC_REQUEST__OP_VM:
			t += touch(r->vm->vm);
			break;
		case MV__RPC_REQUEST__OP_VM_CREATE:
			t += touch(r->vm_create->xml) + touch(r->vm_create->node);
			break;
		case MV__RPC_REQUEST__OP_VM_ACTION:
			t += touch(r->vm_action->vm);
			break;
		case MV__RPC_REQUEST__OP_VM_SET_HA:
			t += touch(r->vm_set_ha->vm);
			break;
		case MV__RPC_REQUEST__OP_EVENTS:
			t += r->events->backlog;
			break;
		case MV__RPC_REQUEST__OP_FORCE_LEAVE:
			t += touch(r->force_leave->node) + touch(r->force_leave->confirm);
			break;
		case MV__RPC_REQUEST__OP_REPLICA_PUT:
			t += walk_replica(r->replica_put->replica) + r->replica_put->drop;
			break;
		case MV__RPC_REQUEST__OP_REPLICA_GET:
			t += touch(r->replica_get->uuid);
			break;
		case MV__RPC_REQUEST__OP_STATUS:
		case MV__RPC_REQUEST__OP_MEMBERS:
		case MV__RPC_REQUEST__OP_LEAVE:
		case MV__RPC_REQUEST__OP_NODES:
		case MV__RPC_REQUEST__OP_MIGRATIONS:
		case MV__RPC_REQUEST__OP_FAILOVERS:
		case MV__RPC_REQUEST__OP_HA:
		case MV__RPC_REQUEST__OP__NOT_SET:
			break;
		default:
			abort(); /* an operation this walk does not know: add it */
		}
		break;
	}
	case MV__ENVELOPE__BODY_RESPONSE: {
		const Mv__RpcResponse *r = env->response;
		t += touch(r->error);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_MEMBERS)
			for (size_t i = 0; i < r->members->n_members; i++)
				t += touch(r->members->members[i]->name) +
				     touch(r->members->members[i]->addr) +
				     touch(r->members->members[i]->cause);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_VM_OP)
			t += touch(r->vm_op->vm) + touch(r->vm_op->uuid) + touch(r->vm_op->node) +
			     touch(r->vm_op->message);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_VMS)
			for (size_t i = 0; i < r->vms->n_vms; i++)
				t += touch(r->vms->vms[i]->node) +
				     (r->vms->vms[i]->vm ? touch(r->vms->vms[i]->vm->name) : 0);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_NODES)
			for (size_t i = 0; i < r->nodes->n_nodes; i++)
				t += touch(r->nodes->nodes[i]->member_name);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_MIGRATION)
			t += touch(r->migration->vm) + touch(r->migration->message);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_MIGRATIONS)
			for (size_t i = 0; i < r->migrations->n_migrations; i++)
				t += touch(r->migrations->migrations[i]->id);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_DRAIN)
			t += touch(r->drain->node) + touch(r->drain->message);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_EVENT)
			t += touch(r->event->kind) + touch(r->event->node) + touch(r->event->vm) +
			     touch(r->event->text);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_FAILOVERS)
			for (size_t i = 0; i < r->failovers->n_failovers; i++) {
				const Mv__FailoverInfo *f = r->failovers->failovers[i];
				t += touch(f->dead) + touch(f->phase) + touch(f->coordinator) +
				     touch(f->fence_how) + touch(f->reporter);
				for (size_t j = 0; j < f->n_vms; j++)
					t += touch(f->vms[j]->vm) + touch(f->vms[j]->uuid) +
					     touch(f->vms[j]->target) + touch(f->vms[j]->message);
			}
		if (r->result_case == MV__RPC_RESPONSE__RESULT_HA)
			for (size_t i = 0; i < r->ha->n_losses; i++) {
				const Mv__HaLoss *l = r->ha->losses[i];
				t += touch(l->node) + touch(l->message);
				for (size_t j = 0; j < l->n_unplaced; j++)
					t += touch(l->unplaced[j]);
			}
		if (r->result_case == MV__RPC_RESPONSE__RESULT_REPLICA)
			t += walk_replica(r->replica);
		if (r->result_case == MV__RPC_RESPONSE__RESULT_STATUS)
			t += touch(r->status->name) + touch(r->status->version) +
			     touch(r->status->peer_addr) + touch(r->status->rpc_addr) +
			     touch(r->status->libvirt_uri) + touch(r->status->libvirt_error) +
			     touch(r->status->role);
		switch (r->result_case) {
		case MV__RPC_RESPONSE__RESULT__NOT_SET:
		case MV__RPC_RESPONSE__RESULT_STATUS:
		case MV__RPC_RESPONSE__RESULT_MEMBERS:
		case MV__RPC_RESPONSE__RESULT_NODES:
		case MV__RPC_RESPONSE__RESULT_VMS:
		case MV__RPC_RESPONSE__RESULT_VM_OP:
		case MV__RPC_RESPONSE__RESULT_MIGRATION:
		case MV__RPC_RESPONSE__RESULT_MIGRATIONS:
		case MV__RPC_RESPONSE__RESULT_DRAIN:
		case MV__RPC_RESPONSE__RESULT_EVENT:
		case MV__RPC_RESPONSE__RESULT_FAILOVERS:
		case MV__RPC_RESPONSE__RESULT_HA:
		case MV__RPC_RESPONSE__RESULT_REPLICA:
			break;
		default:
			abort(); /* a result this walk does not know: add it */
		}
		break;
	}
	default:
		abort(); /* decode let an envelope without a body through */
	}
	return t;
}

static void peek_prefixes(const uint8_t *data, size_t size)
{
	bool found = false;
	uint64_t id0 = 0;
	uint32_t op0 = 0;
	for (size_t n = 0; n <= size && n <= 80; n++) {
		/* an exact-size copy: ASan sees any read past n */
		uint8_t *p = malloc(n ? n : 1);
		if (p == NULL)
			return;
		memcpy(p, data, n);
		uint64_t id;
		uint32_t op;
		int r = envelope_peek_op(p, n, &id, &op);
		free(p);
		if (r != 0 && r != -EAGAIN && r != -EBADMSG)
			abort();
		if (r == 0) {
			if (protobuf_c_message_descriptor_get_field(&mv__rpc_request__descriptor,
			                                            op) == NULL)
				abort();
			if (found && (id != id0 || op != op0))
				abort(); /* a longer prefix found something else */
			found = true;
			id0 = id;
			op0 = op;
		} else if (found) {
			abort(); /* found, then lost with more bytes */
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	peek_prefixes(data, size);
	Mv__Envelope *env = NULL;
	const char *why = NULL;
	int r = envelope_decode(data, size, &env, &why);
	if (why == NULL)
		abort(); /* every outcome carries a (possibly empty) reason */
	if (r != 0) {
		if (r > 0 || env != NULL || why[0] == '\0')
			abort(); /* a failure must be negative, leave nothing, say why */
		/* what the RPC port does with a request of another version */
		uint32_t version = ENVELOPE_VERSION;
		uint64_t id;
		if (r == -EPROTO && envelope_peek_request(data, size, &version, &id) == 0 &&
		    version == ENVELOPE_VERSION)
			abort(); /* refused for its version, yet it has ours */
		return 0;
	}
	{
		uint32_t version = 0;
		uint64_t id = 0;
		/* a good envelope peeks the same as it decodes */
		if (envelope_peek_request(data, size, &version, &id) == 0 &&
		    (env->body_case != MV__ENVELOPE__BODY_REQUEST || version != env->version ||
		     id != env->request->id))
			abort();
	}
	if (env == NULL || env->version != ENVELOPE_VERSION)
		abort();
	volatile size_t sink = walk(env);
	(void)sink;
	bool unknown = has_unknown(&env->base);

	uint8_t *f1 = NULL, *f2 = NULL;
	size_t n1 = 0, n2 = 0;
	if (envelope_encode_frame(env, &f1, &n1) != 0) {
		/* only possible if the re-encoding exceeds the cap */
		envelope_free(env);
		return 0;
	}
	envelope_free(env);
	if (n1 < FRAME_HEADER_LEN + 1)
		abort();
	uint32_t declared = ((uint32_t)f1[0] << 24) | ((uint32_t)f1[1] << 16) |
	                    ((uint32_t)f1[2] << 8) | (uint32_t)f1[3];
	if (declared != n1 - FRAME_HEADER_LEN)
		abort();

	if (unknown) {
		free(f1);
		return 0;
	}
	Mv__Envelope *env2 = NULL;
	if (envelope_decode(f1 + FRAME_HEADER_LEN, n1 - FRAME_HEADER_LEN, &env2, &why) != 0)
		abort(); /* what we encode, we must accept */
	if (envelope_encode_frame(env2, &f2, &n2) != 0)
		abort();
	if (n1 != n2 || memcmp(f1, f2, n1) != 0)
		abort();
	envelope_free(env2);
	free(f1);
	free(f2);
	return 0;
}
