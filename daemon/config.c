/* config.c: partisand's configuration: embedded defaults, JSON loading with
 * errors that name the JSON path, command-line overrides, cross-checks and
 * the normalised dump.
 *
 * Documents are checked against tables of known keys (struct config_field);
 * anything not in a table is an error. The tables are the one place a key is
 * written: its checks, its default and its normalised form in the dump all
 * come from its entry. A load works on a deep copy of the struct and
 * replaces it only when the whole document validated, so a failed load
 * leaves *c as it was.
 */
#include "config.h"
#include "keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <mbedtls/platform_util.h>

#define CONFIG_INTERVAL_MAX     3600000
#define CONFIG_NAME_MAX         255
#define CONFIG_ADDRS_MAX        16 /* listen or advertised addresses: a node spec's limit */
#define CONFIG_CLUSTER_NAME_MAX 128
#define CONFIG_CHANNEL_NAME_MAX 64
#define CONFIG_ID_MAX           4294967294LL /* (uid_t)-1 means "none" */
#define CONFIG_SOCKET_MAX       (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define CONFIG_WANT_NAME    "NAME@HOST (no ':' in NAME, no spaces, at most 255 bytes)"
#define CONFIG_WANT_JOIN    "NAME@HOST:PORT or HOST:PORT"
#define CONFIG_WANT_SOCKET  "non-empty path of at most 107 bytes"
#define CONFIG_WANT_PATH    "null or non-empty string"
#define CONFIG_WANT_MODE    "octal mode string \"0000\"..\"0777\""
#define CONFIG_WANT_CHANNEL "channel name of 1..64 characters from [A-Za-z0-9_.-]"
#define CONFIG_WANT_MANAGER "one of full_mesh|hyparview|client_server|static"
#define CONFIG_WANT_LEVEL   "one of debug|info|notice|warning|error"
#define CONFIG_WANT_ROLE    "one of server|client"
#define CONFIG_WANT_IP      "numeric IPv4 or IPv6 address"
#define CONFIG_WANT_IP_PORT "IP:PORT"
#define CONFIG_WANT_CLUSTER "non-empty string of at most 128 bytes"
#define CONFIG_WANT_LISTEN  "non-empty array of {\"ip\", \"port\"}"
#define CONFIG_WANT_ADVERT  "array of {\"ip\", \"port\"}"
#define CONFIG_WANT_ADV_IP  "numeric IPv4 or IPv6 address that peers can reach (not a wildcard)"
#define CONFIG_WANT_IDS     "array of integers 0..4294967294"
#define CONFIG_WANT_METRICS "null or \"IP:PORT\""
#define CONFIG_WANT_STRINGS "array of strings"

/* Where a check is and where its error goes. */
struct config_ctx {
	char *err;
	size_t errlen;
	const char *prefix; /* "config: " for documents and cross-checks, "" for flags */
	char path[384];     /* JSON path (or flag) of the value being checked */
	size_t len;
};

enum config_kind { CK_UINT, CK_U64, CK_BOOL, CK_PATH, CK_IDS, CK_ENUM, CK_FN, CK_OBJ };

/* One known key: where its value goes in the struct at hand, its checks,
 * its default and how the dump writes it. CK_UINT, CK_U64, CK_BOOL, CK_PATH,
 * CK_IDS (an array of ids, its count at off_n) and CK_ENUM (an enum, one of
 * names) are read, defaulted and dumped from the entry alone (CK_PATH is
 * null by default, CK_IDS empty); CK_FN keys bring their own check (fn) and
 * dump, and their default is JSON text applied through fn as if it were in
 * a document. */
struct config_field {
	const char *key;
	enum config_kind kind;
	size_t off;               /* offset of the field in the base struct */
	size_t off_n;             /* CK_IDS */
	long long min, max;       /* CK_UINT, CK_U64 */
	long long def;            /* CK_UINT, CK_U64, CK_BOOL, CK_ENUM */
	const char *const *names; /* CK_ENUM: the value's name by value */
	size_t nnames;
	const char *want; /* CK_ENUM: what the error says was expected */
	int (*fn)(void *base, json_t *v, struct config_ctx *x); /* CK_FN */
	json_t *(*dump)(const void *base);                      /* CK_FN */
	const char *def_json; /* CK_FN; NULL: the zeroed field, or set by config_defaults */
	const struct config_field *sub; /* CK_OBJ */
	bool required;
};

/* clang-format off */
#define CF_UINT(k, f, lo, hi, d) {.key = k, .kind = CK_UINT, .off = offsetof(struct config, f), .min = lo, .max = hi, .def = d}
#define CF_U64(k, f, lo, hi, d)  {.key = k, .kind = CK_U64, .off = offsetof(struct config, f), .min = lo, .max = hi, .def = d}
#define CF_MS(k, f, d)           CF_UINT(k, f, 1, CONFIG_INTERVAL_MAX, d)
#define CF_BOOL(k, f, d)         {.key = k, .kind = CK_BOOL, .off = offsetof(struct config, f), .def = d}
#define CF_PATH(k, f)            {.key = k, .kind = CK_PATH, .off = offsetof(struct config, f)}
#define CF_IDS(k, f, n)          {.key = k, .kind = CK_IDS, .off = offsetof(struct config, f), .off_n = offsetof(struct config, n)}
#define CF_ENUM(k, f, v, w, d)   {.key = k, .kind = CK_ENUM, .off = offsetof(struct config, f), .names = v, .nnames = sizeof(v) / sizeof(v[0]), .want = w, .def = d}
#define CF_FN(k, f, dumpf, d)    {.key = k, .kind = CK_FN, .fn = f, .dump = dumpf, .def_json = d}
#define CF_NEED(k, f, dumpf)     {.key = k, .kind = CK_FN, .fn = f, .dump = dumpf, .required = true}
#define CF_OBJ(k, t)             {.key = k, .kind = CK_OBJ, .sub = t}
#define CF_END                   {.key = NULL}
/* clang-format on */

#define CONFIG_STR_(x) #x
#define CONFIG_STR(x)  CONFIG_STR_(x)

static const char *const config_manager_names[] = {"full_mesh", "hyparview", "client_server",
                                                   "static"};
