/* partisanctl.c: the command-line face of partisand, in the manner of
 * bgpctl: a const table maps each command to its arguments and a handler;
 * a handler makes libpartisan-client calls and prints through an output
 * vtable, text (aligned tables) or JSON (jansson; streams print one object
 * per line). Exit codes: 0 ok, 1 error, 2 usage, 69 daemon not reachable. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "partisan/client.h"

#define CTL_EX_OK          0
#define CTL_EX_ERR         1
#define CTL_EX_USAGE       2
#define CTL_EX_UNAVAILABLE 69
#define CTL_TIMEOUT        5000 /* ms, join and call */
#define CTL_MAX_ARGS       8

struct ctl_opts {
	const char *socket;  /* -s, or NULL for $PARTISAN_SOCKET / the default */
	bool json;           /* --json */
	const char *channel; /* send --channel */
	const char *key;     /* send --key */
	bool ack;            /* send --ack */
	bool transitive;     /* send/call --transitive */
	const char *causal;  /* send --causal-label */
	bool any;            /* call --any */
	bool echo;           /* listen --echo */
	int timeout_ms;      /* join/call --timeout */
	bool timeout_set;    /* --timeout was given */
	const char *name;    /* peer start --name */
	const char *config;  /* peer start --config */
	bool detached;       /* peer start --detached */
	const char *args[CTL_MAX_ARGS];
	int nargs;
};

struct ctl_cmd {
	const char *name;
	const char *sub; /* second word (partition inject), or NULL */
	int min_args, max_args;
	const char *flags; /* the options it takes: "timeout=" takes a value, "ack" not */
	const char *first; /* "a|b": the words the first argument may be, or NULL */
	const char *usage;
	int (*run)(partisan_t *c, const struct ctl_opts *o);
};

/* ---- small helpers ----------------------------------------------------- */

static void ctl_oom(void)
{
	fputs("partisanctl: out of memory\n", stderr);
	exit(CTL_EX_ERR);
}

static char *ctl_strdup(const char *s)
{
	char *d = strdup(s != NULL ? s : "");

	if (d == NULL)
		ctl_oom();
	return d;
}

static char *ctl_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *ctl_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		ctl_oom();
	return s;
}

/* "partisanctl: what: error[: daemon's detail]", or "what: detail" when
 * the detail names the error itself; returns 1 for exit. */
static int ctl_fail(partisan_t *c, const char *what, int err)
{
	const char *detail = c != NULL ? partisan_last_error(c) : NULL;

	if (detail != NULL && strstr(detail, partisan_strerror(err)) != NULL)
		fprintf(stderr, "partisanctl: %s: %s\n", what, detail); /* says it already */
	else if (detail != NULL && detail[0] != '\0')
		fprintf(stderr, "partisanctl: %s: %s: %s\n", what, partisan_strerror(err), detail);
	else
		fprintf(stderr, "partisanctl: %s: %s\n", what, partisan_strerror(err));
	return CTL_EX_ERR;
}

static unsigned ctl_parallelism(unsigned p)
{
	return p != 0 ? p : 1;
}

/* ---- aligned text tables ----------------------------------------------- */

#define TBL_COLS 6

struct tbl {
	size_t ncols, nrows, cap;
	char **cells; /* row-major, row 0 the header */
};

static void tbl_add(struct tbl *t, char **row)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cells = realloc(t->cells, t->cap * t->ncols * sizeof(char *));
		if (t->cells == NULL)
			ctl_oom();
	}
	memcpy(t->cells + t->nrows++ * t->ncols, row, t->ncols * sizeof(char *));
}

/* Add a row of ncols strings, copied. */
static void tbl_row(struct tbl *t, ...)
{
	char *row[TBL_COLS];
	va_list ap;

	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++)
		row[i] = ctl_strdup(va_arg(ap, const char *));
	va_end(ap);
	tbl_add(t, row);
}

static void tbl_print(struct tbl *t)
{
	size_t w[TBL_COLS] = {0};

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++)
			if (strlen(t->cells[r * t->ncols + i]) > w[i])
				w[i] = strlen(t->cells[r * t->ncols + i]);
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;
		size_t last = t->ncols - 1;

		while (last > 0 && row[last][0] == '\0')
			last--; /* no padding after the last non-empty cell */
		for (size_t i = 0; i < last; i++)
			printf("%-*s  ", (int)w[i], row[i]);
		printf("%s\n", row[last]);
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* Join a list with sep into a new string. */
static char *ctl_join(char *const *v, size_t n, const char *sep)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + strlen(sep);
	if ((s = malloc(len)) == NULL)
		ctl_oom();
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(s, sep);
		strcat(s, v[i]);
	}
	return s;
}

static char *ctl_addrs_text(const partisan_node_spec_t *s)
{
	char **v = calloc(s->n_addrs + 1, sizeof(char *)), *out;

	if (v == NULL)
		ctl_oom();
	for (size_t i = 0; i < s->n_addrs; i++)
		v[i] = ctl_printf(strchr(s->addrs[i].ip, ':') ? "[%s]:%u" : "%s:%u", s->addrs[i].ip,
		                  (unsigned)s->addrs[i].port);
	out = ctl_join(v, s->n_addrs, ",");
	for (size_t i = 0; i < s->n_addrs; i++)
		free(v[i]);
	free(v);
	return out;
}

static char *ctl_channels_text(const partisan_node_spec_t *s)
{
	char **v = calloc(s->n_channels + 1, sizeof(char *)), *out;

	if (v == NULL)
		ctl_oom();
	for (size_t i = 0; i < s->n_channels; i++)
		v[i] = ctl_printf("%s(%u%s)", s->channels[i].name,
		                  ctl_parallelism(s->channels[i].parallelism),
		                  s->channels[i].monotonic ? ",monotonic" : "");
	out = ctl_join(v, s->n_channels, ",");
	for (size_t i = 0; i < s->n_channels; i++)
		free(v[i]);
	free(v);
	return out;
}

/* ---- text output ------------------------------------------------------- */

