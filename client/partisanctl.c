/* partisanctl.c: the command-line face of partisand, in the manner of
 * bgpctl: a const table maps each command to its arguments, options, help
 * text and a handler; the parser, `help` and the usage lines are all made
 * from it. A handler makes libpartisan-client calls and prints through an
 * output vtable, text (aligned tables) or JSON (jansson; streams print one
 * object per line). Errors go to stderr as "partisanctl: ..." lines, or with
 * --json as one {"error", "code"} object. Exit codes: 0 ok, 1 error, 2
 * usage, 69 daemon not reachable. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "partisan/client.h"

#ifndef PARTISAN_VERSION
#define PARTISAN_VERSION "0.1.0" /* as partisand --version */
#endif

#define CTL_EX_OK          0
#define CTL_EX_ERR         1
#define CTL_EX_USAGE       2
#define CTL_EX_UNAVAILABLE 69
#define CTL_DONE           -1   /* parsing answered (help, --version): exit 0 */
#define CTL_TIMEOUT        5000 /* ms, join and call */
#define CTL_MAX_ARGS       8
#define CTL_CMD_ARGS       3  /* positional arguments a command may name */
#define CTL_CMD_OPTS       6  /* options a command may take */
#define CTL_WIDTH          79 /* help text is wrapped to this */
#define CTL_HELP_COL       24 /* where option and argument help starts */

struct ctl_cmd;

struct ctl_opts {
	const struct ctl_cmd *cmd; /* the command being run */
	const char *socket;        /* -s, or NULL for $PARTISAN_SOCKET / the default */
	bool json;                 /* --json */
	const char *channel;       /* send --channel */
	const char *key;           /* send --key */
	bool ack;                  /* send --ack */
	bool transitive;           /* send/call --transitive */
	const char *causal;        /* send --causal-label */
	const char *status;        /* members --status */
	bool any;                  /* call --any */
	bool alt;                  /* the command's alt option was given */
	bool echo;                 /* listen --echo */
	int timeout_ms;            /* join/call/peer --timeout */
	bool timeout_set;          /* --timeout was given */
	const char *name;          /* peer start --name */
	const char *config;        /* peer start --config */
	bool detached;             /* peer start --detached */
	const char *png, *svg;     /* graph --png / --svg */
	const char *args[CTL_MAX_ARGS];
	int nargs;
};

/* What a positional argument is: how a bad one is named when the library
 * refuses it (see ctl_kind_check). */
enum ctl_kind {
	K_TEXT,   /* anything: a message payload */
	K_NODE,   /* NAME@HOST */
	K_NAME,   /* a registered name */
	K_TOPIC,  /* a broadcast topic */
	K_REF,    /* a reference URI */
	K_TARGET, /* a join contact, NAME@HOST:PORT or HOST:PORT */
	K_CHOICE, /* one of the '|'-separated words of its name */
	K_PEER,   /* a recorded peer's name */
	K_CMD,    /* a command (help) */
};

struct ctl_arg {
	const char *name; /* NODE, or the words of a K_CHOICE ("visible|all") */
	enum ctl_kind kind;
	bool optional;
	const char *help;
};

enum ctl_val {
	V_FLAG, /* takes no value */
	V_STR,  /* a non-empty string */
	V_MS,   /* a positive number of milliseconds */
	V_WORD, /* one of the '|'-separated words of choices */
};

struct ctl_opt {
	const char *name; /* without "--" */
	enum ctl_val val;
	const char *metavar; /* the value in usage lines; NULL for V_FLAG */
	const char *help;
	const char *choices; /* V_WORD: "alive|suspect|down|left" */
};

struct ctl_cmd {
	const char *name;
	const char *sub;                   /* second word (partition inject), or NULL */
	const char *summary;               /* one line, for `help` */
	const char *desc;                  /* what it does, for `help COMMAND` */
	struct ctl_arg args[CTL_CMD_ARGS]; /* up to the first without a name */
	struct ctl_opt opts[CTL_CMD_OPTS]; /* idem */
	const char *alt; /* an option that stands for the first argument (call --any) */
	bool local;      /* runs without a daemon connection (c is NULL) */
	int (*run)(partisan_t *c, const struct ctl_opts *o);
};

/* ---- errors ------------------------------------------------------------ */

static bool ctl_json_errors; /* --json: errors as one JSON object on stderr */

static void ctl_oom(void)
{
	fputs("partisanctl: out of memory\n", stderr);
	exit(CTL_EX_ERR);
}

/* The PARTISAN_E* name of a code, for "code" in JSON errors. */
static const char *ctl_code(int err)
{
	static const char *const names[] = {
	    "PARTISAN_OK",      "PARTISAN_EINVAL",        "PARTISAN_ENOMEM",
	    "PARTISAN_EIO",     "PARTISAN_EPROTO",        "PARTISAN_EVERSION",
	    "PARTISAN_EPERM",   "PARTISAN_EEXIST",        "PARTISAN_ENOENT",
	    "PARTISAN_ENOPROC", "PARTISAN_ENOCONNECTION", "PARTISAN_ETIMEDOUT",
	    "PARTISAN_EAGAIN",  "PARTISAN_EPARTITION",    "PARTISAN_ENOTSUP",
	    "PARTISAN_ECLOSED", "PARTISAN_ETOOBIG",       "PARTISAN_ESTOPPED",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) == 1 - PARTISAN_ESTOPPED,
	               "a name for every PARTISAN_E* code");

	if (err > 0 || (size_t)-err >= sizeof(names) / sizeof(names[0]))
		return "PARTISAN_EUNKNOWN";
	return names[-err];
}

/* {"error": msg, "code": code} on stderr; bytes that are not UTF-8 (from
 * the command line) become '?'. */
static void ctl_json_error(char *msg, const char *code)
{
	json_t *s = json_string(msg), *o;

	for (char *p = msg; s == NULL && *p != '\0'; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	if (s == NULL)
		s = json_string(msg);
	o = json_pack("{s:o, s:s}", "error", s, "code", code);
	if (o == NULL || json_dumpf(o, stderr, JSON_PRESERVE_ORDER) < 0)
		ctl_oom();
	fputc('\n', stderr);
	json_decref(o);
}

static int ctl_verr(int ex, const char *code, const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) < 0)
		ctl_oom();
	if (ctl_json_errors)
		ctl_json_error(msg, code);
	else
		fprintf(stderr, "partisanctl: %s\n", msg);
	free(msg);
	return ex;
}

/* Report an error and return ex, the exit code. code: a PARTISAN_E* name,
 * "usage" or "unavailable". */
