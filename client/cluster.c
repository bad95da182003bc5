/* cluster.c: libpartisan-client's cluster-wide functions: membership and
 * connections, join/leave, plumtree broadcast, the distributed registry,
 * status and partition injection. One ipc.proto request each (pc_query);
 * answers are copied into structs the caller frees (see partisan/client.h)
 * by the converters in convert.c. */
#include <stdlib.h>
#include <string.h>

#include "client-int.h"
#include "wire.h"

/* ---- membership -------------------------------------------------------- */

int partisan_nodes(partisan_t *c, partisan_node_type_t type, partisan_strlist_t *out)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Nodes nodes = PARTISAN_IPC__NODES__INIT;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL ||
	    (type != PARTISAN_NODES_VISIBLE && type != PARTISAN_NODES_ALL))
		return PARTISAN_EINVAL;
	nodes.has_all = 1;
	nodes.all = type == PARTISAN_NODES_ALL;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_NODES;
	req.nodes = &nodes;
	return pc_query(c, &req, 0, -PARTISAN_IPC__RESPONSE__BODY_NODES, pc_conv_nodes, out);
}

int partisan_members(partisan_t *c, partisan_spec_list_t *out)
{
	return partisan_members_status(c, NULL, out);
}

int partisan_members_status(partisan_t *c, const char *status, partisan_spec_list_t *out)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__MembersRequest mr = PARTISAN_IPC__MEMBERS_REQUEST__INIT;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || (status != NULL && pc_status_name(status) == NULL))
		return PARTISAN_EINVAL;
	mr.status = (char *)status;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_MEMBERS;
	req.members = &mr;
	return pc_query(c, &req, 0, -PARTISAN_IPC__RESPONSE__BODY_MEMBERS, pc_conv_members, out);
}

int partisan_connections(partisan_t *c, const char *node, partisan_conn_list_t *out)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Connections cs = PARTISAN_IPC__CONNECTIONS__INIT;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || (node != NULL && !pc_node_ok(node)))
		return PARTISAN_EINVAL;
	cs.node = (char *)node;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_CONNECTIONS;
	req.connections = &cs;
	return pc_query(c, &req, 0, -PARTISAN_IPC__RESPONSE__BODY_CONNECTIONS, pc_conv_conns, out);
}

int partisan_is_connected(partisan_t *c, const char *node)
{
	partisan_strlist_t l;
	int r;

	if (c == NULL || !pc_node_ok(node))
		return PARTISAN_EINVAL;
	if ((r = partisan_nodes(c, PARTISAN_NODES_VISIBLE, &l)) < 0)
		return r;
	for (size_t i = 0; i < l.n && r == 0; i++)
		r = strcmp(l.v[i], node) == 0;
	partisan_strlist_free(&l);
	return r;
}

int partisan_is_fully_connected(partisan_t *c, const char *node)
{
	partisan_conn_list_t l;
	int r, seen = 0;

	if (c == NULL || !pc_node_ok(node))
		return PARTISAN_EINVAL;
	if ((r = partisan_connections(c, node, &l)) < 0)
		return r;
	r = 1;
	for (size_t i = 0; i < l.n; i++) {
		if (strcmp(l.v[i].node, node) != 0)
			continue;
		seen = 1;
		if (l.v[i].connected < l.v[i].wanted || l.v[i].connected == 0)
			r = 0;
	}
	partisan_conn_list_free(&l);
	return r && seen;
}

int partisan_join(partisan_t *c, const char *target, int timeout_ms)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Join j = PARTISAN_IPC__JOIN__INIT;

	if (c == NULL || !pc_name_ok(target) || strchr(target, ':') == NULL || timeout_ms < 0)
		return PARTISAN_EINVAL;
	j.target = (char *)target;
	j.has_timeout_ms = 1;
	j.timeout_ms = (uint32_t)timeout_ms;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_JOIN;
	req.join = &j;
	return pc_query(c, &req, timeout_ms, PC_ANY, NULL, NULL);
}

int partisan_leave(partisan_t *c, const char *node)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Leave l = PARTISAN_IPC__LEAVE__INIT;

	if (c == NULL || (node != NULL && !pc_node_ok(node)))
		return PARTISAN_EINVAL;
	l.node = (char *)node;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_LEAVE;
	req.leave = &l;
	return pc_query(c, &req, 0, PC_ANY, NULL, NULL);
}

/* ---- broadcast --------------------------------------------------------- */

int partisan_broadcast(partisan_t *c, const char *topic, const void *buf, size_t len)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Broadcast b = PARTISAN_IPC__BROADCAST__INIT;

	if (c == NULL || !pc_name_ok(topic) || (buf == NULL && len > 0))
		return PARTISAN_EINVAL;
	b.topic = (char *)topic;
	b.payload.data = (uint8_t *)buf;
	b.payload.len = len;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_BROADCAST;
	req.broadcast = &b;
	return pc_query(c, &req, 0, PC_ANY, NULL, NULL);
}

static int cl_topic(partisan_t *c, const char *topic, PartisanIpc__Request__BodyCase kind)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Topic t = PARTISAN_IPC__TOPIC__INIT;

	if (c == NULL || !pc_name_ok(topic))
		return PARTISAN_EINVAL;
	t.topic = (char *)topic;
	req.body_case = kind;
	req.subscribe = &t; /* subscribe and unsubscribe share the union slot */
	return pc_query(c, &req, 0, PC_ANY, NULL, NULL);
}

int partisan_subscribe(partisan_t *c, const char *topic)
{
	return cl_topic(c, topic, PARTISAN_IPC__REQUEST__BODY_SUBSCRIBE);
}

