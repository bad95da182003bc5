/* log.c: the daemon's logger.
 *
 * Under systemd, when stderr is the journal stream (JOURNAL_STREAM names
 * its device and inode, as sd-daemon(3) says to check), each line starts
 * with its syslog priority, "<3>".."<7>", so `journalctl -p err` works and
 * the journal adds the time. Anywhere else a line starts with the UTC time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"

static enum log_level log_level = LOG_LEVEL_INFO;
static bool log_journal; /* stderr is the journal: syslog priority prefixes */

/* Is stderr the stream JOURNAL_STREAM ("DEV:INODE") names? */
static bool log_to_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(enum log_level level)
{
	log_level = level;
	log_journal = log_to_journal();
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

/* The line's head: "<N>" for the journal, else the time. */
static void log_head(enum log_level lv, char *buf, size_t n)
{
	static const int prio[] = {7, 6, 5, 4, 3}; /* LOG_DEBUG .. LOG_ERR */
	struct timespec ts;
	struct tm tm;

	if (log_journal) {
		snprintf(buf, n, "<%d>", prio[lv]);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ts.tv_nsec / 1000000));
}

void log_reopen(void)
{
	fflush(stderr);
}

static void log_vemit(enum log_level lv, const char *sub, const char *fmt, va_list ap,
                      const char *suffix)
{
	static const char *const names[] = {"debug", "info", "notice", "warning", "error"};
	char line[1024], head[64];

	if (lv < log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_head(lv, head, sizeof(head));
	if (suffix)
		fprintf(stderr, "%s%s %s: %s: %s\n", head, names[lv], sub, line, suffix);
	else
		fprintf(stderr, "%s%s %s: %s\n", head, names[lv], sub, line);
}

#define LOG_FN(fn, lv)                                                                             \
	void fn(const char *sub, const char *fmt, ...)                                             \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vemit(lv, sub, fmt, ap, NULL);                                                 \
		va_end(ap);                                                                        \
	}

LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_notice, LOG_LEVEL_NOTICE)
LOG_FN(log_warnx, LOG_LEVEL_WARNING)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void log_warn(const char *sub, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_LEVEL_WARNING, sub, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}
