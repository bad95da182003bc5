/* log.h: one line per event, "level subsystem: message", on stderr
 * (journald picks it up under systemd). log_warn appends strerror(errno). */
#ifndef PARTISAN_LOG_H
#define PARTISAN_LOG_H

#include "config.h"

void log_init(enum log_level level);
void log_reopen(void);

void log_debug(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_notice(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warnx(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