static int ctl_err(int ex, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ctl_err(int ex, const char *code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = ctl_verr(ex, code, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- small helpers ----------------------------------------------------- */

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

/* "partition inject": the words of a command. */
static const char *ctl_cmd_name(const struct ctl_cmd *cmd, char *buf, size_t n)
{
	snprintf(buf, n, "%s%s%s", cmd->name, cmd->sub ? " " : "", cmd->sub ? cmd->sub : "");
	return buf;
}

/* The definition of positional argument i as given (after an alt option
 * the first one is left out). */
static const struct ctl_arg *ctl_argdef(const struct ctl_opts *o, int i)
{
	int k = i + (o->alt ? 1 : 0);

	return k < CTL_CMD_ARGS && o->cmd->args[k].name != NULL ? &o->cmd->args[k] : NULL;
}

/* Why s is not what an argument of kind k must be, or NULL when it may be
 * (the library's own checks, for naming what it refused). */
static const char *ctl_kind_check(enum ctl_kind k, const char *s)
{
	const char *at = strchr(s, '@');
	size_t len = strlen(s);
	partisan_ref_t ref;

	switch (k) {
	case K_NODE:
		if (len == 0 || len >= PARTISAN_NODE_MAX || at == NULL || at == s || at[1] == '\0')
			return "expected a node name, NAME@HOST";
		return NULL;
	case K_NAME:
	case K_TOPIC:
		if (len == 0 || len >= PARTISAN_NODE_MAX || (k == K_NAME && strchr(s, ':')))
			return k == K_NAME ? "expected a name of 1 to 255 bytes without \":\""
			                   : "expected a topic of 1 to 255 bytes";
		return NULL;
	case K_REF:
		if (partisan_ref_parse(s, &ref) < 0)
			return "expected a reference, partisan:pid:NODE:ID, "
			       "partisan:name:NODE:NAME "
			       "or partisan:ref:NODE:ID";
		return NULL;
	case K_TARGET: /* the one argument of join: what it refused */
		return "expected NAME@HOST:PORT or HOST:PORT";
	case K_PEER:
		return "expected a peer name (letters, digits, \"_.-\", at most 64, not starting "
		       "with \".\" or \"-\")";
	default:
		return NULL;
	}
}

/* EINVAL without the daemon's words: the library refused an argument
 * itself. Name the first one that does not look right. */
static int ctl_fail_einval(const struct ctl_opts *o, const char *what)
{
	for (int i = 0; i < o->nargs; i++) {
		const struct ctl_arg *a = ctl_argdef(o, i);
		const char *why = a != NULL ? ctl_kind_check(a->kind, o->args[i]) : NULL;

		if (why == NULL)
			continue;
		if (strchr(a->name, '|') != NULL) /* NAME@HOST:PORT|HOST:PORT: why says it */
			return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EINVAL), "%s: %s, got \"%s\"",
			               what, why, o->args[i]);
		return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EINVAL), "%s: %s: %s, got \"%s\"",
		               what, a->name, why, o->args[i]);
	}
	return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EINVAL), "%s: %s", what,
	               partisan_strerror(PARTISAN_EINVAL));
}

/* "partisanctl: what: error[: daemon's detail]", or "what: detail" when
 * the detail names the error itself; returns 1 for exit. */
static int ctl_fail(partisan_t *c, const struct ctl_opts *o, int err)
{
	const char *detail = c != NULL ? partisan_last_error(c) : NULL;
	const char *code = ctl_code(err);
	char what[64];

	ctl_cmd_name(o->cmd, what, sizeof(what));
	if (err == PARTISAN_EINVAL && (detail == NULL || detail[0] == '\0'))
		return ctl_fail_einval(o, what);
	if (detail != NULL && strstr(detail, partisan_strerror(err)) != NULL)
		return ctl_err(CTL_EX_ERR, code, "%s: %s", what, detail); /* says it already */
	if (detail != NULL && detail[0] != '\0')
		return ctl_err(CTL_EX_ERR, code, "%s: %s: %s", what, partisan_strerror(err),
		               detail);
	return ctl_err(CTL_EX_ERR, code, "%s: %s", what, partisan_strerror(err));
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
	struct tbl t = {.ncols = 5};

	tbl_row(&t, "NODE", "CHANNEL", "CONNECTED", "WANTED", "PEER");
	for (size_t i = 0; i < l->n; i++) {
		const partisan_conn_t *c = &l->v[i];
		char con[16], want[16], peer[300];

		snprintf(con, sizeof(con), "%u", c->connected);
		snprintf(want, sizeof(want), "%u", c->wanted);
		snprintf(peer, sizeof(peer), "%s%s%s", c->transport ? c->transport : "-",
		         c->peer_subject ? " " : "", c->peer_subject ? c->peer_subject : "");
		tbl_row(&t, c->node, c->channel, con, want, peer);
	}
	tbl_print(&t);
}

/* What the daemon counted (partisan_counters_t, also on /metrics). */
static void text_counters(const partisan_counters_t *k)
{
	text_kv("bytes:", "%llu in, %llu out", (unsigned long long)k->bytes_in,
	        (unsigned long long)k->bytes_out);
	text_kv("retransmits:", "%llu", (unsigned long long)k->retransmits);
	text_kv("shed:", "%llu", (unsigned long long)k->dropped_monotonic);
	text_kv("bad frames:", "%llu", (unsigned long long)k->peer_frames_bad);
	text_kv("links:", "%llu opened, %llu failed", (unsigned long long)k->connections_opened,
	        (unsigned long long)k->connections_failed);
	text_kv("detector:", "%llu timeouts, %llu silent, %llu suspicions",
	        (unsigned long long)k->fd_timeouts, (unsigned long long)k->fd_silent,
	        (unsigned long long)k->fd_suspicions);
}

static void text_status(const partisan_status_t *s, const partisan_conn_list_t *conns)
{
	text_spec(&s->spec);
	text_kv("manager:", "%s", s->manager);
	if (s->cluster[0] != '\0')
		text_kv("cluster:", "%s", s->cluster);
	if (s->security[0] != '\0')
		text_kv("security:", "%s", s->security);
	text_kv("uptime:", "%llus", (unsigned long long)s->uptime_s);
	text_kv("members:", "%u", s->members);
	text_kv("nodes:", "%u", s->nodes);
	text_kv("sessions:", "%u", s->sessions);
	text_kv("messages:", "%llu in, %llu out", (unsigned long long)s->messages_in,
	        (unsigned long long)s->messages_out);
	text_kv("dropped:", "%llu", (unsigned long long)s->dropped_no_proc);
	text_kv("acks pending:", "%llu", (unsigned long long)s->outstanding_acks);
	text_kv("partitions:", "%u", s->partitions);
	text_counters(&s->counters);
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
	struct tbl t = {.ncols = 4};

	tbl_row(&t, "NAME", "STATUS", "LISTEN", "CHANNELS");
	for (size_t i = 0; i < l->n; i++) {
		char *addrs = ctl_addrs_text(&l->v[i]), *chans = ctl_channels_text(&l->v[i]);

		tbl_row(&t, l->v[i].name, l->v[i].status ? l->v[i].status : "-", addrs, chans);
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
	if (s->status != NULL) { /* members */
		json_put(o, "status", json_str(s->status));
		json_put(o, "since_ms", json_integer((json_int_t)s->since_ms));
	}
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
		json_push(a,
		          json_pack("{s:s, s:s, s:i, s:i, s:s?, s:s?}", "node", l->v[i].node,
		                    "channel", l->v[i].channel, "connected", (int)l->v[i].connected,
		                    "wanted", (int)l->v[i].wanted, "transport", l->v[i].transport,
		                    "peer_subject", l->v[i].peer_subject));
	return a;
}

static void json_connections(const partisan_conn_list_t *l)
{
	json_emit(json_pack("{s:o}", "connections", json_conn_array(l)), false);
}

static json_t *json_counters(const partisan_counters_t *k)
{
	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "bytes_in",
	    (json_int_t)k->bytes_in, "bytes_out", (json_int_t)k->bytes_out, "retransmits",
	    (json_int_t)k->retransmits, "dropped_no_proc", (json_int_t)k->dropped_no_proc,
	    "dropped_monotonic", (json_int_t)k->dropped_monotonic, "peer_frames_bad",
	    (json_int_t)k->peer_frames_bad, "connections_opened", (json_int_t)k->connections_opened,
	    "connections_failed", (json_int_t)k->connections_failed, "fd_timeouts",
	    (json_int_t)k->fd_timeouts, "fd_silent", (json_int_t)k->fd_silent, "fd_suspicions",
	    (json_int_t)k->fd_suspicions, "messages_in", (json_int_t)k->messages_in, "messages_out",
	    (json_int_t)k->messages_out);
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
	json_put(o, "security", json_str(s->security));
	json_put(o, "dropped", json_integer((json_int_t)s->dropped_no_proc));
	json_put(o, "outstanding_acks", json_integer((json_int_t)s->outstanding_acks));
	json_put(o, "active_view", json_strlist(&s->active_view));
	json_put(o, "passive_view", json_strlist(&s->passive_view));
	json_put(o, "sessions", json_integer(s->sessions));
	json_put(o, "messages_in", json_integer((json_int_t)s->messages_in));
	json_put(o, "messages_out", json_integer((json_int_t)s->messages_out));
	json_put(o, "partitions", json_integer(s->partitions));
	json_put(o, "counters", json_counters(&s->counters));
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
		return ctl_err(CTL_EX_ERR, ctl_code(r), "%s: connection to partisand lost",
		               o->cmd->name);
	}
	return ctl_fail(c, o, r);
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
		return ctl_fail(c, o, r);
	r = partisan_connections(c, NULL, &conns); /* leaves conns empty on failure */
	if (r < 0 && r != PARTISAN_ENOTSUP) {
		partisan_status_free(s);
		return ctl_fail(c, o, r);
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
		return ctl_fail(c, o, r);
	out->spec(s);
	partisan_node_spec_free(s);
	return CTL_EX_OK;
}

