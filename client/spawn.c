/* spawn.c: the peer controller (partisan_peer_*), after Erlang's peer module (otpbp_peer):
 * start extra partisand daemons on this host, wait for them to boot, read
 * their node name and port through their control socket, stop them, and
 * keep records of detached ones so that other processes (partisanctl peer
 * list / peer stop) can find them. No threads; nothing aborts. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "partisan/client.h"

#define SPAWN_BOOT_MS      10000 /* default boot timeout */
#define SPAWN_SHUTDOWN_MS  5000  /* default graceful deadline */
#define SPAWN_KILL_WAIT_MS 5000  /* how long SIGKILL may take */
#define SPAWN_PROBE_MS     1000  /* longest one connect attempt may wait */
#define SPAWN_STATE_PROBE  100   /* connect attempt of partisan_peer_state() */
#define SPAWN_POLL_MS      10    /* between probes and exit checks */
#define SPAWN_NAME_LEN     64
#define SPAWN_HOST_LEN     63
#define SPAWN_SUN_MAX      108 /* sizeof(sockaddr_un.sun_path) */
#define SPAWN_REC_MAX      65536
#define SPAWN_EX_USAGE     64
#define SPAWN_EX_CONFIG    78
#define SPAWN_EXEC_FAILED  127

extern char **environ;

struct partisan_peer {
	char *name;   /* short name */
	char *node;   /* NAME@HOST */
	char *sock;   /* DIR/NAME.sock */
	char *log;    /* the daemon's output */
	char *tmpdir; /* the private directory made for it, or NULL */
	char *record; /* STATE/NAME.json of a detached peer, or NULL */
	pid_t pid;
	int port;
	int state;
	int status;  /* once down: exit code, 128 + signal, or -1 unknown */
	bool zombie; /* down but not reaped yet: holds the pid and group */
	bool detached;
	int shutdown_ms;
};

/* What start works with besides the handle. */
struct spawn_ctx {
	const partisan_peer_opts_t *o;
	partisan_peer_t *p;
	const char *host;
	char *daemon; /* resolved binary */
	char *listen; /* IP:0 */
	char statedir[PATH_MAX];
	int boot_ms;
};

/* A record of the state directory. */
struct spawn_rec {
	char *name, *node, *socket, *log, *tmpdir;
	long long pid, port, started;
	bool detached;
};

/* ---- small helpers ----------------------------------------------------- */

static char *spawn_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *spawn_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

static void spawn_err(const struct spawn_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void spawn_err(const struct spawn_ctx *x, const char *fmt, ...)
{
	va_list ap;

	if (x->o->errbuf == NULL || x->o->errbuf_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(x->o->errbuf, x->o->errbuf_len, fmt, ap);
	va_end(ap);
}

static int64_t spawn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void spawn_nap(int64_t ms)
{
	poll(NULL, 0, (int)(ms < 1 ? 1 : ms > SPAWN_POLL_MS ? SPAWN_POLL_MS : ms));
}

static int spawn_errno_code(int e)
{
	switch (e) {
	case ENOENT:
	case ENOTDIR:
		return PARTISAN_ENOENT;
	case EACCES:
	case EPERM:
		return PARTISAN_EPERM;
	case ENOMEM:
		return PARTISAN_ENOMEM;
	default:
		return PARTISAN_EIO;
	}
}

/* A short name: letters, digits and "_.-", not starting with "." or "-". */
static bool spawn_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > SPAWN_NAME_LEN || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("_.-", s[i]) == NULL)
			return false;
	return true;
}

static bool spawn_host_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > SPAWN_HOST_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && strchr(".:-", s[i]) == NULL)
			return false;
	return true;
}

/* Does /proc/PID/cmdline hold an argument equal to arg? */
static bool spawn_cmdline_has(long long pid, const char *arg)
{
	char path[64], *buf = malloc(SPAWN_REC_MAX);
	bool found = false;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%lld/cmdline", pid);
	if (buf == NULL || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		free(buf);
		return false;
	}
	n = read(fd, buf, SPAWN_REC_MAX - 1);
	close(fd);
	if (n > 0)
		buf[n] = '\0';
	for (ssize_t i = 0; i < n && !found; i += (ssize_t)strlen(buf + i) + 1)
		found = strcmp(buf + i, arg) == 0;
	free(buf);
	return found;
}

/* ---- the state directory ----------------------------------------------- */

static int spawn_state_path(char *buf, size_t n)
{
	const char *env = getenv("PARTISAN_PEER_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	int r;

	if (env != NULL && env[0] != '\0')
		r = snprintf(buf, n, "%s", env);
	else if (xdg != NULL && xdg[0] != '\0')
		r = snprintf(buf, n, "%s/partisan-peers", xdg);
	else
		r = snprintf(buf, n, "/tmp/partisan-peers-%u", (unsigned)getuid());
	return r < 0 || (size_t)r >= n ? PARTISAN_EINVAL : 0;
}

/* The state directory into buf, made (0700) when create; it must be this
 * user's and writable by nobody else. */
static int spawn_state_dir(char *buf, size_t n, bool create)
{
	struct stat st;
	int r = spawn_state_path(buf, n);

	if (r < 0)
		return r;
	if (create && mkdir(buf, 0700) < 0 && errno != EEXIST)
		return spawn_errno_code(errno);
	if (lstat(buf, &st) < 0)
		return spawn_errno_code(errno);
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 022) != 0)
		return PARTISAN_EPERM;
	return 0;
}

/* ---- records: flat JSON objects ---------------------------------------- */

