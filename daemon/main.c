/* main.c: partisand's entry point: flags, config, start-up, signals, the
 * periodic tick, systemd readiness, and an orderly shutdown. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ipc.h"
#include "log.h"
#include "security.h"
#include "peer.h"
#include "router.h"

#define EX_USAGE_  64
#define EX_CONFIG_ 78

#define DAEMON_MMAP_THRESHOLD (32 * 1024 * 1024)
#define DAEMON_TRIM_THRESHOLD (32 * 1024 * 1024)
#define DAEMON_TRIM_TICKS     50 /* give freed heap memory back every 5 s */
#define DAEMON_SPIN_US        50 /* busy poll after traffic, see daemon_loop */
#define PARTISAN_VERSION      "0.1.0"
#define JOIN_RETRY_MS         1000

struct opts {
	const char *config_file;
	bool foreground;
	bool check_config;
};

/* A join named in the config or on the command line, retried until made. */
struct boot_join {
	char *target;
	bool done, probing;
	uint64_t next_try;
	struct daemon *d;
};

static struct boot_join *boot_joins;
static size_t nboot_joins;

static void usage(FILE *f)
{
	fputs("usage: partisand [-c FILE] [-f|--foreground] [--name NAME@HOST] [--listen IP:PORT]\n"
	      "                 [--advertise IP:PORT]... [--socket PATH]\n"
	      "                 [--join NAME@HOST:PORT|HOST:PORT]...\n"
	      "                 [--check-config] [--version] [-h]\n",
	      f);
}

static void die_config(const char *err)
{
	fprintf(stderr, "partisand: %s\n", err);
	exit(EX_CONFIG_);
}

enum { OPT_NAME = 256, OPT_LISTEN, OPT_ADVERTISE, OPT_SOCKET, OPT_JOIN, OPT_CHECK, OPT_VERSION };

static const struct option long_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"foreground", no_argument, NULL, 'f'},
    {"name", required_argument, NULL, OPT_NAME},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"advertise", required_argument, NULL, OPT_ADVERTISE},
    {"socket", required_argument, NULL, OPT_SOCKET},
    {"join", required_argument, NULL, OPT_JOIN},
    {"check-config", no_argument, NULL, OPT_CHECK},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static struct config *running_cfg; /* what d->cfg points to, for a reload */
static int saved_argc;
static char **saved_argv;
static const char *config_path; /* NULL: defaults and flags only */

/* The defaults, then the file, then the flags over it; validated whole.
 * 0, or -1 with the reason in err and *cfg released. */
static int build_config(int argc, char **argv, const char *file, struct config *cfg, char *err,
                        size_t errlen)
{
	bool advertised = false; /* the first --advertise replaces the file's list */
	int ch, r = 0;

	config_defaults(cfg);
	if (file && config_load_file(cfg, file, err, errlen) < 0)
		r = -1;
	optind = 1;
	while (r == 0 && (ch = getopt_long(argc, argv, "c:fh", long_opts, NULL)) != -1) {
		if (ch == OPT_NAME) {
			r = config_set_name(cfg, optarg, err, errlen);
		} else if (ch == OPT_LISTEN) {
			r = config_set_listen(cfg, optarg, err, errlen);
		} else if (ch == OPT_ADVERTISE) {
			r = config_set_advertise(cfg, optarg, !advertised, err, errlen);
			advertised = true;
		} else if (ch == OPT_SOCKET) {
			r = config_set_socket(cfg, optarg, err, errlen);
		} else if (ch == OPT_JOIN) {
			r = config_add_join(cfg, optarg, err, errlen);
		}
	}
	if (r == 0)
		r = config_finish(cfg, err, errlen);
	if (r < 0)
		config_free(cfg);
	return r;
}