static int cmd_members(partisan_t *c, const struct ctl_opts *o)
{
	partisan_spec_list_t l;
	int r = partisan_members_status(c, o->status, &l);

	if (r < 0)
		return ctl_fail(c, o, r);
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
		return ctl_fail(c, o, r);
	out->nodes(&l);
	partisan_strlist_free(&l);
	return CTL_EX_OK;
}

static int cmd_connections(partisan_t *c, const struct ctl_opts *o)
{
	partisan_conn_list_t l;
	int r = partisan_connections(c, o->nargs > 0 ? o->args[0] : NULL, &l);

	if (r < 0)
		return ctl_fail(c, o, r);
	out->connections(&l);
	partisan_conn_list_free(&l);
	return CTL_EX_OK;
}

static int cmd_join(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_join(c, o->args[0], o->timeout_ms);
	char *msg;

	if (r < 0)
		return ctl_fail(c, o, r);
	msg = ctl_printf("joined %s", o->args[0]);
	out->done(msg);
	free(msg);
	return CTL_EX_OK;
}

static int cmd_leave(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_leave(c, o->nargs > 0 ? o->args[0] : NULL);

	if (r < 0)
		return ctl_fail(c, o, r);
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
		return ctl_fail(c, o, r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_call(partisan_t *c, const struct ctl_opts *o)
{
	partisan_send_opts_t so = {.transitive = o->transitive};
	partisan_buf_t reply;
	int r;

	/* call NODE NAME MESSAGE, or call --any NAME MESSAGE (the parser checked) */
	if (o->any)
		r = partisan_call_name_opts(c, NULL, o->args[0], o->args[1], strlen(o->args[1]),
		                            o->timeout_ms, &so, &reply);
	else
		r = partisan_call_name_opts(c, o->args[0], o->args[1], o->args[2],
		                            strlen(o->args[2]), o->timeout_ms, &so, &reply);
	if (r < 0)
		return ctl_fail(c, o, r);
	out->reply(reply.data != NULL ? reply.data : "", reply.len);
	partisan_buf_free(&reply);
	return CTL_EX_OK;
}

static int cmd_listen(partisan_t *c, const struct ctl_opts *o)
{
	char self[PARTISAN_REF_MAX];
	int r = partisan_register(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, o, r);
	if (partisan_self(c, self, sizeof(self)) == 0)
		fprintf(stderr, "partisanctl: listening on %s as %s\n", o->args[0], self);
	return ctl_stream(c, o, ctl_on_message);
}

static int cmd_monitor_nodes(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_monitor_nodes(c, true, PARTISAN_NODEDOWN_REASON);

	if (r < 0)
		return ctl_fail(c, o, r);
	return ctl_stream(c, o, ctl_on_node);
}

static int cmd_monitor(partisan_t *c, const struct ctl_opts *o)
{
	char mref[PARTISAN_REF_MAX];
	int r = partisan_monitor(c, o->args[0], mref, sizeof(mref));

	if (r < 0)
		return ctl_fail(c, o, r);
	fprintf(stderr, "partisanctl: monitoring %s as %s\n", o->args[0], mref);
	return ctl_stream(c, o, ctl_on_down);
}

static int cmd_broadcast(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_broadcast(c, o->args[0], o->args[1], strlen(o->args[1]));

	if (r < 0)
		return ctl_fail(c, o, r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_subscribe(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_subscribe(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, o, r);
	return ctl_stream(c, o, ctl_on_broadcast);
}

static int cmd_registry(partisan_t *c, const struct ctl_opts *o)
{
	partisan_registry_t reg;
	int r = partisan_registry(c, o->nargs > 0 ? o->args[0] : NULL, &reg);

	if (r < 0)
		return ctl_fail(c, o, r);
	out->registry(&reg);
	partisan_registry_free(&reg);
	return CTL_EX_OK;
}

/* ---- graph: the cluster as Graphviz DOT ------------------------------- */

static const char *ctl_status_colour(const char *status)
{
	if (status == NULL)
		return "gray";
	if (strcmp(status, "alive") == 0)
		return "palegreen";
	if (strcmp(status, "suspect") == 0)
		return "gold";
	return strcmp(status, "down") == 0 ? "tomato" : "lightgray";
}

/* Was the link a-b drawn already (reported by its other end)? */
static bool ctl_edge_seen(const partisan_graph_t *g, size_t upto, const partisan_graph_edge_t *e)
{
	for (size_t i = 0; i < upto; i++) {
		const partisan_graph_edge_t *x = &g->edges[i];

		if (x->passive == e->passive &&
		    ((strcmp(x->from, e->from) == 0 && strcmp(x->to, e->to) == 0) ||
		     (strcmp(x->from, e->to) == 0 && strcmp(x->to, e->from) == 0)))
			return true;
	}
	return false;
}

static void ctl_dot_edge(FILE *f, const partisan_graph_edge_t *e)
{
	fprintf(f, "  \"%s\" -> \"%s\"", e->from, e->to);
	if (e->passive) {
		fputs(" [style=dashed, color=gray, dir=forward]\n", f);
		return;
	}
	fputs(" [dir=none, label=\"", f);
	for (size_t i = 0; i < e->n_channels; i++)
		fprintf(f, "%s%s %u", i ? "\\n" : "", e->channels[i].channel,
		        e->channels[i].connected);
	fputs("\"]\n", f);
}

/* Links solid (labelled with each channel's open connections), passive
 * view entries dashed arrows; nodes filled by status. */
static void ctl_dot(FILE *f, const partisan_graph_t *g)
{
	fputs("digraph partisan {\n  node [shape=box, style=filled, fontname=\"Helvetica\"];\n"
	      "  edge [fontsize=9];\n",
	      f);
	for (size_t i = 0; i < g->n_nodes; i++)
		fprintf(f, "  \"%s\" [fillcolor=%s, tooltip=\"%s\"];\n", g->nodes[i].name,
		        ctl_status_colour(g->nodes[i].status),
		        g->nodes[i].status ? g->nodes[i].status : "unknown");
	for (size_t i = 0; i < g->n_edges; i++)
		if (!ctl_edge_seen(g, i, &g->edges[i]))
			ctl_dot_edge(f, &g->edges[i]);
	fputs("}\n", f);
}

static int ctl_render(const partisan_graph_t *g, const char *format, const char *file)
{
	char *cmd = ctl_printf("dot -T%s -o '%s'", format, file);
	FILE *p;
	int st;

	if (strchr(file, '\'') != NULL) {
		free(cmd);
		return ctl_err(CTL_EX_USAGE, "usage", "graph: %s: a file name with a quote", file);
	}
	p = popen(cmd, "w");
	free(cmd);
	if (p == NULL)
		return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EIO), "graph: cannot run dot");
	ctl_dot(p, g);
	st = pclose(p);
	if (st != 0)
		return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EIO),
		               "graph: dot failed (is graphviz installed?)");
	return CTL_EX_OK;
}