static void spawn_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s != NULL && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void spawn_rec_print(FILE *f, const partisan_peer_t *p)
{
	fputs("{\"name\": ", f);
	spawn_json_str(f, p->name);
	fputs(", \"node\": ", f);
	spawn_json_str(f, p->node);
	fprintf(f, ", \"pid\": %d, \"socket\": ", (int)p->pid);
	spawn_json_str(f, p->sock);
	fprintf(f, ", \"port\": %d, \"detached\": %s, \"started\": %lld, \"log\": ", p->port,
	        p->detached ? "true" : "false", (long long)time(NULL));
	spawn_json_str(f, p->log);
	fputs(", \"tmpdir\": ", f);
	spawn_json_str(f, p->tmpdir != NULL ? p->tmpdir : "");
	fputs("}\n", f);
}

/* Write p's record: a temporary file, then rename over NAME.json. */
static int spawn_rec_write(const partisan_peer_t *p)
{
	char *tmp = spawn_printf("%s.%d.tmp", p->record, (int)getpid());
	FILE *f;
	int fd, r = 0;

	if (tmp == NULL)
		return PARTISAN_ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		r = spawn_errno_code(errno);
		if (fd >= 0)
			close(fd);
		free(tmp);
		return r;
	}
	spawn_rec_print(f, p);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		r = PARTISAN_EIO;
	if (fclose(f) != 0 && r == 0)
		r = PARTISAN_EIO;
	if (r == 0 && rename(tmp, p->record) < 0)
		r = spawn_errno_code(errno);
	if (r < 0)
		unlink(tmp);
	free(tmp);
	return r;
}

static const char *jp_ws(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	return s;
}

/* \uXXXX at s (after the u) as UTF-8 at *w; the end of the hex, or NULL. */
static const char *jp_unicode(const char *s, char **w)
{
	unsigned cp = 0;
	char *d = *w;

	for (int i = 0; i < 4; i++, s++) {
		if (!isxdigit((unsigned char)*s))
			return NULL;
		cp = cp * 16 + (unsigned)(isdigit((unsigned char)*s)
		                              ? *s - '0'
		                              : tolower((unsigned char)*s) - 'a' + 10);
	}
	if (cp == 0)
		return NULL;
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xc0 | (cp >> 6));
		*d++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*d++ = (char)(0xe0 | (cp >> 12));
		*d++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*d++ = (char)(0x80 | (cp & 0x3f));
	}
	*w = d;
	return s;
}

static char jp_escape(char c)
{
	switch (c) {
	case 'n':
		return '\n';
	case 't':
		return '\t';
	case 'r':
		return '\r';
	case 'b':
		return '\b';
	case 'f':
		return '\f';
	default:
		return c; /* " \ / */
	}
}

/* The JSON string at s into a new *out; the end, or NULL. */
static const char *jp_string(const char *s, char **out)
{
	char *d, *w;

	if (*s++ != '"' || (d = w = malloc(strlen(s) + 1)) == NULL)
		return NULL;
	while (s != NULL && *s != '\0' && *s != '"') {
		if (*s != '\\') {
			*w++ = *s++;
		} else if (s[1] == 'u') {
			s = jp_unicode(s + 2, &w);
		} else if (s[1] != '\0') {
			*w++ = jp_escape(s[1]);
			s += 2;
		} else {
			s = NULL;
		}
	}
	if (s == NULL || *s != '"') {
		free(d);
		return NULL;
	}
	*w = '\0';
	*out = d;
	return s + 1;
}

static char **spawn_rec_field(struct spawn_rec *r, const char *key)
{
	if (strcmp(key, "name") == 0)
		return &r->name;
	if (strcmp(key, "node") == 0)
		return &r->node;
	if (strcmp(key, "socket") == 0)
		return &r->socket;
	if (strcmp(key, "log") == 0)
		return &r->log;
	if (strcmp(key, "tmpdir") == 0)
		return &r->tmpdir;
	return NULL;
}

static void spawn_rec_scalar(struct spawn_rec *r, const char *key, const char *tok)
{
	if (strcmp(key, "pid") == 0)
		r->pid = strtoll(tok, NULL, 10);
	else if (strcmp(key, "port") == 0)
		r->port = strtoll(tok, NULL, 10);
	else if (strcmp(key, "started") == 0)
		r->started = strtoll(tok, NULL, 10);
	else if (strcmp(key, "detached") == 0)
		r->detached = strcmp(tok, "true") == 0;
}

/* The value of key at s (a string or a scalar); the end, or NULL. */
static const char *jp_value(const char *s, struct spawn_rec *r, const char *key)
{
	char **field = spawn_rec_field(r, key), *v, tok[32];
	size_t n;

	if (*s == '"') {
		if ((s = jp_string(s, &v)) == NULL)
			return NULL;
		if (field != NULL) {
			free(*field);
			*field = v;
		} else {
			free(v);
		}
		return s;
	}
	n = strspn(s, "abcdefghijklmnopqrstuvwxyzE0123456789.+-");
	if (n == 0 || n >= sizeof(tok))
		return NULL;
	memcpy(tok, s, n);
	tok[n] = '\0';
	spawn_rec_scalar(r, key, tok);
	return s + n;
}

static void spawn_rec_free(struct spawn_rec *r)
{
	free(r->name);
	free(r->node);
	free(r->socket);
	free(r->log);
	free(r->tmpdir);
	memset(r, 0, sizeof(*r));
}

