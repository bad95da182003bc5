/* config.h: partisand's configuration, one immutable validated struct.
 *
 * Loaded from JSON (jansson) with every key checked; errors name the JSON
 * path, e.g. "channels.bulk.parallelism: expected integer 1..64, got \"four\"".
 * Unknown keys are errors. Command-line flags are applied on top of the file
 * with the config_set_* functions, then config_finish() validates the whole.
 */
#ifndef PARTISAN_CONFIG_H
#define PARTISAN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONFIG_DEFAULT_PATH   "/etc/partisan/partisand.json"
#define CONFIG_DEFAULT_SOCKET "/run/partisan/partisand.sock"
#define CONFIG_DEFAULT_PORT   10200
#define CONFIG_ERR_MAX        512

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR
};

enum manager_kind { MANAGER_FULL_MESH, MANAGER_HYPARVIEW, MANAGER_CLIENT_SERVER, MANAGER_STATIC };

struct config_addr {
	char ip[64];   /* numeric IPv4 or IPv6 address */
	uint16_t port; /* 0: the kernel picks */
};

struct config_channel {
	char *name;           /* owned */
	unsigned parallelism; /* 1..64 */
	bool monotonic;
};

struct config {
	char *name;                       /* NAME@HOST */
	struct config_addr *listen_addrs; /* at least one */
	size_t nlisten_addrs;
	struct config_addr *advertise_addrs; /* what peers dial; none: derived (advertise.c) */
	size_t nadvertise_addrs;             /* port 0: the port bound by the listener */
	enum manager_kind manager;
	char **join; /* NAME@HOST:PORT or HOST:PORT, each owned */
	size_t njoin;
	struct config_channel *channels; /* channels[0] is always "default" */
	size_t nchannels;
	unsigned gossip_interval_ms;     /* default 1000 */
	unsigned failure_timeout_ms;     /* default 2000 */
	unsigned connect_timeout_ms;     /* default 2000 */
	unsigned retransmit_interval_ms; /* default 1000 */
	unsigned ack_hold_ms;            /* an acked message waits this long for its target */
	uint64_t max_frame_bytes;        /* default 16777216 */
	uint64_t session_queue_bytes;    /* per IPC session outbound bound, default 8 MiB */
	uint64_t peer_queue_bytes;       /* per peer connection outbound bound, default 8 MiB */
	unsigned max_outstanding_acks;   /* per daemon, default 65536 */
	/* Bounds on what peers (members included) can make this node hold. */
	unsigned hello_timeout_ms;        /* an accepted link must finish its hello: 2000 */
	unsigned max_pending_connections; /* accepted links before their hello: 256 */
	unsigned max_hello_bytes;         /* largest frame (and buffer) before the hello: 16384 */
	unsigned accept_backoff_ms;       /* accepting pauses this long out of descriptors: 250 */
	unsigned max_members;             /* membership state a peer may make us hold: 4096 */
	unsigned max_state_pushes_per_s;  /* membership states merged per peer per second: 10 */
	unsigned max_concurrent_dials;    /* outbound links before their hello: 64 */
	unsigned dial_backoff_max_ms;     /* backoff of a node never reached: 30000 */
	char *cluster_name;               /* default "default" */
	char *secret_file;                /* NULL: no secret */
	bool insecure;                    /* cluster.insecure: links from anywhere, unprotected */
	struct {
		bool enabled;
		char *cert, *key, *ca; /* NULL when unset */
		bool verify_peer;      /* default true */
	} tls;
	struct {
		char *socket;  /* default CONFIG_DEFAULT_SOCKET */
		unsigned mode; /* default 0660 */
		char *group;   /* NULL: the daemon's own group; else the socket's group */
		gid_t gid;     /* group, resolved by config_finish */
		uid_t *allow_uids;
		size_t nallow_uids;
		gid_t *allow_gids;
		size_t nallow_gids;
	} ipc;
	struct {
		unsigned active_max_size;              /* 5 */
		unsigned passive_max_size;             /* 30 */
		unsigned arwl;                         /* 6 */
		unsigned prwl;                         /* 3 */
		unsigned shuffle_interval_ms;          /* 10000 */
		unsigned shuffle_k_active;             /* 3 */
		unsigned shuffle_k_passive;            /* 4 */
		unsigned random_promotion_interval_ms; /* 5000 */
	} hyparview;
	bool client_server_is_server; /* client_server.role == "server" (default) */
	struct {
		unsigned lazy_tick_ms;     /* 1000 */
		unsigned exchange_tick_ms; /* 10000 */
	} broadcast;
	char *metrics_listen;     /* NULL or "IP:PORT" */
	enum log_level log_level; /* default info */
};

/* Fill *c with the embedded defaults (name partisan@<hostname>, port 10200).
 * *c need not be initialised; release it with config_free(). Always 0. */
int config_defaults(struct config *c);

/* Read and validate a JSON file over the values already in *c: keys present
 * replace them (arrays and "channels" as a whole), absent keys keep them.
 * Returns 0, or -1 with a one-line reason in err ("config: PATH: problem",
 * "config: FILE:LINE:COL: syntax problem", "config: FILE: strerror") and
 * *c left exactly as it was. */
int config_load_file(struct config *c, const char *path, char *err, size_t errlen);

/* Same, from a string (used by tests); syntax errors name "<string>". */
int config_load_string(struct config *c, const char *json, char *err, size_t errlen);

/* Command-line overrides; each returns -1 with a reason on bad input
 * ("--listen: expected IP:PORT, got \"x\"") and leaves *c unchanged.
 * config_set_listen replaces every listen address; config_add_join appends. */
int config_set_name(struct config *c, const char *name, char *err, size_t errlen);
int config_set_listen(struct config *c, const char *ip_port, char *err, size_t errlen);
/* --advertise: replace the list with one address, or append to it. */
int config_set_advertise(struct config *c, const char *ip_port, bool replace, char *err,
                         size_t errlen);
int config_set_socket(struct config *c, const char *path, char *err, size_t errlen);
int config_add_join(struct config *c, const char *target, char *err, size_t errlen);

/* Cross-key checks once everything is applied: tls.enabled needs cert and
 * key; tls files and cluster.secret_file must be readable. 0 or -1. */
int config_finish(struct config *c, char *err, size_t errlen);

/* The normalised config as JSON text with sorted keys, SPEC's shape, ending
 * in a newline; loading it gives the same dump. Caller free()s; NULL on OOM. */
char *config_dump(const struct config *c);

/* The index in cfg->channels of channel (NULL or unknown: 0, "default"). */
size_t config_channel_index(const struct config *cfg, const char *channel);

/* Call fn with each top-level key ("log", "join", "failure_timeout_ms", ...)
 * whose value differs between a and b, in sorted order. */
typedef void (*config_diff_fn)(void *arg, const char *key);
void config_diff(const struct config *a, const struct config *b, config_diff_fn fn, void *arg);

/* Release everything *c owns and zero it; safe twice and on NULL. */
void config_free(struct config *c);

const char *config_manager_name(enum manager_kind k);
const char *config_log_level_name(enum log_level l);

/* 0.0.0.0 or :: (normalised text). */
bool config_ip_wildcard(const char *ip);

/* Parse "IP:PORT" or "[IPv6]:PORT" (numeric, port 0..65535) into *out with the
 * address normalised by inet_ntop. Returns 0, or -1 leaving *out untouched. */
int config_parse_ip_port(const char *s, struct config_addr *out);

#endif