static const char *const config_level_names[] = {"debug", "info", "notice", "warning", "error"};
/* CK_ENUM fields are read and written as unsigned. */
_Static_assert(sizeof(enum manager_kind) == sizeof(unsigned) &&
                   sizeof(enum log_level) == sizeof(unsigned),
               "enums are unsigned-sized");

static int config_fail(struct config_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Memory: the daemon may abort on out-of-memory, and only on that. */

static _Noreturn void config_oom(void)
{
	fputs("partisand: out of memory\n", stderr);
	abort();
}

static void *config_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		config_oom();
	return p;
}

static char *config_xstrdup(const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		config_oom();
	return p;
}

static void *config_xmemdup(const void *src, size_t n, size_t size)
{
	void *p;

	if (n == 0)
		return NULL;
	p = config_xcalloc(n, size);
	memcpy(p, src, n * size);
	return p;
}

/* Replace an owned string with a copy of s (NULL allowed). */
static void config_replace(char **slot, const char *s)
{
	char *copy = config_xstrdup(s);

	free(*slot);
	*slot = copy;
}

/* Error context and path. */

static void config_ctx_init(struct config_ctx *x, const char *prefix, const char *path, char *err,
                            size_t errlen)
{
	x->err = err;
	x->errlen = errlen;
	x->prefix = prefix;
	snprintf(x->path, sizeof(x->path), "%s", path);
	x->len = strlen(x->path);
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

/* Account for n bytes printed at mark; control characters are shown as '?'. */
static size_t config_path_commit(struct config_ctx *x, size_t mark, int n)
{
	size_t room = sizeof(x->path) - mark;

	if (n > 0)
		x->len = (size_t)n < room ? mark + (size_t)n : sizeof(x->path) - 1;
	for (size_t k = mark; k < x->len; k++)
		if ((unsigned char)x->path[k] < 0x20)
			x->path[k] = '?';
	return mark;
}

/* Append ".key" (or "key" at the top); returns the length to pop back to. */
static size_t config_path_push(struct config_ctx *x, const char *key)
{
	size_t mark = x->len;

	return config_path_commit(
	    x, mark,
	    snprintf(x->path + mark, sizeof(x->path) - mark, "%s%s", mark ? "." : "", key));
}

static size_t config_path_index(struct config_ctx *x, size_t i)
{
	size_t mark = x->len;

	return config_path_commit(x, mark,
	                          snprintf(x->path + mark, sizeof(x->path) - mark, "[%zu]", i));
}

static void config_path_pop(struct config_ctx *x, size_t mark)
{
	x->len = mark;
	x->path[mark] = '\0';
}

/* "PREFIX PATH: message"; always returns -1. */
static int config_fail(struct config_ctx *x, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (x->err == NULL || x->errlen == 0)
		return -1;
	n = snprintf(x->err, x->errlen, "%s%s%s", x->prefix, x->path, x->len ? ": " : "");
	if (n >= 0 && (size_t)n < x->errlen) {
		va_start(ap, fmt);
		vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* "PATH: expected WHAT, got <compact JSON>". */
static int config_expected(struct config_ctx *x, const json_t *v, const char *what)
{
	char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

	config_fail(x, "expected %s, got %s", what, got ? got : "?");
	free(got);
	return -1;
}

/* The same for a C string (a flag); non-UTF-8 text is shown as it is. */
static int config_expected_str(struct config_ctx *x, const char *s, const char *what)
{
	json_t *j;

	if (s == NULL)
		return config_fail(x, "expected %s, got null", what);
	if ((j = json_string(s)) == NULL)
		return config_fail(x, "expected %s, got \"%s\"", what, s);
	config_expected(x, j, what);
	json_decref(j);
	return -1;
}

/* Syntax checks on plain strings. */

static bool config_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool config_valid_node_name(const char *s)
{
	const char *at = strchr(s, '@');
	size_t len = strlen(s);

	if (at == NULL || at == s || at[1] == '\0' || len > CONFIG_NAME_MAX)
		return false;
	if (strchr(at + 1, '@') != NULL || memchr(s, ':', (size_t)(at - s)) != NULL)
		return false;
	return config_printable(s, len);
}

/* Numeric IP into out (normalised by inet_ntop); returns AF_INET, AF_INET6 or -1. */
static int config_parse_ip(const char *s, char *out, size_t outlen)
{
	unsigned char buf[sizeof(struct in6_addr)];
	int af = strchr(s, ':') ? AF_INET6 : AF_INET;

	if (inet_pton(af, s, buf) != 1 || inet_ntop(af, buf, out, (socklen_t)outlen) == NULL)
		return -1;
	return af;
}

bool config_ip_wildcard(const char *ip)
{
	return strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0;
}

/* Decimal port, digits only, min..65535. */
static int config_parse_port(const char *s, unsigned min, uint16_t *out)
{
	size_t n = strlen(s);
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < min || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* A join host: a name, an IPv4 address or a bracketed IPv6 address. */
static bool config_valid_host(const char *h)
{
	char inner[64], ip[64];
	size_t n = strlen(h);

	if (n == 0 || !config_printable(h, n) || strchr(h, '@') != NULL)
		return false;
	if (h[0] != '[')
		return strpbrk(h, ":[]") == NULL;
	if (n < 3 || h[n - 1] != ']' || n - 2 >= sizeof(inner))
		return false;
	memcpy(inner, h + 1, n - 2);
	inner[n - 2] = '\0';
	return config_parse_ip(inner, ip, sizeof(ip)) == AF_INET6;
}

static bool config_valid_join(const char *s)
{
	char host[CONFIG_NAME_MAX + 1];
	const char *colon = strrchr(s, ':');
	uint16_t port;
	size_t n;

	if (colon == NULL || config_parse_port(colon + 1, 1, &port) < 0)
		return false;
	n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	return strchr(host, '@') ? config_valid_node_name(host) : config_valid_host(host);
}

static bool config_valid_channel_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_CHANNEL_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

static bool config_valid_socket(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n <= CONFIG_SOCKET_MAX;
}

static int config_parse_mode(const char *s, unsigned *out)
{
	size_t n = strlen(s);
	unsigned v = 0;

	if (n == 0 || n > 4)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	if (v > 0777)
		return -1;
	*out = v;
	return 0;
}

#define CONFIG_NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int config_lookup(const char *const *names, size_t n, const json_t *v)
{
	if (!json_is_string(v))
		return -1;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], json_string_value(v)) == 0)
			return (int)i;
	return -1;
}

int config_parse_ip_port(const char *s, struct config_addr *out)
{
	struct config_addr a;
	char ip[64];
	const char *colon, *start = s;
	bool bracketed;
	size_t n;

	if (s == NULL || (colon = strrchr(s, ':')) == NULL)
		return -1;
	n = (size_t)(colon - s);
	bracketed = s[0] == '[';
	if (bracketed) {
		if (n < 3 || s[n - 1] != ']')
			return -1;
		start = s + 1;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(ip))
		return -1;
	memcpy(ip, start, n);
	ip[n] = '\0';
	if (config_parse_ip(ip, a.ip, sizeof(a.ip)) != (bracketed ? AF_INET6 : AF_INET))
		return -1;
	if (config_parse_port(colon + 1, 0, &a.port) < 0)
		return -1;
	*out = a;
	return 0;
}

/* Checks on JSON values. */

static int config_get_int(struct config_ctx *x, const json_t *v, long long min, long long max,
                          long long *out)
{
	char what[64];

	if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
		*out = (long long)json_integer_value(v);
		return 0;
	}
	snprintf(what, sizeof(what), "integer %lld..%lld", min, max);
	return config_expected(x, v, what);
}