static int cmd_graph(partisan_t *c, const struct ctl_opts *o)
{
	partisan_graph_t g;
	int r = partisan_graph(c, &g), rc = CTL_EX_OK;

	if (r < 0)
		return ctl_fail(c, o, r);
	if (o->png)
		rc = ctl_render(&g, "png", o->png);
	else if (o->svg)
		rc = ctl_render(&g, "svg", o->svg);
	else
		ctl_dot(stdout, &g);
	partisan_graph_free(&g);
	return rc;
}

static int cmd_partition_inject(partisan_t *c, const struct ctl_opts *o)
{
	char ref[PARTISAN_REF_MAX];
	int r = partisan_partition_inject(c, o->args[0], ref, sizeof(ref));

	if (r < 0)
		return ctl_fail(c, o, r);
	out->ref(ref);
	return CTL_EX_OK;
}

static int cmd_partition_resolve(partisan_t *c, const struct ctl_opts *o)
{
	int r = partisan_partition_resolve(c, o->args[0]);

	if (r < 0)
		return ctl_fail(c, o, r);
	out->done(NULL);
	return CTL_EX_OK;
}

static int cmd_partition_list(partisan_t *c, const struct ctl_opts *o)
{
	partisan_partition_list_t l;
	int r = partisan_partition_list(c, &l);

	(void)o;
	if (r < 0)
		return ctl_fail(c, o, r);
	out->partitions(&l);
	partisan_partition_list_free(&l);
	return CTL_EX_OK;
}

/* ---- peer: extra daemons on this host (client/spawn.c) ----------------- */

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
static int ctl_peer_foreground(partisan_peer_t *p, const sigset_t *set, const struct ctl_opts *o)
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
			r = partisan_peer_exit_status(p);
			partisan_peer_stop(p, PARTISAN_PEER_STOP_KILL);
			return ctl_err(CTL_EX_ERR, ctl_code(PARTISAN_EIO),
			               "peer %s went down (exit status %d)", name, r);
		}
	}
	if ((r = partisan_peer_stop(p, PARTISAN_PEER_STOP_GRACEFUL)) < 0)
		return ctl_fail(NULL, o, r);
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
		return ctl_err(CTL_EX_ERR, ctl_code(r), "peer start: %s%s%s", partisan_strerror(r),
		               err[0] ? ": " : "", err);
	}
	ctl_peer_print(p, o->json, o->detached);
	if (!o->detached)
		return ctl_peer_foreground(p, &set, o);
	partisan_peer_release(p);
	return CTL_EX_OK;
}

static int cmd_peer_stop(partisan_t *c, const struct ctl_opts *o)
{
	char msg[PARTISAN_NODE_MAX + 32];
	int r = partisan_peer_stop_name(o->args[0], PARTISAN_PEER_STOP_GRACEFUL, o->timeout_ms);

	(void)c;
	if (r == PARTISAN_ENOENT)
		return ctl_err(CTL_EX_ERR, ctl_code(r), "peer stop: no recorded peer named \"%s\"",
		               o->args[0]);
	if (r < 0)
		return ctl_fail(NULL, o, r);
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
		return ctl_fail(NULL, o, r);
	if (o->json)
		ctl_peer_json(&l);
	else
		ctl_peer_table(&l);
	partisan_peer_list_free(&l);
	return CTL_EX_OK;
}

static int cmd_help(partisan_t *c, const struct ctl_opts *o);

/* Arguments and options that several commands share. */
#define ARG_NODE(help)                                                                             \
	{                                                                                          \
		"NODE", K_NODE, false, help                                                        \
	}
#define OPT_TIMEOUT(help)                                                                          \
	{                                                                                          \
		"timeout", V_MS, "MS", help                                                        \
	}
#define OPT_TRANSITIVE(help)                                                                       \
	{                                                                                          \
		"transitive", V_FLAG, NULL, help                                                   \
	}

/* The command table: `help`, the usage lines, the parser and the man page
 * (partisanctl.8, kept in step by tests/integration/test_cli.py) follow it. */