/* One "key": value pair at s; the end, or NULL. */
static const char *jp_member(const char *s, struct spawn_rec *r)
{
	char *key;

	if ((s = jp_string(jp_ws(s), &key)) == NULL)
		return NULL;
	s = jp_ws(s);
	s = *s == ':' ? jp_value(jp_ws(s + 1), r, key) : NULL;
	free(key);
	return s != NULL ? jp_ws(s) : NULL;
}

static int spawn_rec_parse(const char *s, struct spawn_rec *r)
{
	memset(r, 0, sizeof(*r));
	s = jp_ws(s);
	if (*s++ != '{')
		return -1;
	while ((s = jp_member(s, r)) != NULL && *s == ',')
		s++;
	if (s == NULL || *s != '}' || r->name == NULL || r->socket == NULL || r->pid <= 0 ||
	    r->pid > INT_MAX) {
		spawn_rec_free(r);
		return -1;
	}
	return 0;
}

/* Read and parse a record: ENOENT when there is none, EIO when bad. */
static int spawn_rec_read(const char *path, struct spawn_rec *r)
{
	char *buf = malloc(SPAWN_REC_MAX);
	ssize_t n = -1;
	int fd, e;

	if (buf == NULL)
		return PARTISAN_ENOMEM;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
		n = read(fd, buf, SPAWN_REC_MAX - 1);
		close(fd);
	}
	e = errno;
	if (n >= 0)
		buf[n] = '\0';
	if (n < 0 || spawn_rec_parse(buf, r) < 0) {
		free(buf);
		return fd < 0 && e == ENOENT ? PARTISAN_ENOENT : PARTISAN_EIO;
	}
	free(buf);
	return 0;
}

/* Is the recorded process alive and still this peer? */
static bool spawn_rec_alive(const struct spawn_rec *r)
{
	if (kill((pid_t)r->pid, 0) < 0 && errno != EPERM)
		return false;
	return spawn_cmdline_has(r->pid, r->socket);
}

/* Remove what a peer leaves: its socket, its private directory with the
 * log made there, and its record. */
static void spawn_files_remove(const char *sock, const char *log, const char *tmpdir,
                               const char *record)
{
	if (sock != NULL)
		unlink(sock);
	if (tmpdir != NULL && tmpdir[0] != '\0') {
		size_t n = strlen(tmpdir);

		if (log != NULL && strncmp(log, tmpdir, n) == 0 && log[n] == '/')
			unlink(log);
		rmdir(tmpdir);
	}
	if (record != NULL)
		unlink(record);
}

/* ---- processes --------------------------------------------------------- */

/* Has the child exited? Leaves it a zombie (holding its pid and process
 * group) until spawn_collect(). */
static bool spawn_exited(partisan_peer_t *p)
{
	siginfo_t si;

	if (p->state == PARTISAN_PEER_DOWN || p->pid <= 0)
		return true;
	si.si_pid = 0;
	if (waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0) {
		if (si.si_pid != p->pid)
			return false;
		p->zombie = true;
		p->status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	} else if (errno == ECHILD) {
		p->status = -1; /* reaped by someone else */
	} else {
		return false;
	}
	p->state = PARTISAN_PEER_DOWN;
	return true;
}

/* Signal the peer's process group (its own pid when it has none). */
static void spawn_signal(const partisan_peer_t *p, int sig)
{
	if (p->pid <= 0 || (p->state == PARTISAN_PEER_DOWN && !p->zombie))
		return; /* its pid may be someone else's by now */
	if (kill(-p->pid, sig) < 0)
		kill(p->pid, sig);
}

/* Reap an exited child, killing what is left of its process group first
 * (a wrapper's children). */
static void spawn_collect(partisan_peer_t *p)
{
	if (!p->zombie || p->pid <= 0)
		return;
	kill(-p->pid, SIGKILL);
	while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
		;
	p->zombie = false;
}

static bool spawn_wait_exit(partisan_peer_t *p, int ms)
{
	int64_t deadline = spawn_now_ms() + ms;

	while (!spawn_exited(p)) {
		int64_t left = deadline - spawn_now_ms();

		if (left <= 0)
			return false;
		spawn_nap(left);
	}
	return true;
}

/* Stop a child: SIGTERM and SIGCONT, SIGKILL after graceful_ms (0: at
 * once), then reap it. */
static int spawn_terminate(partisan_peer_t *p, int graceful_ms)
{
	if (!spawn_exited(p) && graceful_ms > 0) {
		spawn_signal(p, SIGTERM);
		spawn_signal(p, SIGCONT);
		spawn_wait_exit(p, graceful_ms);
	}
	if (!spawn_exited(p)) {
		spawn_signal(p, SIGKILL);
		if (!spawn_wait_exit(p, SPAWN_KILL_WAIT_MS))
			return PARTISAN_ETIMEDOUT;
	}
	spawn_collect(p);
	return 0;
}

static void spawn_free(partisan_peer_t *p)
{
	free(p->name);
	free(p->node);
	free(p->sock);
	free(p->log);
	free(p->tmpdir);
	free(p->record);
	free(p);
}

/* ---- start: names and paths -------------------------------------------- */

int partisan_peer_random_name(const char *prefix, char *buf, size_t n)
{
	static unsigned seq;
	int r;

	if (prefix == NULL)
		prefix = "peer";
	if (buf == NULL || n == 0 || !spawn_name_ok(prefix, strlen(prefix)))
		return PARTISAN_EINVAL;
	r = snprintf(buf, n, "%s-%u-%d", prefix, ++seq, (int)getpid());
	if (r < 0 || (size_t)r >= n || r > SPAWN_NAME_LEN) {
		buf[0] = '\0';
		return PARTISAN_ETOOBIG;
	}
	return 0;
}