static void text_kv(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_kv(const char *key, const char *fmt, ...)
{
	va_list ap;

	printf("%-13s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void text_spec(const partisan_node_spec_t *s)
{
	char *addrs = ctl_addrs_text(s), *chans = ctl_channels_text(s);

	text_kv("name:", "%s", s->name);
	text_kv("listen:", "%s", addrs);
	text_kv("channels:", "%s", chans);
	text_kv("parallelism:", "%u", ctl_parallelism(s->parallelism));
	free(addrs);
	free(chans);
}

static void text_view(const char *key, const partisan_strlist_t *l)
{
	char *s = ctl_join(l->v, l->n, ",");

	text_kv(key, "%s", s);
	free(s);
}

static void text_endpoints(const partisan_status_t *s)
{
	struct tbl t = {.ncols = 2};

	tbl_row(&t, "ENDPOINT", "NAMES");
	for (size_t i = 0; i < s->n_endpoints; i++) {
		char *names = ctl_join(s->endpoints[i].names.v, s->endpoints[i].names.n, ",");

		tbl_row(&t, s->endpoints[i].ref, names);
		free(names);
	}
	putchar('\n');
	tbl_print(&t);
}

static void text_connections(const partisan_conn_list_t *l)
{
	struct tbl t = {.ncols = 4};

	tbl_row(&t, "NODE", "CHANNEL", "CONNECTED", "WANTED");
	for (size_t i = 0; i < l->n; i++) {
		char con[16], want[16];

		snprintf(con, sizeof(con), "%u", l->v[i].connected);
		snprintf(want, sizeof(want), "%u", l->v[i].wanted);
		tbl_row(&t, l->v[i].node, l->v[i].channel, con, want);
	}
	tbl_print(&t);
}

static void text_status(const partisan_status_t *s, const partisan_conn_list_t *conns)
{
	text_spec(&s->spec);
	text_kv("manager:", "%s", s->manager);
	if (s->cluster[0] != '\0')
		text_kv("cluster:", "%s", s->cluster);
	text_kv("uptime:", "%llus", (unsigned long long)s->uptime_s);
	text_kv("members:", "%u", s->members);
	text_kv("nodes:", "%u", s->nodes);
	text_kv("sessions:", "%u", s->sessions);
	text_kv("messages:", "%llu in, %llu out", (unsigned long long)s->messages_in,
	        (unsigned long long)s->messages_out);
	text_kv("dropped:", "%llu", (unsigned long long)s->dropped_no_proc);
	text_kv("acks pending:", "%llu", (unsigned long long)s->outstanding_acks);
	text_kv("partitions:", "%u", s->partitions);
	if (s->active_view.n > 0 || s->passive_view.n > 0) {
		text_view("active view:", &s->active_view);
		text_view("passive view:", &s->passive_view);
	}
	text_endpoints(s);
	putchar('\n');
	text_connections(conns);
}

static void text_members(const partisan_spec_list_t *l)
{
	struct tbl t = {.ncols = 3};

	tbl_row(&t, "NAME", "LISTEN", "CHANNELS");
	for (size_t i = 0; i < l->n; i++) {
		char *addrs = ctl_addrs_text(&l->v[i]), *chans = ctl_channels_text(&l->v[i]);

		tbl_row(&t, l->v[i].name, addrs, chans);
		free(addrs);
		free(chans);
	}
	tbl_print(&t);
}

static void text_nodes(const partisan_strlist_t *l)
{
	struct tbl t = {.ncols = 1};

	tbl_row(&t, "NODE");
	for (size_t i = 0; i < l->n; i++)
		tbl_row(&t, l->v[i]);
	tbl_print(&t);
}

static void text_registry(const partisan_registry_t *r)
{
	struct tbl t = {.ncols = 3};
	char node[PARTISAN_NODE_MAX];

	tbl_row(&t, "NAME", "NODE", "REF");
	for (size_t i = 0; i < r->n; i++) {
		for (size_t j = 0; j < r->v[i].refs.n; j++) {
			if (partisan_ref_node(r->v[i].refs.v[j], node, sizeof(node)) < 0)
				snprintf(node, sizeof(node), "?");
			tbl_row(&t, r->v[i].name, node, r->v[i].refs.v[j]);
		}
	}
	tbl_print(&t);
}

static void text_partitions(const partisan_partition_list_t *l)
{
	struct tbl t = {.ncols = 2};

	tbl_row(&t, "REF", "NODE");
	for (size_t i = 0; i < l->n; i++)
		tbl_row(&t, l->v[i].ref, l->v[i].node);
	tbl_print(&t);
}

static void text_ref(const char *ref)
{
	puts(ref);
}

static void text_done(const char *text)
{
	if (text != NULL)
		puts(text);
}

static void text_reply(const void *p, size_t len)
{
	fwrite(p, 1, len, stdout);
	putchar('\n');
}

static void text_message(const char *from, const char *topic, const partisan_event_t *ev)
{
	const void *p =
	    ev->type == PARTISAN_EV_MESSAGE ? ev->message.payload : ev->broadcast.payload;
	size_t len = ev->type == PARTISAN_EV_MESSAGE ? ev->message.len : ev->broadcast.len;

	(void)topic;
	printf("%s: ", from);
	fwrite(p, 1, len, stdout);
	putchar('\n');
	fflush(stdout);
}

static void text_node_event(bool up, const char *node, const char *reason)
{
	if (up || reason == NULL)
		printf("%s %s\n", up ? "nodeup" : "nodedown", node);
	else
		printf("nodedown %s %s\n", node, reason);
	fflush(stdout);
}

/* ---- JSON output ------------------------------------------------------- */

static void json_put(json_t *o, const char *key, json_t *v)
{
	if (v == NULL || json_object_set_new(o, key, v) < 0)
		ctl_oom();
}

static void json_push(json_t *a, json_t *v)
{
	if (v == NULL || json_array_append_new(a, v) < 0)
		ctl_oom();
}

static json_t *json_str(const char *s)
{
	json_t *v = json_string(s != NULL ? s : "");

	return v != NULL ? v : json_string("?"); /* not UTF-8: not expected of names */
}

/* Print one document (indented) or one stream line, and free it. */
static void json_emit(json_t *doc, bool line)
{
	size_t flags = JSON_PRESERVE_ORDER | (line ? 0 : JSON_INDENT(2));

	if (doc == NULL || json_dumpf(doc, stdout, flags) < 0)
		ctl_oom();
	putchar('\n');
	fflush(stdout);
	json_decref(doc);
}

static json_t *json_strlist(const partisan_strlist_t *l)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < l->n; i++)
		json_push(a, json_str(l->v[i]));
	return a;
}

static json_t *json_spec_obj(const partisan_node_spec_t *s)
{
	json_t *o = json_object(), *addrs = json_array(), *chans = json_array(),
	       *opts = json_object();

	if (o == NULL || addrs == NULL || chans == NULL || opts == NULL)
		ctl_oom();
	for (size_t i = 0; i < s->n_addrs; i++)
		json_push(addrs, json_pack("{s:s, s:i}", "ip", s->addrs[i].ip, "port",
		                           (int)s->addrs[i].port));
	for (size_t i = 0; i < s->n_channels; i++) {
		const partisan_channel_t *ch = &s->channels[i];

		json_push(chans, json_str(ch->name));
		json_put(opts, ch->name,
		         json_pack("{s:i, s:b}", "parallelism",
		                   (int)ctl_parallelism(ch->parallelism), "monotonic",
		                   ch->monotonic));
	}
	json_put(o, "name", json_str(s->name));
	json_put(o, "listen_addrs", addrs);
	json_put(o, "channels", chans);
	json_put(o, "parallelism", json_integer(ctl_parallelism(s->parallelism)));
	json_put(o, "channel_opts", opts);
	return o;
}

static void json_spec(const partisan_node_spec_t *s)
{
	json_emit(json_spec_obj(s), false);
}

static json_t *json_endpoints(const partisan_status_t *s)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < s->n_endpoints; i++) {
		json_t *e = json_object();

		if (e == NULL)
			ctl_oom();
		json_put(e, "ref", json_str(s->endpoints[i].ref));
		json_put(e, "names", json_strlist(&s->endpoints[i].names));
		json_push(a, e);
	}
	return a;
}