/* null, or a non-empty string copied into *slot. */
static int config_get_path(struct config_ctx *x, json_t *v, char **slot)
{
	if (json_is_null(v)) {
		config_replace(slot, NULL);
		return 0;
	}
	if (!json_is_string(v) || json_string_length(v) == 0)
		return config_expected(x, v, CONFIG_WANT_PATH);
	config_replace(slot, json_string_value(v));
	return 0;
}

/* An array of ids 0..CONFIG_ID_MAX; returns its length or -1. */
static long config_check_ids(json_t *v, struct config_ctx *x)
{
	json_t *el;
	size_t i, mark;
	long long n;

	if (!json_is_array(v))
		return config_expected(x, v, CONFIG_WANT_IDS);
	json_array_foreach(v, i, el)
	{
		mark = config_path_index(x, i);
		if (config_get_int(x, el, 0, CONFIG_ID_MAX, &n) < 0)
			return -1;
		config_path_pop(x, mark);
	}
	return (long)json_array_size(v);
}

/* CK_IDS: ipc.allow_uids and ipc.allow_gids, one pair of helpers for both
 * (uid_t and gid_t are unsigned int here). */
_Static_assert(_Generic((uid_t)0, unsigned : 1, default : 0) &&
                   _Generic((gid_t)0, unsigned : 1, default : 0),
               "uid_t and gid_t are unsigned int");

/* Replace *ids (n of them) with the array v of ids. */
static int config_apply_ids(json_t *v, struct config_ctx *x, unsigned **ids, size_t *n)
{
	long k = config_check_ids(v, x);

	if (k < 0)
		return -1;
	free(*ids);
	*ids = config_xcalloc((size_t)k, sizeof(**ids));
	*n = (size_t)k;
	for (long i = 0; i < k; i++)
		(*ids)[i] = (unsigned)json_integer_value(json_array_get(v, (size_t)i));
	return 0;
}