static bool spawn_record_exists(const struct spawn_ctx *x, const char *name)
{
	char *path = spawn_printf("%s/%s.json", x->statedir, name);
	bool exists = path == NULL || access(path, F_OK) == 0;

	free(path);
	return exists;
}

/* A random name not yet recorded. */
static int spawn_pick_name(struct spawn_ctx *x)
{
	char buf[SPAWN_NAME_LEN + 1];

	for (int tries = 0; tries < 1000; tries++) {
		if (partisan_peer_random_name(NULL, buf, sizeof(buf)) < 0)
			return PARTISAN_EINVAL;
		if (!x->o->detached || !spawn_record_exists(x, buf))
			break;
	}
	x->p->name = strdup(buf);
	x->p->node = spawn_printf("%s@%s", buf, x->host);
	return x->p->name == NULL || x->p->node == NULL ? PARTISAN_ENOMEM : 0;
}

/* name or NAME@HOST as given. */
static int spawn_given_name(struct spawn_ctx *x)
{
	const char *name = x->o->name, *at = strchr(name, '@');
	size_t len = at != NULL ? (size_t)(at - name) : strlen(name);

	if (!spawn_name_ok(name, len) || (at != NULL && !spawn_host_ok(at + 1))) {
		spawn_err(x, "bad peer name \"%s\"", name);
		return PARTISAN_EINVAL;
	}
	x->p->name = strndup(name, len);
	x->p->node = at != NULL ? strdup(name) : spawn_printf("%s@%s", x->p->name, x->host);
	return x->p->name == NULL || x->p->node == NULL ? PARTISAN_ENOMEM : 0;
}

/* A running recorded peer of that name: EEXIST; a stale record: cleaned. */
static int spawn_claim_record(struct spawn_ctx *x)
{
	partisan_peer_t *p = x->p;
	struct spawn_rec rec;

	if ((p->record = spawn_printf("%s/%s.json", x->statedir, p->name)) == NULL)
		return PARTISAN_ENOMEM;
	if (spawn_rec_read(p->record, &rec) < 0)
		return 0;
	if (spawn_rec_alive(&rec)) {
		spawn_err(x, "peer %s is running already (pid %lld)", p->name, rec.pid);
		spawn_rec_free(&rec);
		free(p->record);
		p->record = NULL;
		return PARTISAN_EEXIST;
	}
	spawn_files_remove(rec.socket, rec.log, rec.tmpdir, NULL);
	spawn_rec_free(&rec);
	return 0;
}

static int spawn_names(struct spawn_ctx *x)
{
	const partisan_peer_opts_t *o = x->o;
	int r;

	x->host = o->host != NULL ? o->host : "127.0.0.1";
	if (!spawn_host_ok(x->host)) {
		spawn_err(x, "bad host \"%s\"", x->host);
		return PARTISAN_EINVAL;
	}
	x->listen = spawn_printf(strchr(x->host, ':') ? "[%s]:0" : "%s:0", x->host);
	if (x->listen == NULL)
		return PARTISAN_ENOMEM;
	if (o->detached && (r = spawn_state_dir(x->statedir, sizeof(x->statedir), true)) < 0) {
		spawn_err(x, "state directory %s: %s", x->statedir,
		          r == PARTISAN_EPERM ? "not a private directory of this user"
		                              : partisan_strerror(r));
		return r;
	}
	r = o->name != NULL ? spawn_given_name(x) : spawn_pick_name(x);
	if (r == 0 && o->detached)
		r = spawn_claim_record(x);
	return r;
}

/* Does a daemon answer on path already? */
static bool spawn_socket_live(const char *path)
{
	partisan_connect_opts_t co = {.client = "partisan-peer", .timeout_ms = SPAWN_PROBE_MS};
	partisan_t *c;

	if (access(path, F_OK) < 0 || partisan_connect_with(path, &co, &c) < 0)
		return false;
	partisan_close(c);
	return true;
}