static json_t *json_conn_array(const partisan_conn_list_t *l)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < l->n; i++)
		json_push(a, json_pack("{s:s, s:s, s:i, s:i}", "node", l->v[i].node, "channel",
		                       l->v[i].channel, "connected", (int)l->v[i].connected,
		                       "wanted", (int)l->v[i].wanted));
	return a;
}

static void json_connections(const partisan_conn_list_t *l)
{
	json_emit(json_pack("{s:o}", "connections", json_conn_array(l)), false);
}

static void json_status(const partisan_status_t *s, const partisan_conn_list_t *conns)
{
	json_t *o = json_object();

	if (o == NULL)
		ctl_oom();
	json_put(o, "name", json_str(s->name));
	json_put(o, "manager", json_str(s->manager));
	json_put(o, "uptime_s", json_integer((json_int_t)s->uptime_s));
	json_put(o, "members", json_integer(s->members));
	json_put(o, "nodes", json_integer(s->nodes));
	json_put(o, "endpoints", json_endpoints(s));
	json_put(o, "spec", json_spec_obj(&s->spec));
	json_put(o, "cluster", json_str(s->cluster));
	json_put(o, "dropped", json_integer((json_int_t)s->dropped_no_proc));
	json_put(o, "outstanding_acks", json_integer((json_int_t)s->outstanding_acks));
	json_put(o, "active_view", json_strlist(&s->active_view));
	json_put(o, "passive_view", json_strlist(&s->passive_view));
	json_put(o, "sessions", json_integer(s->sessions));
	json_put(o, "messages_in", json_integer((json_int_t)s->messages_in));
	json_put(o, "messages_out", json_integer((json_int_t)s->messages_out));
	json_put(o, "partitions", json_integer(s->partitions));
	json_put(o, "connections", json_conn_array(conns));
	json_emit(o, false);
}

static void json_members(const partisan_spec_list_t *l)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < l->n; i++)
		json_push(a, json_spec_obj(&l->v[i]));
	json_emit(json_pack("{s:o}", "members", a), false);
}

static void json_nodes(const partisan_strlist_t *l)
{
	json_emit(json_pack("{s:o}", "nodes", json_strlist(l)), false);
}

static json_t *json_registry_entry(const partisan_registry_entry_t *e)
{
	json_t *nodes = json_array();
	char node[PARTISAN_NODE_MAX];

	if (nodes == NULL)
		ctl_oom();
	for (size_t j = 0; j < e->refs.n; j++) {
		bool seen = false;

		if (partisan_ref_node(e->refs.v[j], node, sizeof(node)) < 0)
			continue;
		for (size_t k = 0; k < json_array_size(nodes); k++)
			seen |= strcmp(json_string_value(json_array_get(nodes, k)), node) == 0;
		if (!seen)
			json_push(nodes, json_str(node));
	}
	return json_pack("{s:o, s:o, s:o}", "name", json_str(e->name), "refs",
	                 json_strlist(&e->refs), "nodes", nodes);
}

static void json_registry(const partisan_registry_t *r)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < r->n; i++)
		json_push(a, json_registry_entry(&r->v[i]));
	json_emit(json_pack("{s:o}", "registry", a), false);
}

static void json_partitions(const partisan_partition_list_t *l)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < l->n; i++)
		json_push(a, json_pack("{s:s, s:s}", "ref", l->v[i].ref, "node", l->v[i].node));
	json_emit(json_pack("{s:o}", "partitions", a), false);
}

static void json_ref(const char *ref)
{
	json_emit(json_pack("{s:o}", "ref", json_str(ref)), false);
}

static void json_done(const char *text)
{
	(void)text;
	json_emit(json_pack("{s:b}", "ok", 1), false);
}