static json_t *config_dump_ids(const unsigned *ids, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(a, json_integer((json_int_t)ids[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int config_apply_object(void *base, json_t *obj, const struct config_field *fields,
                               struct config_ctx *x);

static int config_apply_field(void *base, const struct config_field *f, json_t *v,
                              struct config_ctx *x)
{
	char *p = (char *)base + f->off;
	long long n;

	switch (f->kind) {
	case CK_UINT:
	case CK_U64:
		if (config_get_int(x, v, f->min, f->max, &n) < 0)
			return -1;
		if (f->kind == CK_UINT)
			*(unsigned *)(void *)p = (unsigned)n;
		else
			*(uint64_t *)(void *)p = (uint64_t)n;
		return 0;
	case CK_BOOL:
		if (!json_is_boolean(v))
			return config_expected(x, v, "boolean");
		*(bool *)(void *)p = json_is_true(v);
		return 0;
	case CK_PATH:
		return config_get_path(x, v, (char **)(void *)p);
	case CK_IDS:
		return config_apply_ids(v, x, (unsigned **)(void *)p,
		                        (size_t *)(void *)((char *)base + f->off_n));
	case CK_ENUM:
		if ((n = config_lookup(f->names, f->nnames, v)) < 0)
			return config_expected(x, v, f->want);
		*(unsigned *)(void *)p = (unsigned)n;
		return 0;
	case CK_FN:
		return f->fn(base, v, x);
	case CK_OBJ:
		return config_apply_object(base, v, f->sub, x);
	}
	return -1;
}

static const struct config_field *config_field_find(const struct config_field *fields,
                                                    const char *key)
{
	for (; fields->key != NULL; fields++)
		if (strcmp(fields->key, key) == 0)
			return fields;
	return NULL;
}

/* Apply each key of obj through the table; unknown keys are errors. */
static int config_apply_object(void *base, json_t *obj, const struct config_field *fields,
                               struct config_ctx *x)
{
	const struct config_field *f;
	const char *key;
	json_t *v;
	size_t mark;

	if (!json_is_object(obj))
		return config_expected(x, obj, "object");
	json_object_foreach(obj, key, v)
	{
		mark = config_path_push(x, key);
		f = config_field_find(fields, key);
		if (f == NULL)
			return config_fail(x, "unknown key");
		if (config_apply_field(base, f, v, x) < 0)
			return -1;
		config_path_pop(x, mark);
	}
	return 0;
}

static int config_require(const json_t *obj, const struct config_field *fields,
                          struct config_ctx *x)
{
	for (; fields->key != NULL; fields++) {
		if (fields->required && json_object_get(obj, fields->key) == NULL) {
			config_path_push(x, fields->key);
			return config_fail(x, "required key is missing");
		}
	}
	return 0;
}

/* Handlers for keys with their own rules: config_apply_KEY checks a value
 * and applies it, config_dump_KEY gives it back, normalised, as JSON. */

static json_t *config_json_string(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *config_dump_object(const void *base, const struct config_field *fields);

static int config_apply_name(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	if (!json_is_string(v) || !config_valid_node_name(json_string_value(v)))
		return config_expected(x, v, CONFIG_WANT_NAME);
	config_replace(&c->name, json_string_value(v));
	return 0;
}

static json_t *config_dump_name(const void *base)
{
	return config_json_string(((const struct config *)base)->name);
}

static int config_apply_addr_ip(void *base, json_t *v, struct config_ctx *x)
{
	struct config_addr *a = base;

	if (!json_is_string(v) || config_parse_ip(json_string_value(v), a->ip, sizeof(a->ip)) < 0)
		return config_expected(x, v, CONFIG_WANT_IP);
	return 0;
}

static json_t *config_dump_addr_ip(const void *base)
{
	return json_string(((const struct config_addr *)base)->ip);
}

static int config_apply_addr_port(void *base, json_t *v, struct config_ctx *x)
{
	struct config_addr *a = base;
	long long n;

	if (config_get_int(x, v, 0, 65535, &n) < 0)
		return -1;
	a->port = (uint16_t)n;
	return 0;
}

static json_t *config_dump_addr_port(const void *base)
{
	return json_integer(((const struct config_addr *)base)->port);
}

static const struct config_field config_addr_fields[] = {
    CF_NEED("ip", config_apply_addr_ip, config_dump_addr_ip),
    CF_NEED("port", config_apply_addr_port, config_dump_addr_port),
    CF_END,
};

/* An address array into *arr: listen_addrs (at least one) or advertise_addrs. */
static int config_apply_addrs(struct config_addr **arr, size_t *n, json_t *v,
                              const struct config_field *fields, bool empty_ok,
                              struct config_ctx *x)
{
	json_t *el;
	size_t i, mark;

	if (!json_is_array(v) || (json_array_size(v) == 0 && !empty_ok) ||
	    json_array_size(v) > CONFIG_ADDRS_MAX)
		return config_expected(x, v, empty_ok ? CONFIG_WANT_ADVERT : CONFIG_WANT_LISTEN);
	free(*arr);
	*n = json_array_size(v);
	*arr = config_xcalloc(*n + 1, sizeof(**arr));
	json_array_foreach(v, i, el)
	{
		mark = config_path_index(x, i);
		if (config_apply_object(&(*arr)[i], el, fields, x) < 0 ||
		    config_require(el, fields, x) < 0)
			return -1;
		config_path_pop(x, mark);
	}
	return 0;
}

static json_t *config_dump_addrs(const struct config_addr *v, size_t n,
                                 const struct config_field *fields)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < n; i++) {
		if (json_array_append_new(a, config_dump_object(&v[i], fields)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int config_apply_listen(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	return config_apply_addrs(&c->listen_addrs, &c->nlisten_addrs, v, config_addr_fields, false,
	                          x);
}

static json_t *config_dump_listen(const void *base)
{
	const struct config *c = base;

	return config_dump_addrs(c->listen_addrs, c->nlisten_addrs, config_addr_fields);
}

/* An advertised address: what peers dial, so never a wildcard. */
static int config_apply_adv_ip(void *base, json_t *v, struct config_ctx *x)
{
	struct config_addr *a = base;

	if (!json_is_string(v) || config_parse_ip(json_string_value(v), a->ip, sizeof(a->ip)) < 0 ||
	    config_ip_wildcard(a->ip))
		return config_expected(x, v, CONFIG_WANT_ADV_IP);
	return 0;
}

static const struct config_field config_adv_fields[] = {
    CF_NEED("ip", config_apply_adv_ip, config_dump_addr_ip),
    CF_NEED("port", config_apply_addr_port, config_dump_addr_port),
    CF_END,
};

static int config_apply_advertise(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	return config_apply_addrs(&c->advertise_addrs, &c->nadvertise_addrs, v, config_adv_fields,
	                          true, x);
}

static json_t *config_dump_advertise(const void *base)
{
	const struct config *c = base;

	return config_dump_addrs(c->advertise_addrs, c->nadvertise_addrs, config_adv_fields);
}

static void config_join_free(struct config *c)
{
	for (size_t i = 0; i < c->njoin; i++)
		free(c->join[i]);
	free(c->join);
	c->join = NULL;
	c->njoin = 0;
}

static int config_apply_join(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;
	json_t *el;
	size_t i, mark;

	if (!json_is_array(v))
		return config_expected(x, v, CONFIG_WANT_STRINGS);
	config_join_free(c);
	c->join = config_xcalloc(json_array_size(v), sizeof(*c->join));
	json_array_foreach(v, i, el)
	{
		mark = config_path_index(x, i);
		if (!json_is_string(el) || !config_valid_join(json_string_value(el)))
			return config_expected(x, el, CONFIG_WANT_JOIN);
		c->join[c->njoin++] = config_xstrdup(json_string_value(el));
		config_path_pop(x, mark);
	}
	return 0;
}

static json_t *config_dump_join(const void *base)
{
	const struct config *c = base;
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < c->njoin; i++) {
		if (json_array_append_new(a, json_string(c->join[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static const struct config_field config_channel_fields[] = {
    {.key = "parallelism",
     .kind = CK_UINT,
     .off = offsetof(struct config_channel, parallelism),
     .min = 1,
     .max = 64,
     .def = 1},
    {.key = "monotonic", .kind = CK_BOOL, .off = offsetof(struct config_channel, monotonic)},
    CF_END,
};

static void config_default_object(void *base, const struct config_field *fields);

static void config_channels_free(struct config *c)
{
	for (size_t i = 0; i < c->nchannels; i++)
		free(c->channels[i].name);
	free(c->channels);
	c->channels = NULL;
	c->nchannels = 0;
}

/* Fresh channel list holding room for n more and "default" at [0]. */
static void config_channels_reset(struct config *c, size_t n)
{
	config_channels_free(c);
	c->channels = config_xcalloc(n + 1, sizeof(*c->channels));
	c->channels[0].name = config_xstrdup("default");
	config_default_object(&c->channels[0], config_channel_fields);
	c->nchannels = 1;
}

static int config_apply_channels(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;
	struct config_channel *ch;
	const char *key;
	json_t *el;
	size_t mark;

	if (!json_is_object(v))
		return config_expected(x, v, "object");
	config_channels_reset(c, json_object_size(v));
	json_object_foreach(v, key, el)
	{
		if (!config_valid_channel_name(key))
			return config_expected_str(x, key, CONFIG_WANT_CHANNEL);
		ch = &c->channels[0];
		if (strcmp(key, "default") != 0) {
			ch = &c->channels[c->nchannels++];
			ch->name = config_xstrdup(key);
			config_default_object(ch, config_channel_fields);
		}
		mark = config_path_push(x, key);
		if (config_apply_object(ch, el, config_channel_fields, x) < 0)
			return -1;
		config_path_pop(x, mark);
	}
	return 0;
}

static json_t *config_dump_channels(const void *base)
{
	const struct config *c = base;
	json_t *o = json_object();

	for (size_t i = 0; o != NULL && i < c->nchannels; i++) {
		if (json_object_set_new(
		        o, c->channels[i].name,
		        config_dump_object(&c->channels[i], config_channel_fields)) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static int config_apply_cluster_name(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > CONFIG_CLUSTER_NAME_MAX)
		return config_expected(x, v, CONFIG_WANT_CLUSTER);
	config_replace(&c->cluster_name, json_string_value(v));
	return 0;
}

static json_t *config_dump_cluster_name(const void *base)
{
	return config_json_string(((const struct config *)base)->cluster_name);
}

static int config_apply_socket(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	if (!json_is_string(v) || !config_valid_socket(json_string_value(v)))
		return config_expected(x, v, CONFIG_WANT_SOCKET);
	config_replace(&c->ipc.socket, json_string_value(v));
	return 0;
}

static json_t *config_dump_socket(const void *base)
{
	return config_json_string(((const struct config *)base)->ipc.socket);
}

static int config_apply_mode(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;

	if (!json_is_string(v) || config_parse_mode(json_string_value(v), &c->ipc.mode) < 0)
		return config_expected(x, v, CONFIG_WANT_MODE);
	return 0;
}

static json_t *config_dump_mode(const void *base)
{
	char mode[8];

	snprintf(mode, sizeof(mode), "%04o", ((const struct config *)base)->ipc.mode & 0777);
	return json_string(mode);
}

static int config_apply_role(void *base, json_t *v, struct config_ctx *x)
{
	static const char *const roles[] = {"server", "client"};
	struct config *c = base;
	int k = config_lookup(roles, CONFIG_NELEM(roles), v);

	if (k < 0)
		return config_expected(x, v, CONFIG_WANT_ROLE);
	c->client_server_is_server = k == 0;
	return 0;
}

static json_t *config_dump_role(const void *base)
{
	return json_string(((const struct config *)base)->client_server_is_server ? "server"
	                                                                          : "client");
}

static int config_apply_metrics_listen(void *base, json_t *v, struct config_ctx *x)
{
	struct config *c = base;
	struct config_addr a;

	if (json_is_null(v)) {
		config_replace(&c->metrics_listen, NULL);
		return 0;
	}
	if (!json_is_string(v) || config_parse_ip_port(json_string_value(v), &a) < 0)
		return config_expected(x, v, CONFIG_WANT_METRICS);
	config_replace(&c->metrics_listen, json_string_value(v));
	return 0;
}

static json_t *config_dump_metrics_listen(const void *base)
{
	return config_json_string(((const struct config *)base)->metrics_listen);
}

/* The key tables, one per JSON object: each key with its default. */

static const struct config_field config_cluster_fields[] = {
    CF_FN("name", config_apply_cluster_name, config_dump_cluster_name, "\"default\""),
    CF_PATH("secret_file", secret_file),
    CF_BOOL("insecure", insecure, false),
    CF_END,
};

static const struct config_field config_tls_fields[] = {
    CF_BOOL("enabled", tls.enabled, false),
    CF_PATH("cert", tls.cert),
    CF_PATH("key", tls.key),
    CF_PATH("ca", tls.ca),
    CF_BOOL("verify_peer", tls.verify_peer, true),
    CF_END,
};

static const struct config_field config_ipc_fields[] = {
    CF_FN("socket", config_apply_socket, config_dump_socket, "\"" CONFIG_DEFAULT_SOCKET "\""),
    CF_FN("mode", config_apply_mode, config_dump_mode, "\"0660\""),
    CF_PATH("group", ipc.group),
    CF_IDS("allow_uids", ipc.allow_uids, ipc.nallow_uids),
    CF_IDS("allow_gids", ipc.allow_gids, ipc.nallow_gids),
    CF_END,
};

static const struct config_field config_hyparview_fields[] = {
    CF_UINT("active_max_size", hyparview.active_max_size, 1, 1000, 5),
    CF_UINT("passive_max_size", hyparview.passive_max_size, 1, 1000, 30),
    CF_UINT("arwl", hyparview.arwl, 1, 1000, 6),
    CF_UINT("prwl", hyparview.prwl, 1, 1000, 3),
    CF_MS("shuffle_interval_ms", hyparview.shuffle_interval_ms, 10000),
    CF_UINT("shuffle_k_active", hyparview.shuffle_k_active, 1, 1000, 3),
    CF_UINT("shuffle_k_passive", hyparview.shuffle_k_passive, 1, 1000, 4),
    CF_MS("random_promotion_interval_ms", hyparview.random_promotion_interval_ms, 5000),
    CF_END,
};

static const struct config_field config_client_server_fields[] = {
    CF_FN("role", config_apply_role, config_dump_role, "\"server\""),
    CF_END,
};

static const struct config_field config_broadcast_fields[] = {
    CF_MS("lazy_tick_ms", broadcast.lazy_tick_ms, 1000),
    CF_MS("exchange_tick_ms", broadcast.exchange_tick_ms, 10000),
    CF_END,
};

static const struct config_field config_metrics_fields[] = {
    CF_FN("listen", config_apply_metrics_listen, config_dump_metrics_listen, NULL),
    CF_END,
};

static const struct config_field config_log_fields[] = {
    CF_ENUM("level", log_level, config_level_names, CONFIG_WANT_LEVEL, LOG_LEVEL_INFO),
    CF_END,
};

/* name: partisan@HOSTNAME, set by config_defaults. listen_addrs: dual stack,
 * IPv6 and IPv4 (v4-mapped) on one socket; peer_listen falls back to
 * 0.0.0.0 on a host without IPv6. The order is config_diff's. */
static const struct config_field config_root_fields[] = {
    CF_FN("name", config_apply_name, config_dump_name, NULL),
    CF_ENUM("peer_service_manager", manager, config_manager_names, CONFIG_WANT_MANAGER,
            MANAGER_FULL_MESH),
    CF_MS("gossip_interval_ms", gossip_interval_ms, 1000),
    CF_MS("failure_timeout_ms", failure_timeout_ms, 2000),
    CF_MS("connect_timeout_ms", connect_timeout_ms, 2000),
    CF_MS("retransmit_interval_ms", retransmit_interval_ms, 1000),
    CF_MS("ack_hold_ms", ack_hold_ms, 5000),
    CF_U64("max_frame_bytes", max_frame_bytes, 1024, 1073741824, 16777216),
    CF_U64("session_queue_bytes", session_queue_bytes, 4096, 1073741824, 8388608),
    CF_U64("peer_queue_bytes", peer_queue_bytes, 4096, 1073741824, 8388608),
    CF_UINT("max_outstanding_acks", max_outstanding_acks, 1, 10000000, 65536),
    CF_MS("hello_timeout_ms", hello_timeout_ms, 2000),
    CF_UINT("max_pending_connections", max_pending_connections, 1, 1000000, 256),
    CF_UINT("max_hello_bytes", max_hello_bytes, 1024, 1048576, 16384),
    CF_MS("accept_backoff_ms", accept_backoff_ms, 250),
    CF_UINT("max_members", max_members, 1, 10000000, 4096),
    CF_UINT("max_state_pushes_per_s", max_state_pushes_per_s, 1, 1000000, 10),
    CF_UINT("max_concurrent_dials", max_concurrent_dials, 1, 100000, 64),
    CF_MS("dial_backoff_max_ms", dial_backoff_max_ms, 30000),
    CF_FN("listen_addrs", config_apply_listen, config_dump_listen,
          "[{\"ip\": \"::\", \"port\": " CONFIG_STR(CONFIG_DEFAULT_PORT) "}]"),
    CF_FN("advertise_addrs", config_apply_advertise, config_dump_advertise, NULL),
    CF_FN("join", config_apply_join, config_dump_join, NULL),
    CF_FN("channels", config_apply_channels, config_dump_channels, "{}"),
    CF_OBJ("cluster", config_cluster_fields),
    CF_OBJ("tls", config_tls_fields),
    CF_OBJ("ipc", config_ipc_fields),
    CF_OBJ("hyparview", config_hyparview_fields),
    CF_OBJ("client_server", config_client_server_fields),
    CF_OBJ("broadcast", config_broadcast_fields),
    CF_OBJ("metrics", config_metrics_fields),
    CF_OBJ("log", config_log_fields),
    CF_END,
};

/* Defaults, copies, freeing. */

/* A built-in default that does not apply is a bug in a table above. */
static _Noreturn void config_bad_default(const char *err)
{
	fprintf(stderr, "partisand: built-in default: %s\n", err);
	abort();
}

/* Apply a CK_FN key's default, its JSON text, through the key's own check. */
static void config_default_fn(void *base, const struct config_field *f)
{
	char err[CONFIG_ERR_MAX];
	struct config_ctx x;
	json_error_t je;
	json_t *v = json_loads(f->def_json, JSON_DECODE_ANY, &je);

	config_ctx_init(&x, "", f->key, err, sizeof(err));
	if (v == NULL)
		config_bad_default(je.text);
	if (f->fn(base, v, &x) < 0)
		config_bad_default(err);
	json_decref(v);
}

/* Every key of a table at its default; base is zeroed (CK_PATH keys stay
 * null, CK_FN keys without def_json stay zero). */
static void config_default_object(void *base, const struct config_field *fields)
{
	for (; fields->key != NULL; fields++) {
		char *p = (char *)base + fields->off;

		switch (fields->kind) {
		case CK_UINT:
			*(unsigned *)(void *)p = (unsigned)fields->def;
			break;
		case CK_U64:
			*(uint64_t *)(void *)p = (uint64_t)fields->def;
			break;
		case CK_BOOL:
			*(bool *)(void *)p = fields->def != 0;
			break;
		case CK_ENUM:
			*(unsigned *)(void *)p = (unsigned)fields->def;
			break;
		case CK_PATH:
		case CK_IDS:
			break;
		case CK_FN:
			if (fields->def_json != NULL)
				config_default_fn(base, fields);
			break;
		case CK_OBJ:
			config_default_object(base, fields->sub);
			break;
		}
	}
}

int config_defaults(struct config *c)
{
	char host[256], name[sizeof("partisan@") + sizeof(host)];

	memset(c, 0, sizeof(*c));
	config_default_object(c, config_root_fields);
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(name, sizeof(name), "partisan@%s", host);
	c->name = config_xstrdup(name);
	return 0;
}

static void config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	dst->name = config_xstrdup(src->name);
	dst->listen_addrs =
	    config_xmemdup(src->listen_addrs, src->nlisten_addrs, sizeof(*src->listen_addrs));
	dst->advertise_addrs = config_xmemdup(src->advertise_addrs, src->nadvertise_addrs,
	                                      sizeof(*src->advertise_addrs));
	dst->join = config_xmemdup(src->join, src->njoin, sizeof(*src->join));
	for (size_t i = 0; i < src->njoin; i++)
		dst->join[i] = config_xstrdup(src->join[i]);
	dst->channels = config_xmemdup(src->channels, src->nchannels, sizeof(*src->channels));
	for (size_t i = 0; i < src->nchannels; i++)
		dst->channels[i].name = config_xstrdup(src->channels[i].name);
	dst->cluster_name = config_xstrdup(src->cluster_name);
	dst->secret_file = config_xstrdup(src->secret_file);
	dst->tls.cert = config_xstrdup(src->tls.cert);
	dst->tls.key = config_xstrdup(src->tls.key);
	dst->tls.ca = config_xstrdup(src->tls.ca);
	dst->ipc.socket = config_xstrdup(src->ipc.socket);
	dst->ipc.group = config_xstrdup(src->ipc.group);
	dst->ipc.allow_uids =
	    config_xmemdup(src->ipc.allow_uids, src->ipc.nallow_uids, sizeof(uid_t));
	dst->ipc.allow_gids =
	    config_xmemdup(src->ipc.allow_gids, src->ipc.nallow_gids, sizeof(gid_t));
	dst->metrics_listen = config_xstrdup(src->metrics_listen);
}

void config_free(struct config *c)
{
	if (c == NULL)
		return;
	free(c->name);
	free(c->listen_addrs);
	free(c->advertise_addrs);
	config_join_free(c);
	config_channels_free(c);
	free(c->cluster_name);
	free(c->secret_file);
	free(c->tls.cert);
	free(c->tls.key);
	free(c->tls.ca);
	free(c->ipc.socket);
	free(c->ipc.group);
	free(c->ipc.allow_uids);
	free(c->ipc.allow_gids);
	free(c->metrics_listen);
	memset(c, 0, sizeof(*c));
}

/* Loading. */

/* Validate root on a copy of *c; replace *c only if all of it is good. */
static int config_apply_root(struct config *c, json_t *root, struct config_ctx *x)
{
	struct config tmp;

	config_copy(&tmp, c);
	if (config_apply_object(&tmp, root, config_root_fields, x) < 0) {
		config_free(&tmp);
		return -1;
	}
	config_free(c);
	*c = tmp;
	return 0;
}

static int config_syntax(struct config_ctx *x, const char *source, const json_error_t *je)
{
	return config_fail(x, "%s:%d:%d: %s", source, je->line, je->column, je->text);
}

int config_load_string(struct config *c, const char *json, char *err, size_t errlen)
{
	struct config_ctx x;
	json_error_t je;
	json_t *root;
	int rc;

	config_ctx_init(&x, "config: ", "", err, errlen);
	root = json_loads(json ? json : "", JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return config_syntax(&x, "<string>", &je);
	rc = config_apply_root(c, root, &x);
	json_decref(root);
	return rc;
}

/* 0 if the open fd is something to read, else an errno (EISDIR for directories). */
static int config_fd_error(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return errno;
	return S_ISDIR(st.st_mode) ? EISDIR : 0;
}

/* Read path into a JSON document, or fill the error. */
static json_t *config_read_file(const char *path, struct config_ctx *x)
{
	json_error_t je;
	json_t *root = NULL;
	FILE *fp;
	int e;

	if ((fp = fopen(path, "r")) == NULL) {
		config_fail(x, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((e = config_fd_error(fileno(fp))) != 0) {
		config_fail(x, "%s: %s", path, strerror(e));
		goto out;
	}
	if ((root = json_loadf(fp, JSON_REJECT_DUPLICATES, &je)) == NULL)
		config_syntax(x, path, &je);
out:
	fclose(fp);
	return root;
}

int config_load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	struct config_ctx x;
	json_t *root;
	int rc;

	config_ctx_init(&x, "config: ", "", err, errlen);
	if (path == NULL)
		return config_fail(&x, "no file given");
	if ((root = config_read_file(path, &x)) == NULL)
		return -1;
	rc = config_apply_root(c, root, &x);
	json_decref(root);
	return rc;
}

/* Command-line overrides. */

int config_set_name(struct config *c, const char *name, char *err, size_t errlen)
{
	struct config_ctx x;

	config_ctx_init(&x, "", "--name", err, errlen);
	if (name == NULL || !config_valid_node_name(name))
		return config_expected_str(&x, name, CONFIG_WANT_NAME);
	config_replace(&c->name, name);
	return 0;
}

int config_set_listen(struct config *c, const char *ip_port, char *err, size_t errlen)
{
	struct config_ctx x;
	struct config_addr a;

	config_ctx_init(&x, "", "--listen", err, errlen);
	if (config_parse_ip_port(ip_port, &a) < 0)
		return config_expected_str(&x, ip_port, CONFIG_WANT_IP_PORT);
	free(c->listen_addrs);
	c->listen_addrs = config_xmemdup(&a, 1, sizeof(a));
	c->nlisten_addrs = 1;
	return 0;
}

int config_set_advertise(struct config *c, const char *ip_port, bool replace, char *err,
                         size_t errlen)
{
	struct config_ctx x;
	struct config_addr a, *v;

	config_ctx_init(&x, "", "--advertise", err, errlen);
	if (config_parse_ip_port(ip_port, &a) < 0 || config_ip_wildcard(a.ip))
		return config_expected_str(&x, ip_port,
		                           "IP:PORT that peers can reach (not a wildcard)");
	if (replace)
		c->nadvertise_addrs = 0;
	if (c->nadvertise_addrs >= CONFIG_ADDRS_MAX)
		return config_expected_str(&x, ip_port, "at most 16 advertised addresses");
	v = config_xcalloc(c->nadvertise_addrs + 1, sizeof(*v));
	if (c->nadvertise_addrs)
		memcpy(v, c->advertise_addrs, c->nadvertise_addrs * sizeof(*v));
	v[c->nadvertise_addrs++] = a;
	free(c->advertise_addrs);
	c->advertise_addrs = v;
	return 0;
}

int config_set_socket(struct config *c, const char *path, char *err, size_t errlen)
{
	struct config_ctx x;

	config_ctx_init(&x, "", "--socket", err, errlen);
	if (path == NULL || !config_valid_socket(path))
		return config_expected_str(&x, path, CONFIG_WANT_SOCKET);
	config_replace(&c->ipc.socket, path);
	return 0;
}

int config_add_join(struct config *c, const char *target, char *err, size_t errlen)
{
	struct config_ctx x;
	char **join;

	config_ctx_init(&x, "", "--join", err, errlen);
	if (target == NULL || !config_valid_join(target))
		return config_expected_str(&x, target, CONFIG_WANT_JOIN);
	if ((join = reallocarray(c->join, c->njoin + 1, sizeof(*join))) == NULL)
		config_oom();
	c->join = join;
	c->join[c->njoin++] = config_xstrdup(target);
	return 0;
}

/* Cross-checks. */

/* The file must open for reading and not be a directory. */
static int config_check_readable(struct config_ctx *x, const char *key, const char *file)
{
	int fd, e;

	if ((fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
		e = errno;
	} else {
		e = config_fd_error(fd);
		close(fd);
	}
	if (e == 0)
		return 0;
	config_path_push(x, key);
	return config_fail(x, "%s: %s", file, strerror(e));
}

static int config_finish_tls(const struct config *c, struct config_ctx *x)
{
	const char *which;
	char err[300];

	if (c->tls.cert == NULL || c->tls.key == NULL) {
		config_path_push(x, c->tls.cert == NULL ? "tls.cert" : "tls.key");
		return config_fail(x, "required when tls.enabled is true");
	}
	if (config_check_readable(x, "tls.cert", c->tls.cert) < 0 ||
	    config_check_readable(x, "tls.key", c->tls.key) < 0)
		return -1;
	if (c->tls.ca != NULL && config_check_readable(x, "tls.ca", c->tls.ca) < 0)
		return -1;
	if (c->tls.verify_peer && c->tls.ca == NULL) {
		config_path_push(x, "tls.ca");
		return config_fail(x, "required when tls.verify_peer is true");
	}
	if (keys_check_tls(c->tls.cert, c->tls.key, c->tls.ca, &which, err, sizeof(err)) < 0) {
		config_path_push(x, strcmp(which, "cert") == 0  ? "tls.cert"
		                    : strcmp(which, "key") == 0 ? "tls.key"
		                                                : "tls.ca");
		return config_fail(x, "%s", err);
	}
	return 0;
}

/* The secret file must read as one or two secrets (security.h). */
static int config_finish_secret(const struct config *c, struct config_ctx *x)
{
	struct secrets s;
	char err[300];
	int r = secrets_read(c->secret_file, &s, err, sizeof(err));

	mbedtls_platform_zeroize(&s, sizeof(s));
	if (r == 0)
		return 0;
	config_path_push(x, "cluster.secret_file");
	return config_fail(x, "%s", err);
}

/* ipc.group: a group name, or a number, that exists. */
static int config_finish_group(struct config *c, struct config_ctx *x)
{
	const struct group *g = getgrnam(c->ipc.group);
	char *end;
	unsigned long n = strtoul(c->ipc.group, &end, 10);

	if (g == NULL && *end == '\0' && end != c->ipc.group)
		g = getgrgid((gid_t)n);
	if (g == NULL) {
		config_path_push(x, "ipc.group");
		return config_fail(x, "no such group \"%s\"", c->ipc.group);
	}
	c->ipc.gid = g->gr_gid;
	return 0;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
	struct config_ctx x;

	config_ctx_init(&x, "config: ", "", err, errlen);
	if (c->tls.enabled && config_finish_tls(c, &x) < 0)
		return -1;
	if (c->secret_file != NULL && config_finish_secret(c, &x) < 0)
		return -1;
	if (c->ipc.group != NULL && config_finish_group(c, &x) < 0)
		return -1;
	return 0;
}

/* Dumping. */

const char *config_manager_name(enum manager_kind k)
{
	if ((size_t)k >= CONFIG_NELEM(config_manager_names))
		return "unknown";
	return config_manager_names[k];
}

const char *config_log_level_name(enum log_level l)
{
	if ((size_t)l >= CONFIG_NELEM(config_level_names))
		return "unknown";
	return config_level_names[l];
}

static json_t *config_dump_field(const void *base, const struct config_field *f)
{
	const char *p = (const char *)base + f->off, *n = (const char *)base + f->off_n;

	switch (f->kind) {
	case CK_UINT:
		return json_integer((json_int_t)(*(const unsigned *)(const void *)p));
	case CK_U64:
		return json_integer((json_int_t)(*(const uint64_t *)(const void *)p));
	case CK_BOOL:
		return json_boolean(*(const bool *)(const void *)p);
	case CK_PATH:
		return config_json_string(*(char *const *)(const void *)p);
	case CK_IDS:
		return config_dump_ids(*(unsigned *const *)(const void *)p, *(const size_t *)n);
	case CK_ENUM:
		return json_string(f->names[*(const unsigned *)(const void *)p]);
	case CK_FN:
		return f->dump(base);
	case CK_OBJ:
		return config_dump_object(base, f->sub);
	}
	return NULL;
}

/* Every key of a table, as JSON; NULL on OOM. */
static json_t *config_dump_object(const void *base, const struct config_field *fields)
{
	json_t *o = json_object(), *v;

	for (; o != NULL && fields->key != NULL; fields++) {
		v = config_dump_field(base, fields);
		if (v == NULL || json_object_set_new(o, fields->key, v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static json_t *config_dump_root(const struct config *c)
{
	return config_dump_object(c, config_root_fields);
}

char *config_dump(const struct config *c)
{
	json_t *root = config_dump_root(c);
	char *text, *out = NULL;
	size_t n;

	if (root == NULL)
		return NULL;
	text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2));
	json_decref(root);
	if (text == NULL)
		return NULL;
	n = strlen(text);
	if ((out = realloc(text, n + 2)) == NULL) {
		free(text);
		return NULL;
	}
	out[n] = '\n';
	out[n + 1] = '\0';
	return out;
}

size_t config_channel_index(const struct config *cfg, const char *channel)
{
	if (channel)
		for (size_t i = 0; i < cfg->nchannels; i++)
			if (strcmp(cfg->channels[i].name, channel) == 0)
				return i;
	return 0;
}

void config_diff(const struct config *a, const struct config *b, config_diff_fn fn, void *arg)
{
	json_t *ja = config_dump_root(a), *jb = config_dump_root(b), *va;
	const char *key;

	json_object_foreach(ja, key, va)
	{
		if (!json_equal(va, json_object_get(jb, key)))
			fn(arg, key);
	}
	json_decref(ja);
	json_decref(jb);
}
