/* log.h: one line per event, "level subsystem: message", on stderr, headed
 * by its syslog priority ("<3>") under systemd's journal, else by the UTC
 * time. log_warn appends strerror(errno). */
#ifndef PARTISAN_LOG_H
#define PARTISAN_LOG_H

#include "config.h"

void log_init(enum log_level level);
void log_reopen(void);
/* A reload's log.level. */
void log_set_level(enum log_level level);

void log_debug(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_info(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_notice(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warnx(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_warn(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