static const struct ctl_cmd ctl_cmds[] = {
    {
        .name = "status",
        .summary = "this node's name, spec, manager, counters and connections",
        .desc = "Print this node's name and spec, its peer service manager, cluster name, "
                "uptime, the number of members, connected nodes and sessions, message "
                "counters, pending acknowledgements, injected partitions, the counters it "
                "also serves on /metrics (bytes, retransmits, shed messages, bad frames, "
                "links opened and failed, failure detector verdicts), the HyParView "
                "active and passive views (when there are any), the local endpoints with "
                "their registered names, and the connections per node and channel.",
        .run = cmd_status,
    },
    {
        .name = "spec",
        .summary = "this node's spec, what another node joins with",
        .desc = "Print this node's spec: its name, the addresses it listens on (with the "
                "ports actually bound), its channels with their parallelism, and the "
                "default parallelism. This is what another node joins with.",
        .run = cmd_spec,
    },
    {
        .name = "members",
        .summary = "the cluster membership as this node sees it",
        .desc = "Print the cluster membership as this node sees it, this node included "
                "(as Partisan's members()), with each member's status (alive, suspect, "
                "down), listen addresses and channels. Under client_server a client's "
                "members are the servers and itself.",
        .opts = {{"status", V_WORD, "S",
                  "only the members in status S: alive, suspect or down; left: the nodes "
                  "seen leaving the cluster (members no more)",
                  "alive|suspect|down|left"}},
        .run = cmd_members,
    },
    {
        .name = "nodes",
        .summary = "the nodes connected now",
        .desc = "Print the nodes this node is connected to now, never this node itself "
                "(as erlang:nodes()).",
        .args = {{"visible|all", K_CHOICE, true,
                  "visible (the default): the connected nodes; all: the known members "
                  "too, connected or not"}},
        .run = cmd_nodes,
    },
    {
        .name = "connections",
        .summary = "connections open and wanted, per node and channel",
        .desc = "For each node and channel, print the number of connections open and the "
                "number wanted (the channel's parallelism).",
        .args = {{"NODE", K_NODE, true, "only the connections to this node, NAME@HOST"}},
        .run = cmd_connections,
    },
    {
        .name = "join",
        .summary = "join the cluster through a node",
        .desc = "Join the cluster through the node at that address, and wait until every channel "
                "to it is connected (sync_join). A contact that does not answer (not listening "
                "yet, busy, stopped) is dialled again with backoff until the timeout; one that "
                "refuses fails at once.",
        .args = {{"NAME@HOST:PORT|HOST:PORT", K_TARGET, false,
                  "the contact: a node's name and peer address, or only the address"}},
        .opts = {OPT_TIMEOUT(
            "how long to try the contact and wait for the connection (default 5000)")},
        .run = cmd_join,
    },
    {
        .name = "leave",
        .summary = "remove a node, or this node, from the cluster",
        .desc = "Remove NODE from the cluster, or this node when NODE is not given.",
        .args = {{"NODE", K_NODE, true, "the node to remove, NAME@HOST (default: this node)"}},
        .run = cmd_leave,
    },
    {
        .name = "send",
        .summary = "send one message to a named endpoint",
        .desc = "Send MESSAGE to the endpoint registered as NAME on NODE, then wait until the "
                "local daemon has handled the request, so that an error it finds (node not "
                "connected, injected partition, no such endpoint here) is reported. As with "
                "Erlang's send, success does not mean the message was delivered.",
        .args = {ARG_NODE("the node the endpoint is on, NAME@HOST"),
                 {"NAME", K_NAME, false, "the name the endpoint registered"},
                 {"MESSAGE", K_TEXT, false, "the payload, sent as given"}},
        .opts = {{"channel", V_STR, "C",
                  "send on channel C (default: the default channel; a channel that is not "
                  "connected falls back to the default one)"},
                 {"ack", V_FLAG, NULL,
                  "retransmit until the other daemon acknowledges it: delivered exactly "
                  "once while both daemons live"},
                 {"key", V_STR, "K",
                  "partition key: messages with the same key take the same connection, so "
                  "they keep their order"},
                 OPT_TRANSITIVE("route through the overlay when this node has no link to "
                                "NODE (a HyParView non-neighbour, a client_server client "
                                "reaching another client through a server)"),
                 {"causal-label", V_STR, "L",
                  "deliver in causal order with the other messages of label L"}},
        .run = cmd_send,
    },
    {
        .name = "call",
        .summary = "request/reply with a named endpoint; prints the reply",
        .desc = "Call the endpoint registered as NAME on NODE with MESSAGE and print its "
                "reply, with gen_server:call semantics: it fails at once with \"no such "
                "endpoint\" or \"node not connected\", and with \"timed out\" when no reply "
                "comes in time. With --any the call goes to a holder of NAME anywhere in "
                "the cluster (from the registry), this node first, and NODE is not given.",
        .args = {ARG_NODE("the node the endpoint is on, NAME@HOST"),
                 {"NAME", K_NAME, false, "the name the endpoint registered"},
                 {"MESSAGE", K_TEXT, false, "the request payload, sent as given"}},
        .opts = {OPT_TIMEOUT("how long to wait for the reply (default 5000)"),
                 OPT_TRANSITIVE("the call and its reply go through the overlay where "
                                "there is no direct link to the node"),
                 {"any", V_FLAG, NULL,
                  "call a holder of NAME anywhere in the cluster, this node first"}},
        .alt = "any",
        .run = cmd_call,
    },
    {
        .name = "listen",
        .summary = "register a name and print each message it receives (stream)",
        .desc = "Register NAME for this session's endpoint, here and in the cluster "
                "registry, and print each message it receives, one per line (\"FROM: "
                "MESSAGE\"; with --json an object with from, message and, for a call, "
                "call_ref), until interrupted.",
        .args = {{"NAME", K_NAME, false, "the name to register"}},
        .opts = {{"echo", V_FLAG, NULL, "answer every call with its own payload"}},
        .run = cmd_listen,
    },
    {
        .name = "monitor-nodes",
        .summary = "print nodeup and nodedown events (stream)",
        .desc = "Print a line for every nodeup and nodedown event (nodedown with its "
                "reason), until interrupted.",
        .run = cmd_monitor_nodes,
    },
    {
        .name = "monitor",
        .summary = "wait for an endpoint's DOWN and print it",
        .desc = "Monitor an endpoint and wait for its DOWN event, printed with its "
                "reason: normal (its session closed), killed (its program died), noproc "
                "(it did not exist) or noconnection (the link to its node was lost).",
        .args = {{"REF", K_REF, false,
                  "the endpoint, partisan:pid:NODE:ID or partisan:name:NODE:NAME"}},
        .run = cmd_monitor,
    },
    {
        .name = "broadcast",
        .summary = "deliver a message to every subscriber of a topic",
        .desc = "Deliver MESSAGE to every subscriber of TOPIC on every node, at least once "
                "(Plumtree broadcast).",
        .args = {{"TOPIC", K_TOPIC, false, "the topic"},
                 {"MESSAGE", K_TEXT, false, "the payload, sent as given"}},
        .run = cmd_broadcast,
    },
    {
        .name = "subscribe",
        .summary = "print the broadcasts on a topic (stream)",
        .desc = "Subscribe to TOPIC and print every broadcast on it as it arrives "
                "(\"FROM: MESSAGE\", with --json an object with from, message and topic), "
                "until interrupted.",
        .args = {{"TOPIC", K_TOPIC, false, "the topic"}},
        .run = cmd_subscribe,
    },
    {
        .name = "registry",
        .summary = "the distributed name registry",
        .desc = "Print the distributed name registry: every registered name, or only NAME, "
                "with the endpoints holding it and their nodes.",
        .args = {{"NAME", K_NAME, true, "only this name"}},
        .run = cmd_registry,
    },
    {
        .name = "graph",
        .summary = "the cluster as Graphviz DOT",
        .desc = "Print the cluster as a Graphviz DOT graph: members filled by status (green "
                "alive, yellow suspect, red down, gray left), links as solid lines labelled "
                "with each channel's open connections, and for hyparview each node's passive "
                "view as dashed arrows. The links are this node's and those of every node it "
                "is linked to (a partial view shows its neighbourhood). With --png or --svg, "
                "render it to FILE with dot (graphviz).",
        .opts = {{"png", V_STR, "FILE", "render to FILE as PNG with dot"},
                 {"svg", V_STR, "FILE", "render to FILE as SVG with dot"}},
        .run = cmd_graph,
    },
    {
        .name = "partition",
        .sub = "inject",
        .summary = "cut this node off from a node (fault injection)",
        .desc = "Fault injection: treat NODE as unreachable from this node (messages to "
                "and from it are refused, its connections dropped) until the partition is "
                "resolved. Prints the partition's reference.",
        .args = {ARG_NODE("the node to cut off, NAME@HOST")},
        .run = cmd_partition_inject,
    },
    {
        .name = "partition",
        .sub = "resolve",
        .summary = "heal an injected partition",
        .desc = "Heal the injected partition REF.",
        .args = {{"REF", K_REF, false,
                  "the partition's reference, as partition inject or partition list "
                  "print it"}},
        .run = cmd_partition_resolve,
    },
    {
        .name = "partition",
        .sub = "list",
        .summary = "the partitions injected on this node",
        .desc = "Print the partitions injected on this node, each with its reference and "
                "node.",
        .run = cmd_partition_list,
    },
    {
        .name = "peer",
        .sub = "start",
        .summary = "start an extra partisand on this host",
        .desc = "Start an extra partisand on this host, as Erlang's peer module starts a "
                "node: it listens on 127.0.0.1 at a port the kernel picks, with its socket "
                "in a new private directory, and its name, node, socket, port, pid and log "
                "are printed once it answers. Without --detached partisanctl stays in the "
                "foreground and stops the peer on SIGINT, SIGTERM or SIGHUP (exit 0), or "
                "exits 1 when the peer goes down by itself. No daemon connection is needed.",
        .opts = {{"name", V_STR, "N", "its name, a short name or NAME@HOST (default: peer-N-PID)"},
                 {"config", V_STR, "F", "its configuration file, passed to it as -c F"},
                 {"detached", V_FLAG, NULL,
                  "let it outlive partisanctl, recorded so that peer list and peer stop "
                  "find it"},
                 OPT_TIMEOUT("how long to wait for it to answer on its socket (default "
                             "10000)")},
        .local = true,
        .run = cmd_peer_start,
    },
    {
        .name = "peer",
        .sub = "stop",
        .summary = "stop a detached peer",
        .desc = "Stop the recorded (detached) peer NAME: SIGTERM, then SIGKILL when it has "
                "not exited in time; then remove its record, socket and private directory.",
        .args = {{"NAME", K_PEER, false, "the peer's name, as peer list prints it"}},
        .opts = {OPT_TIMEOUT("how long to wait after SIGTERM before SIGKILL (default "
                             "5000)")},
        .local = true,
        .run = cmd_peer_stop,
    },
    {
        .name = "peer",
        .sub = "list",
        .summary = "the detached peers on this host",
        .desc = "Print the recorded (detached) peers with their node, pid, port, state "
                "(running or down) and socket.",
        .local = true,
        .run = cmd_peer_list,
    },
    {
        .name = "help",
        .summary = "describe the commands, or one command",
        .desc = "Without an argument, list every command with a line on what it does. "
                "With one, describe that command, its arguments and its options, as "
                "\"partisanctl COMMAND --help\" does.",
        .args = {{"COMMAND", K_CMD, true, "a command"},
                 {"SUBCOMMAND", K_CMD, true, "the second word of partition and peer"}},
        .local = true,
        .run = cmd_help,
    },
};

