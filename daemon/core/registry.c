/* registry.c: remote nodes' registered names, as versioned records (see
 * registry.h). Each record is kept in its protobuf form, deep-copied and
 * owned here, so that sending the table needs no conversion. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "nodespec.h"
#include "registry.h"
#include "strmap.h"

struct reg_rec {
	PartisanPeer__RegistryRecord pb; /* every string and array owned */
	uint64_t gone_at;                /* when it became a tombstone here */
};

struct registry {
	struct strmap nodes; /* node -> struct reg_rec */
};

struct registry *registry_create(void)
{
	struct registry *r = xcalloc(1, sizeof(*r));

	strmap_init(&r->nodes);
	return r;
}

static void registry_rec_free(struct reg_rec *rr)
{
	for (size_t i = 0; i < rr->pb.n_names; i++) {
		free(rr->pb.names[i]->name);
		free(rr->pb.names[i]->ref);
		free(rr->pb.names[i]);
	}
	free(rr->pb.names);
	free(rr->pb.node);
	free(rr);
}

void registry_destroy(struct registry *r)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);)
		registry_rec_free(v);
	strmap_free(&r->nodes);
	free(r);
}

static bool registry_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= 255;
}

static int registry_check(const PartisanPeer__RegistryRecord *rec, const char **why)
{
	if (!node_name_valid(rec->node))
		return *why = "registry: bad node name", -1;
	if (rec->n_names > REGISTRY_NAMES_MAX)
		return *why = "registry: too many names in one record", -1;
	if (rec->has_gone && rec->gone && rec->n_names > 0)
		return *why = "registry: a tombstone with names", -1;
	for (size_t i = 0; i < rec->n_names; i++)
		if (!registry_name_ok(rec->names[i]->name) || !registry_name_ok(rec->names[i]->ref))
			return *why = "registry: bad name or ref", -1;
	return 0;
}

static struct reg_rec *registry_copy(const PartisanPeer__RegistryRecord *rec, uint64_t now)
{
	struct reg_rec *rr = xcalloc(1, sizeof(*rr));

	partisan_peer__registry_record__init(&rr->pb);
	rr->pb.node = xstrdup(rec->node);
	rr->pb.epoch = rec->epoch;
	rr->pb.version = rec->version;
	rr->pb.has_gone = rr->pb.gone = rec->has_gone && rec->gone;
	rr->gone_at = rr->pb.gone ? now : 0;
	rr->pb.names = xcalloc(rec->n_names + 1, sizeof(*rr->pb.names));
	for (size_t i = 0; i < rec->n_names; i++) {
		PartisanPeer__RegistryName *n = xmalloc(sizeof(*n));

		partisan_peer__registry_name__init(n);
		n->name = xstrdup(rec->names[i]->name);
		n->ref = xstrdup(rec->names[i]->ref);
		rr->pb.names[rr->pb.n_names++] = n;
	}
	return rr;
}

/* Does (epoch, version, gone) a beat b? A tombstone beats the live record
 * of the same version. */
static bool registry_newer(const PartisanPeer__RegistryRecord *a,
                           const PartisanPeer__RegistryRecord *b)
{
	bool ga = a->has_gone && a->gone, gb = b->has_gone && b->gone;

	if (a->epoch != b->epoch)
		return a->epoch > b->epoch;
	if (a->version != b->version)
		return a->version > b->version;
	return ga && !gb;
}

int registry_merge(struct registry *r, const PartisanPeer__RegistryRecord *rec, uint64_t now,
                   const char **why)
{
	struct reg_rec *old;

	if (registry_check(rec, why) < 0)
		return -1;
	old = strmap_get(&r->nodes, rec->node);
	if (old && !registry_newer(rec, &old->pb))
		return 0;
	old = strmap_put(&r->nodes, rec->node, registry_copy(rec, now));
	if (old)
		registry_rec_free(old);
	return 1;
}

bool registry_gone(struct registry *r, const char *node, uint64_t now,
                   const PartisanPeer__RegistryRecord **tomb)
{
	struct reg_rec *rr = strmap_get(&r->nodes, node);

	if (rr == NULL || rr->pb.gone)
		return false;
	for (size_t i = 0; i < rr->pb.n_names; i++) {
		free(rr->pb.names[i]->name);
		free(rr->pb.names[i]->ref);
		free(rr->pb.names[i]);
	}
	rr->pb.n_names = 0;
	rr->pb.has_gone = rr->pb.gone = 1;
	rr->gone_at = now;
	if (tomb)
		*tomb = &rr->pb;
	return true;
}

void registry_tick(struct registry *r, uint64_t now)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);) {
		struct reg_rec *rr = v;

		if (rr->pb.gone && now >= rr->gone_at + REGISTRY_TOMB_MS) {
			strmap_del(&r->nodes, k);
			registry_rec_free(rr);
			i = 0; /* the map changed under the cursor */
		}
	}
}

void registry_to_pb(const struct registry *r, PartisanPeer__RegistryRecord *extra,
                    PartisanPeer__Registry *out)
{
	const char *k;
	void *v;

	partisan_peer__registry__init(out);
	out->records = xcalloc(r->nodes.len + 2, sizeof(*out->records));
	if (extra)
		out->records[out->n_records++] = extra;
	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);)
		out->records[out->n_records++] = &((struct reg_rec *)v)->pb;
}

void registry_pb_release(PartisanPeer__Registry *out)
{
	free(out->records);
	out->records = NULL;
	out->n_records = 0;
}

void registry_each(const struct registry *r, const char *name, registry_fn fn, void *arg)
{
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);) {
		const struct reg_rec *rr = v;

		for (size_t j = 0; j < rr->pb.n_names; j++)
			if (name[0] == '\0' || strcmp(name, rr->pb.names[j]->name) == 0)
				fn(arg, k, rr->pb.names[j]->name, rr->pb.names[j]->ref);
	}
}

const char *registry_find(const struct registry *r, const char *node, const char *name)
{
	const struct reg_rec *rr = strmap_get(&r->nodes, node);

	for (size_t j = 0; rr && j < rr->pb.n_names; j++)
		if (strcmp(rr->pb.names[j]->name, name) == 0)
			return rr->pb.names[j]->ref;
	return NULL;
}

size_t registry_count(const struct registry *r)
{
	return r->nodes.len;
}

static uint64_t registry_rec_hash(const PartisanPeer__RegistryRecord *rec)
{
	uint64_t h = hash_bytes(HASH_INIT, rec->node, strlen(rec->node) + 1);
	uint8_t gone = rec->has_gone && rec->gone;

	/* (node, epoch, version) fixes the names: they need no hashing. */
	h = hash_bytes(h, &rec->epoch, sizeof(rec->epoch));
	h = hash_bytes(h, &rec->version, sizeof(rec->version));
	return hash_bytes(h, &gone, 1);
}

uint64_t registry_hash(const struct registry *r, const PartisanPeer__RegistryRecord *extra)
{
	uint64_t h = extra ? registry_rec_hash(extra) : 0;
	const char *k;
	void *v;

	for (size_t i = 0; strmap_next(&r->nodes, &i, &k, &v);)
		h ^= registry_rec_hash(&((const struct reg_rec *)v)->pb);
	return h;
}