int partisan_unsubscribe(partisan_t *c, const char *topic)
{
	return cl_topic(c, topic, PARTISAN_IPC__REQUEST__BODY_UNSUBSCRIBE);
}

/* ---- registry ---------------------------------------------------------- */

int partisan_registry(partisan_t *c, const char *name, partisan_registry_t *out)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__Name n = PARTISAN_IPC__NAME__INIT;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || (name != NULL && strlen(name) >= PARTISAN_NODE_MAX))
		return PARTISAN_EINVAL;
	n.name = (char *)(name != NULL ? name : "");
	req.body_case = PARTISAN_IPC__REQUEST__BODY_REGISTRY;
	req.registry = &n;
	return pc_query(c, &req, 0, -PARTISAN_IPC__RESPONSE__BODY_REGISTRY, pc_conv_registry, out);
}

/* Move the refs of name's entry out of reg into *out; ENOENT if none. */
static int cl_take_refs(partisan_registry_t *reg, const char *name, partisan_strlist_t *out)
{
	for (size_t i = 0; i < reg->n; i++) {
		if (strcmp(reg->v[i].name, name) == 0 && reg->v[i].refs.n > 0) {
			*out = reg->v[i].refs;
			memset(&reg->v[i].refs, 0, sizeof(reg->v[i].refs));
			return 0;
		}
	}
	return PARTISAN_ENOENT;
}

int partisan_registry_pids_of(partisan_t *c, const char *name, partisan_strlist_t *out)
{
	partisan_registry_t reg;
	int r;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || !pc_name_ok(name))
		return PARTISAN_EINVAL;
	if ((r = partisan_registry(c, name, &reg)) < 0)
		return r;
	r = cl_take_refs(&reg, name, out);
	partisan_registry_free(&reg);
	return r;
}

static bool cl_has(const partisan_strlist_t *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

/* Replace each ref in l by its node, dropping duplicates, in place. */
static void cl_refs_to_nodes(partisan_strlist_t *l)
{
	partisan_strlist_t kept = {.n = 0, .v = l->v};
	struct ref r;

	for (size_t i = 0; i < l->n; i++) {
		char *s = l->v[i];

		if (ref_parse(s, &r) < 0 || cl_has(&kept, r.node)) {
			free(s);
			continue;
		}
		memcpy(s, r.node, strlen(r.node) + 1); /* a ref is longer than its node */
		kept.v[kept.n++] = s;
	}
	l->n = kept.n;
}

int partisan_registry_nodes_of(partisan_t *c, const char *name, partisan_strlist_t *out)
{
	int r = partisan_registry_pids_of(c, name, out);

	if (r < 0)
		return r;
	cl_refs_to_nodes(out);
	if (out->n == 0) {
		partisan_strlist_free(out);
		return PARTISAN_ENOENT;
	}
	return 0;
}

static uint64_t cl_random(struct partisan *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

int partisan_registry_pid_of(partisan_t *c, const char *name, char *ref, size_t n)
{
	partisan_strlist_t l;
	int r;

	if (c == NULL || ref == NULL || n == 0 || !pc_name_ok(name))
		return PARTISAN_EINVAL;
	if ((r = partisan_registry_pids_of(c, name, &l)) < 0)
		return r;
	r = pc_copy(l.v[cl_random(c) % l.n], ref, n);
	partisan_strlist_free(&l);
	return r;
}

/* ---- status and partitions --------------------------------------------- */

int partisan_status(partisan_t *c, partisan_status_t **out)
{
	if (c == NULL || out == NULL)
		return PARTISAN_EINVAL;
	*out = NULL;
	return pc_query_empty(c, PARTISAN_IPC__REQUEST__BODY_STATUS, 0,
	                      PARTISAN_IPC__RESPONSE__BODY_STATUS, pc_conv_status, out);
}

int partisan_partition_inject(partisan_t *c, const char *node, char *ref, size_t n)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__PartitionInject pi = PARTISAN_IPC__PARTITION_INJECT__INIT;

	if (c == NULL || ref == NULL || n == 0 || !pc_node_ok(node))
		return PARTISAN_EINVAL;
	pi.node = (char *)node;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_PARTITION_INJECT;
	req.partition_inject = &pi;
	return pc_ref_request(c, &req, ref, n);
}

int partisan_partition_resolve(partisan_t *c, const char *ref)
{
	PartisanIpc__Request req = PARTISAN_IPC__REQUEST__INIT;
	PartisanIpc__PartitionResolve pr = PARTISAN_IPC__PARTITION_RESOLVE__INIT;

	if (c == NULL || !pc_ref_ok(ref, 7u))
		return PARTISAN_EINVAL;
	pr.ref = (char *)ref;
	req.body_case = PARTISAN_IPC__REQUEST__BODY_PARTITION_RESOLVE;
	req.partition_resolve = &pr;
	return pc_query(c, &req, 0, PC_ANY, NULL, NULL);
}

int partisan_partition_list(partisan_t *c, partisan_partition_list_t *out)
{
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL)
		return PARTISAN_EINVAL;
	return pc_query_empty(c, PARTISAN_IPC__REQUEST__BODY_PARTITION_LIST, 0,
	                      -PARTISAN_IPC__RESPONSE__BODY_PARTITIONS, pc_conv_partitions, out);
}

/* ---- graph --------------------------------------------------------------- */

/* The daemon asks each linked node (up to a second each): the answer gets
 * 5 s more than the handle's timeout. */
int partisan_graph(partisan_t *c, partisan_graph_t *out)
{
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL)
		return PARTISAN_EINVAL;
	return pc_query_empty(c, PARTISAN_IPC__REQUEST__BODY_GRAPH, 5000,
	                      PARTISAN_IPC__RESPONSE__BODY_GRAPH, pc_conv_graph, out);
}