#define CTL_NCMDS (sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

/* The global options, for `help`. */
static const struct {
	const char *label, *help;
} ctl_globals[] = {
    {"-s, --socket SOCKET",
     "the daemon's IPC socket (default: $PARTISAN_SOCKET, else " PARTISAN_DEFAULT_SOCKET ")"},
    {"--json", "print one JSON document (streams: one object per line); errors as one "
               "{\"error\", \"code\"} object on stderr"},
    {"-h, --help", "this list; \"partisanctl help COMMAND\" describes one command"},
    {"--version", "print partisanctl's version"},
};

/* ---- help -------------------------------------------------------------- */

/* Print s wrapped to CTL_WIDTH, continuation lines indented by indent; col
 * is where the cursor is. '\1' is a space that does not break. */
static void ctl_wrap(FILE *f, const char *s, int indent, int col)
{
	bool first = true;

	while (*s != '\0') {
		int n = (int)strcspn(s, " ");

		if (!first && col + 1 + n > CTL_WIDTH) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (!first) {
			fputc(' ', f);
			col++;
		}
		for (int k = 0; k < n; k++)
			fputc(s[k] == '\1' ? ' ' : s[k], f);
		col += n;
		first = false;
		s += n;
		s += strspn(s, " ");
	}
	fputc('\n', f);
}

/* A label in the first column and its help wrapped in the second. */
static void ctl_help_row(FILE *f, const char *label, const char *help)
{
	int col = fprintf(f, "  %s", label);

	if (col + 2 > CTL_HELP_COL) {
		fputc('\n', f);
		col = 0;
	}
	fprintf(f, "%*s", CTL_HELP_COL - col, "");
	ctl_wrap(f, help, CTL_HELP_COL, CTL_HELP_COL);
}

static bool ctl_is_alt(const struct ctl_cmd *cmd, const struct ctl_opt *opt)
{
	return cmd->alt != NULL && strcmp(cmd->alt, opt->name) == 0;
}

/* Append to the string *s (malloc'ed). */
static void ctl_append(char **s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ctl_append(char **s, const char *fmt, ...)
{
	va_list ap;
	char *more, *t;

	va_start(ap, fmt);
	if (vasprintf(&more, fmt, ap) < 0)
		ctl_oom();
	va_end(ap);
	t = ctl_printf("%s%s", *s, more);
	free(*s);
	free(more);
	*s = t;
}

/* "NODE NAME MESSAGE [--channel\1C] ...", or the alt form ("--any NAME
 * MESSAGE ..."); free it. */
static char *ctl_usage_text(const struct ctl_cmd *cmd, bool alt)
{
	char *s = ctl_strdup("");

	if (alt)
		ctl_append(&s, " --%s", cmd->alt);
	for (int i = alt ? 1 : 0; i < CTL_CMD_ARGS && cmd->args[i].name != NULL; i++)
		ctl_append(&s, cmd->args[i].optional ? " [%s]" : " %s", cmd->args[i].name);
	for (int i = 0; i < CTL_CMD_OPTS && cmd->opts[i].name != NULL; i++) {
		const struct ctl_opt *p = &cmd->opts[i];

		if (ctl_is_alt(cmd, p))
			continue;
		if (p->metavar != NULL)
			ctl_append(&s, " [--%s\1%s]", p->name, p->metavar);
		else
			ctl_append(&s, " [--%s]", p->name);
	}
	return s;
}

/* "usage: partisanctl CMD ..." (lead "usage: " or its width in spaces). */
static void ctl_usage_lines(FILE *f, const struct ctl_cmd *cmd, const char *lead)
{
	char name[64];

	ctl_cmd_name(cmd, name, sizeof(name));
	for (int alt = 0; alt <= (cmd->alt != NULL); alt++) {
		char *u = ctl_usage_text(cmd, alt);
		int col = fprintf(f, "%spartisanctl %s", alt ? "       " : lead, name);

		if (u[0] != '\0')
			fputc(' ', f);
		ctl_wrap(f, u + (u[0] != '\0'), col + 1, col + 1);
		free(u);
	}
}

static void ctl_help_cmd(FILE *f, const struct ctl_cmd *cmd)
{
	ctl_usage_lines(f, cmd, "usage: ");
	fputc('\n', f);
	ctl_wrap(f, cmd->desc, 0, 0);
	if (cmd->args[0].name != NULL)
		fputs("\narguments:\n", f);
	for (int i = 0; i < CTL_CMD_ARGS && cmd->args[i].name != NULL; i++)
		ctl_help_row(f, cmd->args[i].name, cmd->args[i].help);
	if (cmd->opts[0].name != NULL)
		fputs("\noptions:\n", f);
	for (int i = 0; i < CTL_CMD_OPTS && cmd->opts[i].name != NULL; i++) {
		const struct ctl_opt *p = &cmd->opts[i];
		char *label = ctl_printf("--%s%s%s", p->name, p->metavar ? " " : "",
		                         p->metavar ? p->metavar : "");

		ctl_help_row(f, label, p->help);
		free(label);
	}
	fputs("\nglobal options: -s SOCKET, --json (see \"partisanctl help\").\n", f);
	if (cmd->local)
		fputs("It needs no daemon.\n", f);
}

/* The commands named name (one, or a group such as partition). */
static void ctl_help_group(FILE *f, const char *name)
{
	const char *lead = "usage: ";

	for (size_t i = 0; i < CTL_NCMDS; i++)
		if (strcmp(ctl_cmds[i].name, name) == 0) {
			ctl_usage_lines(f, &ctl_cmds[i], lead);
			lead = "       ";
		}
	fputc('\n', f);
	for (size_t i = 0; i < CTL_NCMDS; i++) {
		char words[64];

		if (strcmp(ctl_cmds[i].name, name) == 0)
			ctl_help_row(f, ctl_cmd_name(&ctl_cmds[i], words, sizeof(words)),
			             ctl_cmds[i].summary);
	}
	fprintf(f, "\n\"partisanctl help %s SUBCOMMAND\" describes one of them.\n", name);
}

static void ctl_help_all(FILE *f)
{
	fputs("usage: partisanctl [-s SOCKET] [--json] COMMAND [ARGS]\n\n"
	      "Control and use the partisand of this host through its IPC socket.\n\n"
	      "commands:\n",
	      f);
	for (size_t i = 0; i < CTL_NCMDS; i++) {
		char words[64];

		ctl_help_row(f, ctl_cmd_name(&ctl_cmds[i], words, sizeof(words)),
		             ctl_cmds[i].summary);
	}
	fputs("\nglobal options:\n", f);
	for (size_t i = 0; i < sizeof(ctl_globals) / sizeof(ctl_globals[0]); i++)
		ctl_help_row(f, ctl_globals[i].label, ctl_globals[i].help);
	fputs("\n\"partisanctl help COMMAND\" or \"partisanctl COMMAND --help\" describes a "
	      "command.\nExit status: 0 ok, 1 error, 2 usage error, 69 daemon not reachable.\n",
	      f);
}

/* The command named name [sub]; *group: whether any command is named name. */
static const struct ctl_cmd *ctl_lookup(const char *name, const char *sub, bool *group)
{
	*group = false;
	for (size_t k = 0; k < CTL_NCMDS; k++) {
		if (strcmp(ctl_cmds[k].name, name) != 0)
			continue;
		*group = true;
		if (ctl_cmds[k].sub == NULL || (sub != NULL && strcmp(ctl_cmds[k].sub, sub) == 0))
			return &ctl_cmds[k];
	}
	return NULL;
}

/* "inject, resolve or list": the second words of group name; free it. */
static char *ctl_subs(const char *name)
{
	char *s = ctl_strdup(""), *t;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < CTL_NCMDS; i++)
		n += strcmp(ctl_cmds[i].name, name) == 0;
	for (size_t i = 0; i < CTL_NCMDS; i++) {
		if (strcmp(ctl_cmds[i].name, name) != 0)
			continue;
		k++;
		t = ctl_printf("%s%s%s", s, k == 1 ? "" : k == n ? " or " : ", ", ctl_cmds[i].sub);
		free(s);
		s = t;
	}
	return s;
}