/* Read the config file, then apply the flags over it (a second pass). */
static void load_config(int argc, char **argv, struct config *cfg, struct opts *o)
{
	char err[CONFIG_ERR_MAX];
	int ch;

	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "c:fh", long_opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config_file = optarg;
			break;
		case 'f':
			o->foreground = true;
			break;
		case OPT_CHECK:
			o->check_config = true;
			break;
		case OPT_VERSION:
			printf("partisand %s\n", PARTISAN_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		case OPT_NAME:
		case OPT_LISTEN:
		case OPT_ADVERTISE:
		case OPT_SOCKET:
		case OPT_JOIN:
			break;
		default:
			usage(stderr);
			exit(EX_USAGE_);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "partisand: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		exit(EX_USAGE_);
	}
	if (o->config_file == NULL && access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		o->config_file = CONFIG_DEFAULT_PATH;
	if (build_config(argc, argv, o->config_file, cfg, err, sizeof(err)) < 0)
		die_config(err);
	saved_argc = argc;
	saved_argv = argv;
	config_path = o->config_file;
}
/* ---- boot joins ---- */

static void boot_join_probed(struct daemon *d, void *arg, const struct node_spec *spec,
                             const char *why, bool final)
{
	struct boot_join *j = arg;

	(void) final; /* a contact of the join list is retried whatever it said */
	j->probing = false;
	if (spec == NULL) {
		log_info("main", "join %s: %s; will retry", j->target, why);
		return;
	}
	j->done = true;
	log_info("main", "joining %s through %s", spec->name, j->target);
	daemon_join_spec(d, spec);
}

/* A contact to join, tried until one answers (unless it is there already). */
static void boot_join_add(struct daemon *d, const char *target)
{
	for (size_t i = 0; i < nboot_joins; i++)
		if (strcmp(boot_joins[i].target, target) == 0)
			return;
	boot_joins = xrealloc(boot_joins, (nboot_joins + 1) * sizeof(*boot_joins));
	boot_joins[nboot_joins++] = (struct boot_join){.target = xstrdup(target), .d = d};
}

static void boot_joins_run(struct daemon *d, uint64_t now)
{
	for (size_t i = 0; i < nboot_joins; i++) {
		struct boot_join *j = &boot_joins[i];
		char name[300], ip[64];
		uint16_t port;

		if (j->done || j->probing || now < j->next_try || d->stopped)
			continue;
		j->next_try = now + JOIN_RETRY_MS;
		if (peer_parse_target(j->target, name, sizeof(name), ip, sizeof(ip), &port) < 0) {
			log_warnx("main", "join %s: cannot resolve; will retry", j->target);
			continue;
		}
		if (peer_probe(d, ip, port, 0, boot_join_probed, j) == 0)
			j->probing = true;
	}
}

/* ---- the loop ---- */

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The event loop, with a short busy poll after traffic: for DAEMON_SPIN_US
 * after a read the loop polls without sleeping (yielding the CPU to
 * whoever is runnable), so the answer to what it just sent, the usual next
 * event of a request/reply exchange, finds it awake; on a virtual machine
 * waking a halted CPU costs more than the whole exchange. An idle daemon
 * sleeps as before: ticks and timers do not start a spin. */
static void daemon_loop(struct daemon *d)
{
	uint64_t spin_until = 0;

	while (!event_base_got_break(d->base) && !event_base_got_exit(d->base)) {
		uint64_t turn = d->turn;
		bool spin = spin_until != 0 && mono_us() < spin_until;

		if (event_base_loop(d->base, spin ? EVLOOP_NONBLOCK : EVLOOP_ONCE) != 0)
			break; /* an error, or nothing left to wait for */
		if (d->turn != turn)
			spin_until = mono_us() + DAEMON_SPIN_US;
		else if (spin)
			sched_yield();
	}
}

/* ---- events ---- */

/* The tick fires on multiples of DAEMON_TICK_MS of the monotonic clock,
 * not every DAEMON_TICK_MS from whenever the daemon started: the daemons of
 * one host then wake together, and what they send each other on a tick
 * (heartbeats) is read in the same wakeup. */
static void tick_schedule(struct daemon *d)
{
	uint64_t now = daemon_now_ms();
	uint64_t wait = DAEMON_TICK_MS - now % DAEMON_TICK_MS;
	struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};

	event_add(d->tick_ev, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	uint64_t now = daemon_now_ms();

	tick_schedule(d);
	if (++d->ticks % DAEMON_TRIM_TICKS == 0)
		malloc_trim(0);
	daemon_tick(d, now);
	boot_joins_run(d, now);
}

/* What a reload found changed. */
struct reload {
	char applied[256], restart[512];
	bool cluster_safe; /* of cluster, only secret_file changed */
};

static bool reload_safe(const char *key)
{
	/* tls and the secret file: security_reload read them again. */
	static const char *const keys[] = {"log", "join", "failure_timeout_ms",
	                                   "connect_timeout_ms", "tls"};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

static void reload_note(void *arg, const char *key)
{
	struct reload *r = arg;
	bool safe = reload_safe(key) || (strcmp(key, "cluster") == 0 && r->cluster_safe);
	char *list = safe ? r->applied : r->restart;
	size_t n = safe ? sizeof(r->applied) : sizeof(r->restart);

	snprintf(list + strlen(list), n - strlen(list), "%s%s", list[0] ? ", " : "", key);
}

static void swap_str(char **a, char **b)
{
	char *t = *a;

	*a = *b, *b = t;
}

/* The running config takes the security files security_reload read. */
static void swap_security(struct config *a, struct config *b)
{
	swap_str(&a->secret_file, &b->secret_file);
	swap_str(&a->tls.cert, &b->tls.cert);
	swap_str(&a->tls.key, &b->tls.key);
	swap_str(&a->tls.ca, &b->tls.ca);
	a->tls.verify_peer = b->tls.verify_peer;
}

/* SIGHUP: read the config again. A config that does not validate is
 * refused whole; of a valid one, the keys that can change safely take
 * effect (log.level, join: new contacts are tried, failure_timeout_ms,
 * connect_timeout_ms, the TLS files and the secret file: for the links
 * opened from now on) and the others are named as needing a restart. */
static void reload(struct daemon *d, struct config *cfg)
{
	struct config fresh;
	struct reload r;
	char err[CONFIG_ERR_MAX];
	char **join;
	size_t njoin;

	memset(&r, 0, sizeof(r));
	if (build_config(saved_argc, saved_argv, config_path, &fresh, err, sizeof(err)) < 0) {
		log_error("main", "reload refused, the running config stays: %s", err);
		return;
	}
	if (security_reload(d, &fresh, err, sizeof(err)) < 0) {
		log_error("main", "reload refused, the running config stays: %s", err);
		config_free(&fresh);
		return;
	}
	r.cluster_safe =
	    strcmp(cfg->cluster_name, fresh.cluster_name) == 0 && cfg->insecure == fresh.insecure;
	config_diff(cfg, &fresh, reload_note, &r);
	cfg->log_level = fresh.log_level;
	log_set_level(cfg->log_level);
	cfg->failure_timeout_ms = fresh.failure_timeout_ms;
	cfg->connect_timeout_ms = fresh.connect_timeout_ms;
	swap_security(cfg, &fresh); /* the files security_reload read */
	join = cfg->join, njoin = cfg->njoin;
	cfg->join = fresh.join, cfg->njoin = fresh.njoin;
	fresh.join = join, fresh.njoin = njoin; /* freed with fresh */
	for (size_t i = 0; i < cfg->njoin; i++)
		boot_join_add(d, cfg->join[i]);
	config_free(&fresh);
	log_notice("main", "reloaded %s: %s", config_path ? config_path : "(no config file)",
	           r.applied[0] ? r.applied : "nothing changed");
	if (r.restart[0])
		log_warnx("main", "reload: %s changed but take effect only at a restart",
		          r.restart);
	boot_joins_run(d, daemon_now_ms());
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	if (sig == SIGHUP) {
		log_reopen();
		reload(d, running_cfg);
		return;
	}
	log_info("main", "signal %d: shutting down", (int)sig);
	event_base_loopbreak(d->base);
}

static void sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	size_t n;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    (n = strlen(path)) >= sizeof(sun.sun_path))
		return;
	memcpy(sun.sun_path, path, n);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&sun,
	           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("main", "sd_notify");
	close(fd);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void detach(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		perror("partisand: fork");
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (fd > 2)
			close(fd);
	}
}

