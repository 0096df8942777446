/* log.h - leveled key=value logging to stderr */
#ifndef TP_LOG_H
#define TP_LOG_H

#include <stddef.h>

enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

extern int log_level;

int  log_level_parse(const char *s);      /* -1 when unknown */

/* s made safe to print inside a log line's quotes: printable ASCII stays,
 * '"', backslash, control characters and every byte above 0x7e become \xNN,
 * so a client can neither end the value nor forge a line nor smuggle
 * terminal escapes. Cut with "..." to fit out (outlen >= 8); returns
 * out. NULL prints as "-". */
const char *log_escape(const char *s, char *out, size_t outlen);

void log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_level <= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...)  do { if (log_level <= LOG_INFO)  log_msg(LOG_INFO, __VA_ARGS__); } while (0)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