/* ---- argument parsing -------------------------------------------------- */

/* After a usage error in text mode: the usage of cmd, of the commands of
 * group, or of partisanctl, and where to read more. */
static void ctl_usage_hint(const struct ctl_cmd *cmd, const char *group)
{
	const char *lead = "usage: ";
	char name[64];

	if (cmd != NULL)
		ctl_usage_lines(stderr, cmd, lead);
	for (size_t i = 0; group != NULL && i < CTL_NCMDS; i++)
		if (strcmp(ctl_cmds[i].name, group) == 0) {
			ctl_usage_lines(stderr, &ctl_cmds[i], lead);
			lead = "       ";
		}
	if (cmd == NULL && group == NULL)
		fputs("usage: partisanctl [-s SOCKET] [--json] COMMAND [ARGS]\n", stderr);
	fprintf(stderr, "Try \"partisanctl help%s%s\".\n", cmd || group ? " " : "",
	        cmd     ? ctl_cmd_name(cmd, name, sizeof(name))
	        : group ? group
	                : "");
}

/* A usage error of cmd (NULL: of partisanctl; then group, when not NULL,
 * names the command group it is about): the message, prefixed with the
 * command's words, then in text mode the usage; returns 2. */
static int ctl_usage_verror(const struct ctl_cmd *cmd, const char *group, const char *fmt,
                            va_list ap)
{
	char name[64], *msg;

	if (vasprintf(&msg, fmt, ap) < 0)
		ctl_oom();
	ctl_err(CTL_EX_USAGE, "usage", "%s%s%s", cmd ? ctl_cmd_name(cmd, name, sizeof(name)) : "",
	        cmd ? ": " : "", msg);
	free(msg);
	if (!ctl_json_errors)
		ctl_usage_hint(cmd, group);
	return CTL_EX_USAGE;
}

static int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ctl_usage_error(const struct ctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = ctl_usage_verror(cmd, NULL, fmt, ap);
	va_end(ap);
	return r;
}

static int ctl_group_error(const char *group, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ctl_group_error(const char *group, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = ctl_usage_verror(NULL, group, fmt, ap);
	va_end(ap);
	return r;
}

static const struct ctl_opt *ctl_find_opt(const struct ctl_cmd *cmd, const char *name, size_t len)
{
	for (int i = 0; i < CTL_CMD_OPTS && cmd->opts[i].name != NULL; i++)
		if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
			return &cmd->opts[i];
	return NULL;
}

static int ctl_ms(const char *s, int *ms)
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

static void ctl_set_opt(struct ctl_opts *o, const char *name, const char *val)
{
	if (strcmp(name, "name") == 0)
		o->name = val;
	else if (strcmp(name, "config") == 0)
		o->config = val;
	else if (strcmp(name, "png") == 0)
		o->png = val;
	else if (strcmp(name, "svg") == 0)
		o->svg = val;
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
	else if (strcmp(name, "status") == 0)
		o->status = val;
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

/* Check val for option p and set it. */
static int ctl_opt_value(const struct ctl_cmd *cmd, const struct ctl_opt *p, const char *val,
                         struct ctl_opts *o)
{
	if (p->val == V_MS && ctl_ms(val, &o->timeout_ms) < 0)
		return ctl_usage_error(
		    cmd, "--%s: expected a positive number of milliseconds, got \"%s\"", p->name,
		    val);
	if (p->val == V_WORD && !ctl_word_in(val, p->choices))
		return ctl_usage_error(cmd, "--%s: expected one of %s, got \"%s\"", p->name,
		                       p->choices, val);
	if (p->val == V_STR && val[0] == '\0')
		return ctl_usage_error(cmd, "--%s: expected %s, got \"\"", p->name, p->metavar);
	if (p->val == V_MS)
		o->timeout_set = true;
	ctl_set_opt(o, p->name, val);
	if (ctl_is_alt(cmd, p))
		o->alt = true;
	return 0;
}

/* One "--option[=value]" of the command at argv[*i]. */
static int ctl_cmd_opt(const struct ctl_cmd *cmd, int argc, char **argv, int *i, struct ctl_opts *o)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
	const struct ctl_opt *p = ctl_find_opt(cmd, name, len);

	if (p == NULL)
		return ctl_usage_error(cmd, "unknown option \"%.*s\"", (int)(len + 2), argv[*i]);
	if (p->val == V_FLAG && eq != NULL)
		return ctl_usage_error(cmd, "--%s takes no value, got \"%s\"", p->name, eq + 1);
	if (p->val == V_FLAG)
		return ctl_opt_value(cmd, p, NULL, o);
	if (eq != NULL)
		return ctl_opt_value(cmd, p, eq + 1, o);
	if (*i + 1 >= argc)
		return ctl_usage_error(cmd, "--%s: missing %s", p->name, p->metavar);
	return ctl_opt_value(cmd, p, argv[++*i], o);
}

/* A global option at argv[*i]: 1 taken, 0 not one, < 0 missing its value. */
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

static bool ctl_is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* "expected visible or all, got \"x\"" */
static int ctl_choice_error(const struct ctl_cmd *cmd, const struct ctl_arg *a, const char *got)
{
	char words[64];
	const char *bar = strrchr(a->name, '|');

	snprintf(words, sizeof(words), "%.*s or %s", (int)(bar - a->name), a->name, bar + 1);
	for (char *p = words; (p = strchr(p, '|')) != NULL;)
		*p = ',';
	return ctl_usage_error(cmd, "expected %s, got \"%s\"", words, got);
}

/* The positional arguments against the command's: count and choices. */
static int ctl_check_args(const struct ctl_cmd *cmd, const struct ctl_opts *o)
{
	int want = 0, most = 0;

	for (const struct ctl_arg *a; (a = ctl_argdef(o, most)) != NULL; most++)
		want += !a->optional;
	if (o->nargs < want)
		return ctl_usage_error(cmd, "missing %s", ctl_argdef(o, o->nargs)->name);
	if (o->nargs > most)
		return ctl_usage_error(cmd, "extra argument \"%s\"", o->args[most]);
	for (int i = 0; i < o->nargs; i++) {
		const struct ctl_arg *a = ctl_argdef(o, i);

		if (a->kind == K_CHOICE && !ctl_word_in(o->args[i], a->name))
			return ctl_choice_error(cmd, a, o->args[i]);
	}
	return 0;
}

/* The arguments after the command words: options anywhere, "--" ends
 * them. 0, CTL_DONE after printing the help, or the exit code. */
static int ctl_parse_args(const struct ctl_cmd *cmd, int argc, char **argv, int i,
                          struct ctl_opts *o)
{
	bool opts = true;
	int r;

	for (; i < argc; i++) {
		if (opts && strcmp(argv[i], "--") == 0) {
			opts = false;
		} else if (opts && (r = ctl_global(argc, argv, &i, o)) != 0) {
			if (r < 0)
				return ctl_usage_error(cmd, "%s: missing SOCKET", argv[i]);
		} else if (opts && ctl_is_help(argv[i])) {
			ctl_help_cmd(stdout, cmd);
			return CTL_DONE;
		} else if (opts && strncmp(argv[i], "--", 2) == 0) {
			if ((r = ctl_cmd_opt(cmd, argc, argv, &i, o)) != 0)
				return r;
		} else if (o->nargs < CTL_MAX_ARGS) {
			o->args[o->nargs++] = argv[i];
		} else {
			return ctl_usage_error(cmd, "extra argument \"%s\"", argv[i]);
		}
	}
	return ctl_check_args(cmd, o);
}

/* The command at argv[*i] (one or two words) into o->cmd, *i past it. */
static int ctl_pick(int argc, char **argv, int *i, struct ctl_opts *o)
{
	const char *name = argv[*i], *sub = *i + 1 < argc ? argv[*i + 1] : NULL;
	bool group;
	char *subs;
	int r;

	if ((o->cmd = ctl_lookup(name, sub, &group)) != NULL) {
		*i += o->cmd->sub != NULL ? 2 : 1;
		return 0;
	}
	if (!group)
		return ctl_usage_error(NULL, "unknown command \"%s\"", name);
	if (sub != NULL && ctl_is_help(sub)) {
		ctl_help_group(stdout, name);
		return CTL_DONE;
	}
	subs = ctl_subs(name);
	if (sub == NULL)
		r = ctl_group_error(name, "%s: missing SUBCOMMAND (%s)", name, subs);
	else
		r = ctl_group_error(name, "%s: unknown subcommand \"%s\" (expected %s)", name, sub,
		                    subs);
	free(subs);
	return r;
}

/* The options before the command. */
static int ctl_parse_globals(int argc, char **argv, int *i, struct ctl_opts *o)
{
	int r;

	for (; *i < argc && argv[*i][0] == '-'; ++*i) {
		if (ctl_is_help(argv[*i])) {
			ctl_help_all(stdout);
			return CTL_DONE;
		}
		if (strcmp(argv[*i], "--version") == 0) {
			printf("partisanctl %s\n", PARTISAN_VERSION);
			return CTL_DONE;
		}
		if ((r = ctl_global(argc, argv, i, o)) < 0)
			return ctl_usage_error(NULL, "%s: missing SOCKET", argv[*i]);
		if (r == 0)
			return ctl_usage_error(NULL, "unknown option \"%s\"", argv[*i]);
	}
	if (*i >= argc)
		return ctl_usage_error(NULL, "missing COMMAND");
	return 0;
}

/* --json anywhere before "--" (errors found before it is parsed are
 * reported in JSON too). */
static bool ctl_wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0)
			return true;
	return false;
}