static int spawn_paths(struct spawn_ctx *x)
{
	const partisan_peer_opts_t *o = x->o;
	partisan_peer_t *p = x->p;
	const char *tmp = getenv("TMPDIR"), *dir = o->socket_dir;

	if (dir == NULL) {
		p->tmpdir = spawn_printf("%s/partisan-peer-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
		if (p->tmpdir == NULL)
			return PARTISAN_ENOMEM;
		if (mkdtemp(p->tmpdir) == NULL) {
			int e = errno;

			spawn_err(x, "cannot make a directory %s: %s", p->tmpdir, strerror(e));
			free(p->tmpdir);
			p->tmpdir = NULL;
			return spawn_errno_code(e);
		}
		dir = p->tmpdir;
	}
	p->sock = spawn_printf("%s/%s.sock", dir, p->name);
	p->log =
	    o->log_file != NULL ? strdup(o->log_file) : spawn_printf("%s/%s.log", dir, p->name);
	if (p->sock == NULL || p->log == NULL)
		return PARTISAN_ENOMEM;
	if (strlen(p->sock) >= SPAWN_SUN_MAX) {
		spawn_err(x, "socket path %s is too long", p->sock);
		return PARTISAN_EINVAL;
	}
	if (o->socket_dir != NULL && spawn_socket_live(p->sock)) {
		spawn_err(x, "a daemon answers on %s already", p->sock);
		return PARTISAN_EEXIST;
	}
	return 0;
}

/* The binary: opts, $PARTISAN_DAEMON, next to this program, or PATH. */
static char *spawn_daemon_path(const partisan_peer_opts_t *o)
{
	const char *env = getenv("PARTISAN_DAEMON");
	char exe[PATH_MAX], *slash, *cand;
	ssize_t n;

	if (o->daemon != NULL && o->daemon[0] != '\0')
		return strdup(o->daemon);
	if (env != NULL && env[0] != '\0')
		return strdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
			cand = spawn_printf("%s/partisand", exe);
			if (cand == NULL || access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
	}
	return strdup("partisand");
}

/* ---- start: the child -------------------------------------------------- */

struct spawn_spawn {
	const char **argv;
	const char **envp;
	int logfd, nullfd, errfd; /* errfd: the write end of the exec-error pipe */
	pid_t parent;
	bool detached;
};

static size_t spawn_vlen(const char *const *v)
{
	size_t n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

static const char **spawn_argv(const struct spawn_ctx *x)
{
	const partisan_peer_opts_t *o = x->o;
	size_t ne = spawn_vlen(o->exec), na = spawn_vlen(o->args), i = 0;
	const char **v = calloc(ne + na + 12, sizeof(*v));

	if (v == NULL)
		return NULL;
	for (size_t k = 0; k < ne; k++)
		v[i++] = o->exec[k];
	v[i++] = x->daemon;
	v[i++] = "-f";
	v[i++] = "--name";
	v[i++] = x->p->node;
	v[i++] = "--listen";
	v[i++] = x->listen;
	v[i++] = "--socket";
	v[i++] = x->p->sock;
	if (o->config != NULL) {
		v[i++] = "-c";
		v[i++] = o->config;
	}
	for (size_t k = 0; k < na; k++)
		v[i++] = o->args[k];
	return v;
}

static size_t spawn_keylen(const char *kv)
{
	const char *eq = strchr(kv, '=');

	return eq != NULL ? (size_t)(eq - kv) : strlen(kv);
}

/* Is the key of kv set by one of the extras (or NOTIFY_SOCKET)? */
static bool spawn_env_replaced(const char *kv, const char *const *extra)
{
	size_t n = spawn_keylen(kv);

	if (n == 13 && strncmp(kv, "NOTIFY_SOCKET", 13) == 0)
		return true;
	for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
		if (spawn_keylen(extra[i]) == n && strncmp(kv, extra[i], n) == 0)
			return true;
	return false;
}

static int spawn_envp(const struct spawn_ctx *x, const char ***out)
{
	const char *const *extra = x->o->env;
	size_t ne = spawn_vlen((const char *const *)environ), nx = spawn_vlen(extra), i = 0;
	const char **v;

	for (size_t k = 0; k < nx; k++)
		if (strchr(extra[k], '=') == NULL || extra[k][0] == '=') {
			spawn_err(x, "bad environment entry \"%s\"", extra[k]);
			return PARTISAN_EINVAL;
		}
	if ((v = calloc(ne + nx + 1, sizeof(*v))) == NULL)
		return PARTISAN_ENOMEM;
	for (size_t k = 0; k < ne; k++)
		if (!spawn_env_replaced(environ[k], extra))
			v[i++] = environ[k];
	for (size_t k = 0; k < nx; k++)
		v[i++] = extra[k];
	*out = v;
	return 0;
}

/* Mark every descriptor above stderr close-on-exec. */
static void spawn_cloexec_all(void)
{
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) == 0)
		return;
#endif
	for (int fd = 3; fd < 1024; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static void spawn_child_signals(void)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD};
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* In the child: only async-signal-safe calls until exec. */
static void spawn_child(const struct spawn_spawn *s) __attribute__((noreturn));

static void spawn_child(const struct spawn_spawn *s)
{
	int e;

	if (s->detached) {
		setsid();
	} else {
		setpgid(0, 0);
		/* Stop when the controller goes; it may have gone already. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != s->parent)
			_exit(SPAWN_EXEC_FAILED);
	}
	spawn_child_signals();
	if (dup2(s->nullfd, STDIN_FILENO) < 0 || dup2(s->logfd, STDOUT_FILENO) < 0 ||
	    dup2(s->logfd, STDERR_FILENO) < 0) {
		e = errno;
	} else {
		for (int fd = 0; fd <= 2; fd++)
			fcntl(fd, F_SETFD, 0); /* dup2 onto itself keeps close-on-exec */
		spawn_cloexec_all();
		execvpe(s->argv[0], (char *const *)s->argv, (char *const *)s->envp);
		e = errno;
	}
	if (write(s->errfd, &e, sizeof(e)) < 0)
		_exit(SPAWN_EXEC_FAILED);
	_exit(SPAWN_EXEC_FAILED);
}

/* After fork: did exec fail? Reads the error pipe until exec closes it. */
static int spawn_exec_result(struct spawn_ctx *x, int rfd)
{
	int e = 0;
	ssize_t n;

	while ((n = read(rfd, &e, sizeof(e))) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(e))
		return 0;
	spawn_err(x, "cannot run %s: %s", x->o->exec && x->o->exec[0] ? x->o->exec[0] : x->daemon,
	          strerror(e));
	x->p->state = PARTISAN_PEER_BOOTING;
	spawn_terminate(x->p, 0);
	return spawn_errno_code(e);
}

static int spawn_fork(struct spawn_ctx *x, struct spawn_spawn *s)
{
	int pfd[2], r;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return spawn_errno_code(errno);
	s->errfd = pfd[1];
	x->p->pid = fork();
	if (x->p->pid == 0)
		spawn_child(s);
	r = x->p->pid < 0 ? errno : 0;
	close(pfd[1]);
	if (r != 0) {
		close(pfd[0]);
		spawn_err(x, "fork: %s", strerror(r));
		return spawn_errno_code(r);
	}
	if (!s->detached)
		setpgid(x->p->pid, x->p->pid); /* the child does it too: no race */
	r = spawn_exec_result(x, pfd[0]);
	close(pfd[0]);
	return r;
}

static int spawn_spawn(struct spawn_ctx *x)
{
	struct spawn_spawn s = {.parent = getpid(), .detached = x->o->detached, .logfd = -1};
	int r;

	if ((x->daemon = spawn_daemon_path(x->o)) == NULL || (s.argv = spawn_argv(x)) == NULL)
		return PARTISAN_ENOMEM;
	if ((r = spawn_envp(x, &s.envp)) < 0) {
		free(s.argv);
		return r;
	}
	s.logfd = open(x->p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	s.nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (s.logfd < 0 || s.nullfd < 0) {
		r = spawn_errno_code(errno);
		spawn_err(x, "cannot open %s: %s", s.logfd < 0 ? x->p->log : "/dev/null",
		          strerror(errno));
	} else {
		r = spawn_fork(x, &s);
	}
	if (s.logfd >= 0)
		close(s.logfd);
	if (s.nullfd >= 0)
		close(s.nullfd);
	free(s.argv);
	free(s.envp);
	return r;
}

/* ---- start: waiting for boot ------------------------------------------- */

/* The last non-empty line of the log into buf. */
static void spawn_log_tail(const char *path, char *buf, size_t n)
{
	char tail[1024];
	ssize_t len = 0;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *start;

	buf[0] = '\0';
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(tail) - 1)
		lseek(fd, st.st_size - (off_t)sizeof(tail) + 1, SEEK_SET);
	len = read(fd, tail, sizeof(tail) - 1);
	close(fd);
	while (len > 0 && isspace((unsigned char)tail[len - 1]))
		len--;
	if (len <= 0)
		return;
	tail[len] = '\0';
	start = strrchr(tail, '\n');
	start = start != NULL ? start + 1 : tail;
	len = (ssize_t)strlen(start);
	if ((size_t)len >= n)
		len = (ssize_t)n - 1;
	memcpy(buf, start, (size_t)len);
	buf[len] = '\0';
}

static int spawn_boot_failed(struct spawn_ctx *x)
{
	partisan_peer_t *p = x->p;
	char line[512];
	int st = p->status;

	spawn_collect(p);
	spawn_log_tail(p->log, line, sizeof(line));
	if (st < 0)
		spawn_err(x, "%s exited while booting%s%s", x->daemon, line[0] ? ": " : "", line);
	else if (st > 128)
		spawn_err(x, "%s was killed by signal %d while booting%s%s", x->daemon, st - 128,
		          line[0] ? ": " : "", line);
	else
		spawn_err(x, "%s exited with status %d while booting%s%s", x->daemon, st,
		          line[0] ? ": " : "", line);
	return st == SPAWN_EX_CONFIG || st == SPAWN_EX_USAGE ? PARTISAN_EINVAL : PARTISAN_EIO;
}

/* One attempt to talk to the peer: 0 running (node and port read), 1 not
 * yet, or a fatal error. */
static int spawn_probe(partisan_peer_t *p, int64_t wait_ms)
{
	partisan_connect_opts_t co = {.client = "partisan-peer"};
	char node[PARTISAN_NODE_MAX];
	partisan_node_spec_t *spec = NULL;
	partisan_t *c;
	int r;

	co.timeout_ms = (int)(wait_ms < 1                ? 1
	                      : wait_ms > SPAWN_PROBE_MS ? SPAWN_PROBE_MS
	                                                 : wait_ms);
	r = partisan_connect_with(p->sock, &co, &c);
	if (r == PARTISAN_EIO || r == PARTISAN_ETIMEDOUT || r == PARTISAN_ECLOSED)
		return 1;
	if (r < 0)
		return r;
	if ((r = partisan_node(c, node, sizeof(node))) == 0)
		r = partisan_node_spec(c, &spec);
	partisan_close(c);
	if (r < 0)
		return r == PARTISAN_ENOMEM ? r : 1;
	if (spec->n_addrs > 0)
		p->port = spec->addrs[0].port;
	partisan_node_spec_free(spec);
	free(p->node);
	if ((p->node = strdup(node)) == NULL)
		return PARTISAN_ENOMEM;
	p->state = PARTISAN_PEER_RUNNING;
	return 0;
}

static int spawn_boot(struct spawn_ctx *x)
{
	partisan_peer_t *p = x->p;
	int64_t deadline = spawn_now_ms() + x->boot_ms;
	int r;

	for (;;) {
		int64_t left = deadline - spawn_now_ms();

		if (spawn_exited(p))
			return spawn_boot_failed(x);
		if ((r = spawn_probe(p, left)) <= 0) {
			if (r < 0)
				spawn_err(x, "%s: %s", p->sock, partisan_strerror(r));
			return r;
		}
		if ((left = deadline - spawn_now_ms()) <= 0)
			break;
		spawn_nap(left);
	}
	spawn_err(x, "%s did not answer on %s within %d ms", x->daemon, p->sock, x->boot_ms);
	return PARTISAN_ETIMEDOUT;
}

static int spawn_check_opts(struct spawn_ctx *x)
{
	const partisan_peer_opts_t *o = x->o;

	if (o->shutdown_ms < 0 || (o->detached && o->boot_timeout_ms < 0)) {
		spawn_err(x, "%s",
		          o->shutdown_ms < 0 ? "negative shutdown_ms"
		                             : "a detached peer must be waited for");
		return PARTISAN_EINVAL;
	}
	x->boot_ms = o->boot_timeout_ms != 0 ? o->boot_timeout_ms : SPAWN_BOOT_MS;
	x->p->shutdown_ms = o->shutdown_ms != 0 ? o->shutdown_ms : SPAWN_SHUTDOWN_MS;
	x->p->detached = o->detached;
	x->p->state = PARTISAN_PEER_DOWN;
	return 0;
}

static int spawn_launch(struct spawn_ctx *x)
{
	int r;

	if ((r = spawn_check_opts(x)) < 0 || (r = spawn_names(x)) < 0 || (r = spawn_paths(x)) < 0)
		return r;
	if ((r = spawn_spawn(x)) < 0)
		return r;
	x->p->state = PARTISAN_PEER_BOOTING;
	if (x->boot_ms > 0 && (r = spawn_boot(x)) < 0)
		return r;
	if (x->o->detached && (r = spawn_rec_write(x->p)) < 0)
		spawn_err(x, "cannot write %s: %s", x->p->record, partisan_strerror(r));
	return r;
}

int partisan_peer_start(const partisan_peer_opts_t *opts, partisan_peer_t **out)
{
	struct spawn_ctx x = {.o = opts};
	int r;

	if (out != NULL)
		*out = NULL;
	if (opts == NULL || out == NULL)
		return PARTISAN_EINVAL;
	if (opts->errbuf != NULL && opts->errbuf_len > 0)
		opts->errbuf[0] = '\0';
	if ((x.p = calloc(1, sizeof(*x.p))) == NULL)
		return PARTISAN_ENOMEM;
	r = spawn_launch(&x);
	if (r < 0) {
		if (x.p->state != PARTISAN_PEER_DOWN || x.p->zombie)
			spawn_terminate(x.p, 0);
		/* The socket is its to remove only when it was started. */
		spawn_files_remove(x.p->pid > 0 ? x.p->sock : NULL, x.p->log, x.p->tmpdir, NULL);
		spawn_free(x.p);
	} else {
		*out = x.p;
	}
	free(x.daemon);
	free(x.listen);
	return r;
}

/* ---- a started peer ---------------------------------------------------- */

int partisan_peer_stop(partisan_peer_t *p, int mode)
{
	int r;

	if (p == NULL || (mode != PARTISAN_PEER_STOP_GRACEFUL && mode != PARTISAN_PEER_STOP_KILL))
		return PARTISAN_EINVAL;
	r = spawn_terminate(p, mode == PARTISAN_PEER_STOP_KILL ? 0 : p->shutdown_ms);
	if (r == 0)
		spawn_files_remove(p->sock, p->log, p->tmpdir, p->record);
	spawn_free(p);
	return r;
}

int partisan_peer_release(partisan_peer_t *p)
{
	if (p == NULL)
		return PARTISAN_EINVAL;
	if (spawn_exited(p))
		spawn_collect(p);
	spawn_free(p);
	return 0;
}

int partisan_peer_state(partisan_peer_t *p)
{
	if (p == NULL)
		return PARTISAN_EINVAL;
	if (!spawn_exited(p) && p->state == PARTISAN_PEER_BOOTING)
		spawn_probe(p, SPAWN_STATE_PROBE);
	return p->state;
}

const char *partisan_peer_state_name(int state)
{
	switch (state) {
	case PARTISAN_PEER_BOOTING:
		return "booting";
	case PARTISAN_PEER_RUNNING:
		return "running";
	case PARTISAN_PEER_DOWN:
		return "down";
	default:
		return "unknown";
	}
}

int partisan_peer_exit_status(partisan_peer_t *p)
{
	if (p == NULL)
		return PARTISAN_EINVAL;
	if (!spawn_exited(p))
		return PARTISAN_EAGAIN;
	return p->status >= 0 ? p->status : PARTISAN_EIO;
}

const char *partisan_peer_name(const partisan_peer_t *p)
{
	return p != NULL ? p->name : NULL;
}

const char *partisan_peer_node(const partisan_peer_t *p)
{
	return p != NULL ? p->node : NULL;
}

const char *partisan_peer_socket(const partisan_peer_t *p)
{
	return p != NULL ? p->sock : NULL;
}

const char *partisan_peer_log(const partisan_peer_t *p)
{
	return p != NULL ? p->log : NULL;
}

int partisan_peer_pid(const partisan_peer_t *p)
{
	return p != NULL ? (int)p->pid : PARTISAN_EINVAL;
}

int partisan_peer_port(const partisan_peer_t *p)
{
	if (p == NULL)
		return PARTISAN_EINVAL;
	return p->state == PARTISAN_PEER_BOOTING || p->port == 0 ? PARTISAN_EAGAIN : p->port;
}

int partisan_peer_connect(partisan_peer_t *p, partisan_t **out)
{
	if (out != NULL)
		*out = NULL;
	if (p == NULL || out == NULL)
		return PARTISAN_EINVAL;
	if (spawn_exited(p))
		return PARTISAN_ENOCONNECTION;
	return partisan_connect(p->sock, out);
}

/* ---- recorded peers ---------------------------------------------------- */

static int spawn_info_cmp(const void *a, const void *b)
{
	return strcmp(((const partisan_peer_info_t *)a)->name,
	              ((const partisan_peer_info_t *)b)->name);
}

/* Move a record into an info entry (the strings change hands). */
static void spawn_info_from(partisan_peer_info_t *i, struct spawn_rec *r)
{
	i->state = spawn_rec_alive(r) ? PARTISAN_PEER_RUNNING : PARTISAN_PEER_DOWN;
	i->name = r->name;
	i->node = r->node != NULL ? r->node : strdup("");
	i->socket = r->socket;
	i->log = r->log != NULL ? r->log : strdup("");
	i->pid = (int)r->pid;
	i->port = r->port > 0 && r->port <= 65535 ? (int)r->port : 0;
	i->detached = r->detached;
	i->started = r->started;
	free(r->tmpdir);
	memset(r, 0, sizeof(*r));
}

static bool spawn_is_record(const char *file)
{
	size_t n = strlen(file);

	return file[0] != '.' && n > 5 && strcmp(file + n - 5, ".json") == 0;
}

/* Add dir/file to the list if it is a good record. */
static int spawn_list_add(partisan_peer_list_t *l, const char *dir, const char *file, size_t *cap)
{
	char *path = spawn_printf("%s/%s", dir, file);
	struct spawn_rec rec;
	int r;

	if (path == NULL)
		return PARTISAN_ENOMEM;
	r = spawn_rec_read(path, &rec);
	free(path);
	if (r == PARTISAN_ENOMEM)
		return r;
	if (r < 0)
		return 0;
	if (l->n == *cap) {
		partisan_peer_info_t *v = reallocarray(l->v, *cap ? 2 * *cap : 8, sizeof(*v));

		if (v == NULL) {
			spawn_rec_free(&rec);
			return PARTISAN_ENOMEM;
		}
		l->v = v;
		*cap = *cap ? 2 * *cap : 8;
	}
	spawn_info_from(&l->v[l->n], &rec);
	if (l->v[l->n].node == NULL || l->v[l->n].log == NULL) {
		l->n++;
		return PARTISAN_ENOMEM;
	}
	l->n++;
	return 0;
}

int partisan_peer_list(partisan_peer_list_t *out)
{
	char dir[PATH_MAX];
	struct dirent *e;
	size_t cap = 0;
	DIR *d;
	int r;

	if (out == NULL)
		return PARTISAN_EINVAL;
	memset(out, 0, sizeof(*out));
	if ((r = spawn_state_dir(dir, sizeof(dir), false)) < 0)
		return r == PARTISAN_ENOENT ? 0 : r;
	if ((d = opendir(dir)) == NULL)
		return spawn_errno_code(errno);
	while (r == 0 && (e = readdir(d)) != NULL)
		if (spawn_is_record(e->d_name))
			r = spawn_list_add(out, dir, e->d_name, &cap);
	closedir(d);
	if (r < 0) {
		partisan_peer_list_free(out);
		return r;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), spawn_info_cmp);
	return 0;
}

