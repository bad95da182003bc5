/* log.c: the daemon's logger. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static enum log_level log_level = LOG_LEVEL_INFO;

void log_init(enum log_level level)
{
	log_level = level;
	setvbuf(stderr, NULL, _IOLBF, 0);
}

void log_reopen(void)
{
	fflush(stderr);
}

static void log_vemit(enum log_level lv, const char *sub, const char *fmt, va_list ap,
                      const char *suffix)
{
	static const char *const names[] = {"debug", "info", "notice", "warning", "error"};
	char line[1024];

	if (lv < log_level)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (suffix)
		fprintf(stderr, "%s %s: %s: %s\n", names[lv], sub, line, suffix);
	else
		fprintf(stderr, "%s %s: %s\n", names[lv], sub, line);
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