/* ---- help, the command ------------------------------------------------- */

static int cmd_help(partisan_t *c, const struct ctl_opts *o)
{
	const char *sub = o->nargs > 1 ? o->args[1] : NULL;
	const struct ctl_cmd *cmd;
	bool group;

	(void)c;
	if (o->nargs == 0) {
		ctl_help_all(stdout);
		return CTL_EX_OK;
	}
	cmd = ctl_lookup(o->args[0], sub, &group);
	if (cmd != NULL && cmd->sub == NULL && sub != NULL)
		return ctl_usage_error(o->cmd, "extra argument \"%s\"", sub);
	if (cmd != NULL)
		ctl_help_cmd(stdout, cmd);
	else if (group && sub == NULL)
		ctl_help_group(stdout, o->args[0]);
	else if (group)
		return ctl_usage_error(o->cmd, "unknown command \"%s %s\"", o->args[0], sub);
	else
		return ctl_usage_error(o->cmd, "unknown command \"%s\"", o->args[0]);
	return CTL_EX_OK;
}

/* ---- the daemon connection --------------------------------------------- */

/* The socket: -s, else $PARTISAN_SOCKET when set and not empty, else the
 * default; *from names where it came from. */
static const char *ctl_socket(const struct ctl_opts *o, const char **from)
{
	const char *env = getenv("PARTISAN_SOCKET");

	*from = o->socket != NULL ? "-s" : "PARTISAN_SOCKET";
	if (o->socket != NULL)
		return o->socket;
	return env != NULL && env[0] != '\0' ? env : PARTISAN_DEFAULT_SOCKET;
}

/* connect(2) to path once more, for its errno (the library's connect
 * gives PARTISAN_EIO for every failure): 0 when it connects. */
static int ctl_probe(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), e = 0;

	if (fd < 0)
		return errno;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* the length was checked */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		e = errno;
	close(fd);
	return e;
}

/* Why a socket that accepts connections gave no session. */
static const char *ctl_session_why(int r)
{
	switch (r) {
	case PARTISAN_EPERM:
		return "not permitted: this user is not allowed by the daemon (ipc.allow_uids, "
		       "ipc.allow_gids)";
	case PARTISAN_ETIMEDOUT:
		return "the daemon did not answer in time";
	default:
		return "the connection was closed during the hello";
	}
}

static int ctl_unreachable(const char *path, int r)
{
	int e = ctl_probe(path);
	const char *why = strerror(e);
	struct stat st;

	if (e == ENOENT)
		why = "no such socket (is partisand running?)";
	else if (e == ENOTDIR)
		why = "no such socket (a part of the path is not a directory)";
	else if (e == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		why = "not a socket";
	else if (e == ECONNREFUSED)
		why = "connection refused: nobody is listening (is partisand running?)";
	else if (e == EACCES || e == EPERM)
		why = "not permitted (the socket's mode, owner or group, or a directory on the "
		      "way, keeps this user out)";
	else if (e == 0)
		why = ctl_session_why(r);
	return ctl_err(CTL_EX_UNAVAILABLE, "unavailable", "cannot reach the daemon at %s: %s", path,
	               why);
}

static int ctl_connect(const struct ctl_opts *o, partisan_t **c)
{
	partisan_connect_opts_t copts = {.client = "partisanctl"};
	struct sockaddr_un sa;
	const char *from, *path = ctl_socket(o, &from);
	int r;

	if (path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
		return ctl_usage_error(NULL,
		                       "%s: expected a socket path of 1 to %zu bytes, got \"%s\"",
		                       from, sizeof(sa.sun_path) - 1, path);
	if ((r = partisan_connect_with(path, &copts, c)) == 0)
		return 0;
	if (r == PARTISAN_EIO || r == PARTISAN_EPERM || r == PARTISAN_ETIMEDOUT ||
	    r == PARTISAN_ECLOSED)
		return ctl_unreachable(path, r);
	if (r == PARTISAN_EVERSION || r == PARTISAN_EPROTO)
		return ctl_err(CTL_EX_ERR, ctl_code(r), "cannot talk to the daemon at %s: %s", path,
		               r == PARTISAN_EVERSION ? "it speaks another IPC protocol version"
		                                      : "not a partisand (protocol violation)");
	return ctl_err(CTL_EX_ERR, ctl_code(r), "cannot connect to the daemon at %s: %s", path,
	               partisan_strerror(r));
}

/* ---- main -------------------------------------------------------------- */

static int ctl_run(const struct ctl_opts *o)
{
	partisan_t *c = NULL;
	int r;

	if (!o->cmd->local && (r = ctl_connect(o, &c)) != 0)
		return r;
	r = o->cmd->run(c, o);
	if (c != NULL)
		partisan_close(c);
	return r;
}

int main(int argc, char **argv)
{
	struct ctl_opts o = {.timeout_ms = CTL_TIMEOUT};
	int i = 1, r;

	ctl_json_errors = ctl_wants_json(argc, argv);
	if ((r = ctl_parse_globals(argc, argv, &i, &o)) != 0 ||
	    (r = ctl_pick(argc, argv, &i, &o)) != 0 ||
	    (r = ctl_parse_args(o.cmd, argc, argv, i, &o)) != 0)
		return r == CTL_DONE ? CTL_EX_OK : r;
	if (o.json)
		out = &ctl_json;
	return ctl_run(&o);
}