void partisan_peer_list_free(partisan_peer_list_t *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].node);
		free(l->v[i].socket);
		free(l->v[i].log);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Gone: reaped here (when it is this process's child) or no longer it. */
static bool spawn_rec_gone(const struct spawn_rec *r)
{
	if (waitpid((pid_t)r->pid, NULL, WNOHANG) == (pid_t)r->pid)
		return true;
	return !spawn_rec_alive(r);
}

static bool spawn_rec_wait(const struct spawn_rec *r, int ms)
{
	int64_t deadline = spawn_now_ms() + ms;

	while (!spawn_rec_gone(r)) {
		int64_t left = deadline - spawn_now_ms();

		if (left <= 0)
			return false;
		spawn_nap(left);
	}
	return true;
}

/* Signal a recorded peer's process group (it leads its own session). */
static int spawn_rec_signal(const struct spawn_rec *r, int sig)
{
	if (kill((pid_t)-r->pid, sig) == 0 || kill((pid_t)r->pid, sig) == 0)
		return 0;
	return errno == ESRCH ? 0 : spawn_errno_code(errno);
}

static int spawn_rec_terminate(const struct spawn_rec *r, int graceful_ms)
{
	int e;

	if (spawn_rec_gone(r))
		return 0;
	if (graceful_ms > 0) {
		if ((e = spawn_rec_signal(r, SIGTERM)) < 0)
			return e;
		spawn_rec_signal(r, SIGCONT);
		if (spawn_rec_wait(r, graceful_ms))
			return 0;
	}
	if ((e = spawn_rec_signal(r, SIGKILL)) < 0)
		return e;
	return spawn_rec_wait(r, SPAWN_KILL_WAIT_MS) ? 0 : PARTISAN_ETIMEDOUT;
}

int partisan_peer_stop_name(const char *name, int mode, int deadline_ms)
{
	char dir[PATH_MAX], *path;
	struct spawn_rec rec;
	int r;

	if (name == NULL || !spawn_name_ok(name, strlen(name)) || deadline_ms < 0 ||
	    (mode != PARTISAN_PEER_STOP_GRACEFUL && mode != PARTISAN_PEER_STOP_KILL))
		return PARTISAN_EINVAL;
	if ((r = spawn_state_dir(dir, sizeof(dir), false)) < 0)
		return r;
	if ((path = spawn_printf("%s/%s.json", dir, name)) == NULL)
		return PARTISAN_ENOMEM;
	if ((r = spawn_rec_read(path, &rec)) == 0) {
		if (deadline_ms == 0)
			deadline_ms = SPAWN_SHUTDOWN_MS;
		r = spawn_rec_terminate(&rec, mode == PARTISAN_PEER_STOP_KILL ? 0 : deadline_ms);
		if (r == 0)
			spawn_files_remove(rec.socket, rec.log, rec.tmpdir, path);
		spawn_rec_free(&rec);
	}
	free(path);
	return r;
}