static int run(struct daemon *d, const struct opts *o)
{
	struct event *sigs[3];
	const int signos[3] = {SIGTERM, SIGINT, SIGHUP};

	for (int i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(d->base, signos[i], on_signal, d);
		event_add(sigs[i], NULL);
	}
	d->tick_ev = evtimer_new(d->base, on_tick, d);
	tick_schedule(d);
	d->start_ms = daemon_now_ms();
	for (size_t i = 0; i < d->cfg->njoin; i++)
		boot_join_add(d, d->cfg->join[i]);
	boot_joins_run(d, d->start_ms);
	log_notice("main", "%s running (%s, cluster %s)", d->self->name,
	           config_manager_name(d->cfg->manager), d->cfg->cluster_name);
	if (!o->foreground)
		detach();
	sd_notify_ready();
	daemon_loop(d);
	for (int i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_free(d->tick_ev);
	d->tick_ev = NULL;
	for (size_t i = 0; i < nboot_joins; i++)
		free(boot_joins[i].target);
	free(boot_joins);
	return 0;
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct opts o;
	struct daemon d;
	uint64_t seed;
	int rc;

	/* Big messages (up to max_frame_bytes) are allocated and freed at line
	 * rate: keep such blocks in the heap instead of a fresh mmap, page
	 * faults and zeroing for each; an idle tick gives the memory back. */
	mallopt(M_MMAP_THRESHOLD, DAEMON_MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, DAEMON_TRIM_THRESHOLD);
	load_config(argc, argv, &cfg, &o);
	if (o.check_config) {
		printf("partisand: config OK\n");
		config_free(&cfg);
		return 0;
	}
	if (daemon_manager_for(cfg.manager) == NULL) {
		fprintf(stderr,
		        "partisand: config: peer_service_manager: %s is not available in "
		        "this build\n",
		        config_manager_name(cfg.manager));
		config_free(&cfg);
		return EX_CONFIG_;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	log_init(cfg.log_level);
	running_cfg = &cfg;
	seed = daemon_now_ms() ^ ((uint64_t)getpid() << 32);
	rc = daemon_open(&d, &cfg, seed) == 0 ? run(&d, &o) : 1;
	daemon_close(&d);
	config_free(&cfg);
	log_info("main", "stopped");
	return rc;
}