static char *ctl_base64(const unsigned char *p, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc(4 * ((len + 2) / 3) + 1), *o = out;

	if (out == NULL)
		ctl_oom();
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;

		v |= i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0;
		v |= i + 2 < len ? p[i + 2] : 0;
		*o++ = tab[v >> 18 & 63];
		*o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < len ? tab[v >> 6 & 63] : '=';
		*o++ = i + 2 < len ? tab[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* Set key to the payload as text, or key_b64 when it is not UTF-8. */
static void json_payload(json_t *o, const char *key, const void *p, size_t len)
{
	json_t *s = json_stringn(len > 0 ? p : "", len);
	char *b64, k[32];

	if (s != NULL) {
		json_put(o, key, s);
		return;
	}
	b64 = ctl_base64(p, len);
	snprintf(k, sizeof(k), "%s_b64", key);
	json_put(o, k, json_string(b64));
	free(b64);
}

static void json_reply(const void *p, size_t len)
{
	json_t *o = json_object();

	if (o == NULL)
		ctl_oom();
	json_payload(o, "reply", p, len);
	json_emit(o, false);
}

static void json_message(const char *from, const char *topic, const partisan_event_t *ev)
{
	json_t *o = json_object();

	if (o == NULL)
		ctl_oom();
	json_put(o, "from", json_str(from));
	if (ev->type == PARTISAN_EV_MESSAGE)
		json_payload(o, "message", ev->message.payload, ev->message.len);
	else
		json_payload(o, "message", ev->broadcast.payload, ev->broadcast.len);
	if (topic != NULL)
		json_put(o, "topic", json_str(topic));
	if (ev->type == PARTISAN_EV_MESSAGE && ev->message.call_ref != NULL)
		json_put(o, "call_ref", json_str(ev->message.call_ref));
	json_emit(o, true);
}

static void json_node_event(bool up, const char *node, const char *reason)
{
	json_emit(json_pack("{s:s, s:o, s:o}", "event", up ? "nodeup" : "nodedown", "node",
	                    json_str(node), "reason", json_str(reason)),
	          true);
}

/* ---- the output vtable ------------------------------------------------- */

struct ctl_output {
	void (*status)(const partisan_status_t *, const partisan_conn_list_t *);
	void (*spec)(const partisan_node_spec_t *);
	void (*members)(const partisan_spec_list_t *);
	void (*nodes)(const partisan_strlist_t *);
	void (*connections)(const partisan_conn_list_t *);
	void (*registry)(const partisan_registry_t *);
	void (*partitions)(const partisan_partition_list_t *);
	void (*ref)(const char *ref);   /* partition inject */
	void (*done)(const char *text); /* a command without a result */
	void (*reply)(const void *p, size_t len);
	void (*message)(const char *from, const char *topic, const partisan_event_t *ev);
	void (*node_event)(bool up, const char *node, const char *reason);
};

static const struct ctl_output ctl_text = {
    .status = text_status,
    .spec = text_spec,
    .members = text_members,
    .nodes = text_nodes,
    .connections = text_connections,
    .registry = text_registry,
    .partitions = text_partitions,
    .ref = text_ref,
    .done = text_done,
    .reply = text_reply,
    .message = text_message,
    .node_event = text_node_event,
};

static const struct ctl_output ctl_json = {
    .status = json_status,
    .spec = json_spec,
    .members = json_members,
    .nodes = json_nodes,
    .connections = json_connections,
    .registry = json_registry,
    .partitions = json_partitions,
    .ref = json_ref,
    .done = json_done,
    .reply = json_reply,
    .message = json_message,
    .node_event = json_node_event,
};

static const struct ctl_output *out = &ctl_text;

/* ---- streams ----------------------------------------------------------- */

static volatile sig_atomic_t ctl_stop;

static void ctl_on_signal(int sig)
{
	(void)sig;
	ctl_stop = 1;
}

/* Block SIGINT/SIGTERM except inside ppoll(), so none is lost between the
 * check of ctl_stop and the wait. */
static void ctl_signals(sigset_t *waitmask)
{
	struct sigaction sa = {.sa_handler = ctl_on_signal};
	sigset_t block;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, waitmask);
	sigdelset(waitmask, SIGINT);
	sigdelset(waitmask, SIGTERM);
}

typedef int (*ctl_event_fn)(partisan_t *c, const struct ctl_opts *o, const partisan_event_t *ev);

#define CTL_STREAM_END 1 /* an event handler's "done, exit 0" */

/* Hand every event to fn until a signal (exit 0), the daemon goes away or
 * fn fails (exit 1). */
static int ctl_stream(partisan_t *c, const struct ctl_opts *o, ctl_event_fn fn)
{
	struct pollfd p = {.fd = partisan_fd(c), .events = POLLIN};
	partisan_event_t *ev;
	sigset_t waitmask;
	int r = 0;

	ctl_signals(&waitmask);
	while (!ctl_stop && r == 0) {
		while (!ctl_stop && r == 0 && (r = partisan_recv(c, &ev, 0)) == 0) {
			r = fn(c, o, ev);
			partisan_event_free(ev);
		}
		if (r == PARTISAN_ETIMEDOUT && !ctl_stop) {
			r = 0;
			if (ppoll(&p, 1, NULL, &waitmask) < 0 && errno != EINTR)
				r = PARTISAN_EIO;
		}
	}
	if (ctl_stop || r == CTL_STREAM_END)
		return CTL_EX_OK;
	if (r == PARTISAN_EIO || r == PARTISAN_EPROTO) {
		fprintf(stderr, "partisanctl: connection to partisand lost\n");
		return CTL_EX_ERR;
	}
	return ctl_fail(c, "stream", r);
}

static int ctl_on_message(partisan_t *c, const struct ctl_opts *o, const partisan_event_t *ev)
{
	if (ev->type != PARTISAN_EV_MESSAGE)
		return 0;
	out->message(ev->message.from, NULL, ev);
	if (o->echo && ev->message.call_ref != NULL)
		return partisan_reply(c, ev, ev->message.payload, ev->message.len);
	return 0;
}

static int ctl_on_broadcast(partisan_t *c, const struct ctl_opts *o, const partisan_event_t *ev)
{
	(void)c;
	(void)o;
	if (ev->type == PARTISAN_EV_BROADCAST)
		out->message(ev->broadcast.from, ev->broadcast.topic, ev);
	return 0;
}

static int ctl_on_node(partisan_t *c, const struct ctl_opts *o, const partisan_event_t *ev)
{
	(void)c;
	(void)o;
	if (ev->type == PARTISAN_EV_NODEUP || ev->type == PARTISAN_EV_NODEDOWN)
		out->node_event(ev->type == PARTISAN_EV_NODEUP, ev->node.node, ev->node.reason);
	return 0;
}

/* The DOWN of the one monitor `monitor` set: print it and end the stream. */
static int ctl_on_down(partisan_t *c, const struct ctl_opts *o, const partisan_event_t *ev)
{
	(void)c;
	(void)o;
	if (ev->type != PARTISAN_EV_DOWN)
		return 0;
	if (out == &ctl_json) {
		json_t *j =
		    json_pack("{s:s, s:s, s:s, s:s}", "event", "down", "mref", ev->down.mref,
		              "target", ev->down.target, "reason", ev->down.reason);

		json_dumpf(j, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(j);
	} else {
		printf("DOWN %s %s\n", ev->down.target, ev->down.reason);
	}
	fflush(stdout);
	return CTL_STREAM_END;
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_status(partisan_t *c, const struct ctl_opts *o)
{
	partisan_conn_list_t conns;
	partisan_status_t *s;
	int r = partisan_status(c, &s);

	(void)o;
	if (r < 0)
		return ctl_fail(c, "status", r);
	r = partisan_connections(c, NULL, &conns); /* leaves conns empty on failure */
	if (r < 0 && r != PARTISAN_ENOTSUP) {
		partisan_status_free(s);
		return ctl_fail(c, "status", r);
	}
	out->status(s, &conns);
	partisan_conn_list_free(&conns);
	partisan_status_free(s);
	return CTL_EX_OK;
}

static int cmd_spec(partisan_t *c, const struct ctl_opts *o)
{
	partisan_node_spec_t *s;
	int r = partisan_node_spec(c, &s);

	(void)o;
	if (r < 0)
		return ctl_fail(c, "spec", r);
	out->spec(s);
	partisan_node_spec_free(s);
	return CTL_EX_OK;
}

static int cmd_members(partisan_t *c, const struct ctl_opts *o)
{
	partisan_spec_list_t l;
	int r = partisan_members(c, &l);

	(void)o;
	if (r < 0)
		return ctl_fail(c, "members", r);
	out->members(&l);
	partisan_spec_list_free(&l);
	return CTL_EX_OK;
}

static int cmd_nodes(partisan_t *c, const struct ctl_opts *o)
{
	partisan_node_type_t type = PARTISAN_NODES_VISIBLE;
	partisan_strlist_t l;
	int r;

	if (o->nargs == 1 && strcmp(o->args[0], "all") == 0)
		type = PARTISAN_NODES_ALL;
	if ((r = partisan_nodes(c, type, &l)) < 0)
		return ctl_fail(c, "nodes", r);
	out->nodes(&l);
	partisan_strlist_free(&l);
	return CTL_EX_OK;
}

static int cmd_connections(partisan_t *c, const struct ctl_opts *o)
{
	partisan_conn_list_t l;
	int r = partisan_connections(c, o->nargs > 0 ? o->args[0] : NULL, &l);

	if (r < 0)
		return ctl_fail(c, "connections", r);
	out->connections(&l);
	partisan_conn_list_free(&l);
	return CTL_EX_OK;
}

static int cmd_join(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_join(c, o->args[0], o->timeout_ms);
	char *msg;

	if (r == PARTISAN_EINVAL && partisan_last_error(c)[0] == '\0') {
		fprintf(stderr, "partisanctl: join: %s: expected NAME@HOST:PORT or HOST:PORT\n",
		        o->args[0]);
		return CTL_EX_ERR;
	}
	if (r < 0)
		return ctl_fail(c, "join", r);
	msg = ctl_printf("joined %s", o->args[0]);
	out->done(msg);
	free(msg);
	return CTL_EX_OK;
}

static int cmd_leave(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_leave(c, o->nargs > 0 ? o->args[0] : NULL);

	if (r < 0)
		return ctl_fail(c, "leave", r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_send(partisan_t *c, const struct ctl_opts *o)
{
	partisan_send_opts_t so = {.channel = o->channel,
	                           .ack = o->ack,
	                           .transitive = o->transitive,
	                           .causal_label = o->causal};
	int r;

	if (o->key != NULL) {
		so.partition_key = o->key;
		so.partition_key_len = strlen(o->key);
	}
	r = partisan_send_name(c, o->args[0], o->args[1], o->args[2], strlen(o->args[2]), &so);
	if (r == 0)
		r = partisan_flush(c); /* so a failed send is reported */
	if (r < 0)
		return ctl_fail(c, "send", r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_call(partisan_t *c, const struct ctl_opts *o)
{
	partisan_send_opts_t so = {.transitive = o->transitive};
	partisan_buf_t reply;
	int r;

	/* call NODE NAME MESSAGE, or call --any NAME MESSAGE */
	if (o->nargs != (o->any ? 2 : 3)) {
		fprintf(stderr, "partisanctl: call: expected %s\n",
		        o->any ? "--any NAME MESSAGE" : "NODE NAME MESSAGE");
		return CTL_EX_USAGE;
	}
	if (o->any)
		r = partisan_call_name_opts(c, NULL, o->args[0], o->args[1], strlen(o->args[1]),
		                            o->timeout_ms, &so, &reply);
	else
		r = partisan_call_name_opts(c, o->args[0], o->args[1], o->args[2],
		                            strlen(o->args[2]), o->timeout_ms, &so, &reply);
	if (r < 0)
		return ctl_fail(c, "call", r);
	out->reply(reply.data != NULL ? reply.data : "", reply.len);
	partisan_buf_free(&reply);
	return CTL_EX_OK;
}

static int cmd_listen(partisan_t *c, const struct ctl_opts *o)
{
	char self[PARTISAN_REF_MAX];
	int r = partisan_register(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, "listen", r);
	if (partisan_self(c, self, sizeof(self)) == 0)
		fprintf(stderr, "partisanctl: listening on %s as %s\n", o->args[0], self);
	return ctl_stream(c, o, ctl_on_message);
}

static int cmd_monitor_nodes(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_monitor_nodes(c, true, PARTISAN_NODEDOWN_REASON);

	if (r < 0)
		return ctl_fail(c, "monitor-nodes", r);
	return ctl_stream(c, o, ctl_on_node);
}

static int cmd_monitor(partisan_t *c, const struct ctl_opts *o)
{
	char mref[PARTISAN_REF_MAX];
	int r = partisan_monitor(c, o->args[0], mref, sizeof(mref));

	if (r < 0)
		return ctl_fail(c, "monitor", r);
	fprintf(stderr, "partisanctl: monitoring %s as %s\n", o->args[0], mref);
	return ctl_stream(c, o, ctl_on_down);
}

static int cmd_broadcast(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_broadcast(c, o->args[0], o->args[1], strlen(o->args[1]));

	if (r < 0)
		return ctl_fail(c, "broadcast", r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_subscribe(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_subscribe(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, "subscribe", r);
	return ctl_stream(c, o, ctl_on_broadcast);
}

static int cmd_registry(partisan_t *c, const struct ctl_opts *o)
{
	partisan_registry_t reg;
	int r = partisan_registry(c, o->nargs > 0 ? o->args[0] : NULL, &reg);

	if (r < 0)
		return ctl_fail(c, "registry", r);
	out->registry(&reg);
	partisan_registry_free(&reg);
	return CTL_EX_OK;
}

static int cmd_partition_inject(partisan_t *c, const struct ctl_opts *o)
{
	char ref[PARTISAN_REF_MAX];
	int r = partisan_partition_inject(c, o->args[0], ref, sizeof(ref));

	if (r < 0)
		return ctl_fail(c, "partition inject", r);
	out->ref(ref);
	return CTL_EX_OK;
}

static int cmd_partition_resolve(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_partition_resolve(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, "partition resolve", r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_partition_list(partisan_t *c, const struct ctl_opts *o)
{
	partisan_partition_list_t l;
	int r = partisan_partition_list(c, &l);

	(void)o;
	if (r < 0)
		return ctl_fail(c, "partition list", r);
	out->partitions(&l);
	partisan_partition_list_free(&l);
	return CTL_EX_OK;
}

/* ---- peer: extra daemons on this host (client/peer.c) ------------------ */

static void ctl_peer_print(const partisan_peer_t *p, bool json, bool detached)
{
	if (json) {
		json_emit(json_pack("{s:o, s:o, s:o, s:i, s:i, s:o, s:b}", "name",
		                    json_str(partisan_peer_name(p)), "node",
		                    json_str(partisan_peer_node(p)), "socket",
		                    json_str(partisan_peer_socket(p)), "port",
		                    partisan_peer_port(p), "pid", partisan_peer_pid(p), "log",
		                    json_str(partisan_peer_log(p)), "detached", detached),
		          false);
		return;
	}
	text_kv("name:", "%s", partisan_peer_name(p));
	text_kv("node:", "%s", partisan_peer_node(p));
	text_kv("socket:", "%s", partisan_peer_socket(p));
	text_kv("port:", "%d", partisan_peer_port(p));
	text_kv("pid:", "%d", partisan_peer_pid(p));
	text_kv("log:", "%s", partisan_peer_log(p));
	fflush(stdout);
}

/* Stay in the foreground until a stop signal (then stop the peer
 * gracefully) or until the peer goes down by itself. */
static int ctl_peer_foreground(partisan_peer_t *p, const sigset_t *set)
{
	struct timespec tick = {1, 0};
	char name[PARTISAN_NODE_MAX];
	int sig, r;

	snprintf(name, sizeof(name), "%s", partisan_peer_name(p));
	for (;;) {
		sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			break;
		if (partisan_peer_state(p) == PARTISAN_PEER_DOWN) {
			fprintf(stderr, "partisanctl: peer %s went down (exit status %d)\n", name,
			        partisan_peer_exit_status(p));
			partisan_peer_stop(p, PARTISAN_PEER_STOP_KILL);
			return CTL_EX_ERR;
		}
	}
	if ((r = partisan_peer_stop(p, PARTISAN_PEER_STOP_GRACEFUL)) < 0)
		return ctl_fail(NULL, "peer stop", r);
	return CTL_EX_OK;
}

static int cmd_peer_start(partisan_t *c, const struct ctl_opts *o)
{
	char err[512] = "";
	partisan_peer_opts_t po = {.name = o->name,
	                           .config = o->config,
	                           .detached = o->detached,
	                           .boot_timeout_ms = o->timeout_set ? o->timeout_ms : 0,
	                           .errbuf = err,
	                           .errbuf_len = sizeof(err)};
	partisan_peer_t *p;
	sigset_t set;
	int r;

	(void)c;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (!o->detached)
		sigprocmask(SIG_BLOCK, &set, NULL); /* a stop during boot waits for the boot */
	if ((r = partisan_peer_start(&po, &p)) < 0) {
		fprintf(stderr, "partisanctl: peer start: %s%s%s\n", partisan_strerror(r),
		        err[0] ? ": " : "", err);
		return CTL_EX_ERR;
	}
	ctl_peer_print(p, o->json, o->detached);
	if (!o->detached)
		return ctl_peer_foreground(p, &set);
	partisan_peer_release(p);
	return CTL_EX_OK;
}

static int cmd_peer_stop(partisan_t *c, const struct ctl_opts *o)
{
	char msg[PARTISAN_NODE_MAX + 32];
	int r = partisan_peer_stop_name(o->args[0], PARTISAN_PEER_STOP_GRACEFUL, o->timeout_ms);

	(void)c;
	if (r == PARTISAN_ENOENT || r == PARTISAN_EINVAL) {
		fprintf(stderr, "partisanctl: peer stop: %s peer named \"%s\"\n",
		        r == PARTISAN_ENOENT ? "no recorded" : "bad name: no", o->args[0]);
		return CTL_EX_ERR;
	}
	if (r < 0)
		return ctl_fail(NULL, "peer stop", r);
	snprintf(msg, sizeof(msg), "peer %s stopped", o->args[0]);
	out->done(msg);
	return CTL_EX_OK;
}

static void ctl_peer_table(const partisan_peer_list_t *l)
{
	struct tbl t = {.ncols = 6};

	tbl_row(&t, "NAME", "NODE", "PID", "PORT", "STATE", "SOCKET");
	for (size_t i = 0; i < l->n; i++) {
		const partisan_peer_info_t *e = &l->v[i];
		char pid[16], port[16];

		snprintf(pid, sizeof(pid), "%d", e->pid);
		snprintf(port, sizeof(port), "%d", e->port);
		tbl_row(&t, e->name, e->node, pid, port, partisan_peer_state_name(e->state),
		        e->socket);
	}
	tbl_print(&t);
}

static void ctl_peer_json(const partisan_peer_list_t *l)
{
	json_t *a = json_array();

	if (a == NULL)
		ctl_oom();
	for (size_t i = 0; i < l->n; i++) {
		const partisan_peer_info_t *e = &l->v[i];

		json_push(a, json_pack("{s:o, s:o, s:i, s:i, s:s, s:o, s:o, s:b, s:I}", "name",
		                       json_str(e->name), "node", json_str(e->node), "pid", e->pid,
		                       "port", e->port, "state", partisan_peer_state_name(e->state),
		                       "socket", json_str(e->socket), "log", json_str(e->log),
		                       "detached", e->detached, "started", (json_int_t)e->started));
	}
	json_emit(json_pack("{s:o}", "peers", a), false);
}

static int cmd_peer_list(partisan_t *c, const struct ctl_opts *o)
{
	partisan_peer_list_t l;
	int r = partisan_peer_list(&l);

	(void)c;
	if (r < 0)
		return ctl_fail(NULL, "peer list", r);
	if (o->json)
		ctl_peer_json(&l);
	else
		ctl_peer_table(&l);
	partisan_peer_list_free(&l);
	return CTL_EX_OK;
}

/* The command table. Flags: the options a command takes, "x=" with a value;
 * a leading "!" means it runs without a daemon connection (c is NULL). */
static const struct ctl_cmd ctl_cmds[] = {
    {"status", NULL, 0, 0, "", NULL, "status", cmd_status},
    {"spec", NULL, 0, 0, "", NULL, "spec", cmd_spec},
    {"members", NULL, 0, 0, "", NULL, "members", cmd_members},
    {"nodes", NULL, 0, 1, "", "visible|all", "nodes [visible|all]", cmd_nodes},
    {"connections", NULL, 0, 1, "", NULL, "connections [NODE]", cmd_connections},
    {"join", NULL, 1, 1, "timeout=", NULL, "join NAME@HOST:PORT|HOST:PORT [--timeout MS]",
     cmd_join},
    {"leave", NULL, 0, 1, "", NULL, "leave [NODE]", cmd_leave},
    {"send", NULL, 3, 3, "channel= ack key= transitive causal-label=", NULL,
     "send NODE NAME MESSAGE [--channel C] [--ack] [--key K] [--transitive] [--causal-label L]",
     cmd_send},
    {"call", NULL, 2, 3, "timeout= transitive any", NULL,
     "call NODE NAME MESSAGE [--timeout MS] [--transitive] | call --any NAME MESSAGE", cmd_call},
    {"listen", NULL, 1, 1, "echo", NULL, "listen NAME [--echo]", cmd_listen},
    {"monitor-nodes", NULL, 0, 0, "", NULL, "monitor-nodes", cmd_monitor_nodes},
    {"monitor", NULL, 1, 1, "", NULL, "monitor REF", cmd_monitor},
    {"broadcast", NULL, 2, 2, "", NULL, "broadcast TOPIC MESSAGE", cmd_broadcast},
    {"subscribe", NULL, 1, 1, "", NULL, "subscribe TOPIC", cmd_subscribe},
    {"registry", NULL, 0, 1, "", NULL, "registry [NAME]", cmd_registry},
    {"partition", "inject", 1, 1, "", NULL, "partition inject NODE", cmd_partition_inject},
    {"partition", "resolve", 1, 1, "", NULL, "partition resolve REF", cmd_partition_resolve},
    {"partition", "list", 0, 0, "", NULL, "partition list", cmd_partition_list},
    {"peer", "start", 0, 0, "! name= config= detached timeout=", NULL,
     "peer start [--name N] [--config F] [--detached] [--timeout MS]", cmd_peer_start},
    {"peer", "stop", 1, 1, "! timeout=", NULL, "peer stop NAME [--timeout MS]", cmd_peer_stop},
    {"peer", "list", 0, 0, "!", NULL, "peer list", cmd_peer_list},
};

#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

/* ---- argument parsing -------------------------------------------------- */

static void ctl_usage(FILE *f, const struct ctl_cmd *only)
{
	fputs("usage: partisanctl [-s SOCKET] [--json] COMMAND [ARGS]\n", f);
	for (size_t i = 0; i < CTL_NCMDS; i++)
		if (only == NULL || strcmp(ctl_cmds[i].name, only->name) == 0)
			fprintf(f, "       partisanctl %s\n", ctl_cmds[i].usage);
}

static int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, const char *arg)
{
	fputs("partisanctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	ctl_usage(stderr, cmd);
	return CTL_EX_USAGE;
}

/* Does the command take flag (without "--")? Sets *has_value. */
static bool ctl_flag(const struct ctl_cmd *cmd, const char *flag, size_t len, bool *has_value)
{
	const char *p = cmd->flags;

	while ((p = strstr(p, flag)) != NULL) {
		bool start = p == cmd->flags || p[-1] == ' ';
		char end = p[len];

		if (start && (end == ' ' || end == '\0' || end == '=')) {
			*has_value = end == '=';
			return true;
		}
		p++;
	}
	return false;
}

static int ctl_timeout(const char *s, int *ms)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > INT_MAX / 2)
		return -1;
	*ms = (int)v;
	return 0;
}

static int ctl_set_flag(struct ctl_opts *o, const char *name, const char *val)
{
	if (strcmp(name, "timeout") == 0) {
		o->timeout_set = true;
		return ctl_timeout(val, &o->timeout_ms);
	}
	if (strcmp(name, "name") == 0)
		o->name = val;
	else if (strcmp(name, "config") == 0)
		o->config = val;
	else if (strcmp(name, "detached") == 0)
		o->detached = true;
	else if (strcmp(name, "channel") == 0)
		o->channel = val;
	else if (strcmp(name, "key") == 0)
		o->key = val;
	else if (strcmp(name, "ack") == 0)
		o->ack = true;
	else if (strcmp(name, "transitive") == 0)
		o->transitive = true;
	else if (strcmp(name, "causal-label") == 0)
		o->causal = val;
	else if (strcmp(name, "any") == 0)
		o->any = true;
	else if (strcmp(name, "echo") == 0)
		o->echo = true;
	return 0;
}

/* A global option at argv[*i]: 1 taken, 0 not one, < 0 usage error. */
static int ctl_global(int argc, char **argv, int *i, struct ctl_opts *o)
{
	const char *a = argv[*i];

	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return 1;
	}
	if (strncmp(a, "--socket=", 9) == 0) {
		o->socket = a + 9;
		return 1;
	}
	if (strcmp(a, "-s") != 0 && strcmp(a, "--socket") != 0)
		return 0;
	if (*i + 1 >= argc)
		return -1;
	o->socket = argv[++*i];
	return 1;
}

/* One "--flag[=value]" of the command at argv[*i]. */
static int ctl_cmd_flag(const struct ctl_cmd *cmd, int argc, char **argv, int *i,
                        struct ctl_opts *o)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '='), *val = NULL;
	size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	char flag[32];
	bool has_value;

	if (len == 0 || len >= sizeof(flag) || !ctl_flag(cmd, name, len, &has_value))
		return ctl_usage_error(cmd, "unknown option %s", argv[*i]);
	memcpy(flag, name, len);
	flag[len] = '\0';
	if (has_value && eq != NULL)
		val = eq + 1;
	else if (has_value && *i + 1 < argc)
		val = argv[++*i];
	if (has_value != (val != NULL) || (eq != NULL && !has_value))
		return ctl_usage_error(cmd, "bad option %s", argv[*i]);
	if (ctl_set_flag(o, flag, val) < 0)
		return ctl_usage_error(cmd, "bad value for --%s", flag);
	return 0;
}

/* Is word one of the '|'-separated words of set? */
static bool ctl_word_in(const char *word, const char *set)
{
	size_t len = strlen(word);

	for (const char *p = set; p != NULL; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
		if (strncmp(p, word, len) == 0 && (p[len] == '|' || p[len] == '\0'))
			return true;
	return false;
}

/* The arguments after the command words: flags anywhere, "--" ends them. */
static int ctl_parse_args(const struct ctl_cmd *cmd, int argc, char **argv, int i,
                          struct ctl_opts *o)
{
	bool flags = true;
	int r;

	for (; i < argc; i++) {
		if (flags && strcmp(argv[i], "--") == 0) {
			flags = false;
		} else if (flags && (r = ctl_global(argc, argv, &i, o)) != 0) {
			if (r < 0)
				return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		} else if (flags &&
		           (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)) {
			ctl_usage(stdout, cmd);
			exit(CTL_EX_OK);
		} else if (flags && strncmp(argv[i], "--", 2) == 0) {
			if ((r = ctl_cmd_flag(cmd, argc, argv, &i, o)) != 0)
				return r;
		} else if (o->nargs < CTL_MAX_ARGS) {
			o->args[o->nargs++] = argv[i];
		} else {
			return ctl_usage_error(cmd, "too many arguments%s", "");
		}
	}
	if (o->nargs < cmd->min_args || o->nargs > cmd->max_args)
		return ctl_usage_error(cmd, "wrong number of arguments%s", "");
	if (o->nargs > 0 && cmd->first != NULL && !ctl_word_in(o->args[0], cmd->first))
		return ctl_usage_error(cmd, "bad argument %s", o->args[0]);
	return 0;
}

/* The command named at argv[*i] (one or two words); *group is the first
 * entry of that name even when the second word matches none. */
static const struct ctl_cmd *ctl_find(int argc, char **argv, int *i, const struct ctl_cmd **group)
{
	const char *name = argv[*i], *sub = *i + 1 < argc ? argv[*i + 1] : "";

	*group = NULL;
	for (size_t k = 0; k < CTL_NCMDS; k++) {
		if (strcmp(ctl_cmds[k].name, name) != 0)
			continue;
		if (*group == NULL)
			*group = &ctl_cmds[k];
		if (ctl_cmds[k].sub == NULL) {
			*i += 1;
			return &ctl_cmds[k];
		}
		if (strcmp(ctl_cmds[k].sub, sub) == 0) {
			*i += 2;
			return &ctl_cmds[k];
		}
	}
	return NULL;
}

/* ---- main -------------------------------------------------------------- */

static int ctl_connect(const struct ctl_opts *o, partisan_t **c)
{
	const char *env = getenv("PARTISAN_SOCKET");
	const char *path = o->socket != NULL               ? o->socket
	                   : env != NULL && env[0] != '\0' ? env
	                                                   : PARTISAN_DEFAULT_SOCKET;
	partisan_connect_opts_t copts = {.client = "partisanctl"};
	int r = partisan_connect_with(path, &copts, c);

	if (r == 0)
		return 0;
	fprintf(stderr, "partisanctl: cannot connect to partisand at %s: %s\n", path,
	        partisan_strerror(r));
	if (r == PARTISAN_EIO || r == PARTISAN_EPERM || r == PARTISAN_ETIMEDOUT ||
	    r == PARTISAN_ECLOSED)
		return CTL_EX_UNAVAILABLE;
	return CTL_EX_ERR;
}

static int ctl_run(const struct ctl_cmd *cmd, const struct ctl_opts *o)
{
	partisan_t *c = NULL;
	int r;

	if (cmd->flags[0] != '!' && (r = ctl_connect(o, &c)) != 0)
		return r;
	r = cmd->run(c, o);
	if (c != NULL)
		partisan_close(c);
	return r;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = {.timeout_ms = CTL_TIMEOUT};
	const struct ctl_cmd *cmd, *group;
	int i = 1, r;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			ctl_usage(stdout, NULL);
			return CTL_EX_OK;
		}
		if ((r = ctl_global(argc, argv, &i, &o)) <= 0)
			return ctl_usage_error(
			    NULL, r < 0 ? "%s needs a value" : "unknown option %s", argv[i]);
	}
	if (i >= argc)
		return ctl_usage_error(NULL, "no command%s", "");
	if ((cmd = ctl_find(argc, argv, &i, &group)) == NULL)
		return ctl_usage_error(
		    group, group ? "bad subcommand for %s" : "unknown command %s", argv[i]);
	if ((r = ctl_parse_args(cmd, argc, argv, i, &o)) != 0)
		return r;
	if (o.json)
		out = &ctl_json;
	return ctl_run(cmd, &o);
}
