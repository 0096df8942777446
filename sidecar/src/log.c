/* log.c - one line per event: ts=... level=... msg, written with a single write() */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_INFO;

static const char *level_names[] = { "debug", "info", "warn", "error" };

int
log_level_parse(const char *s)
{
    int i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *
log_escape(const char *s, char *out, size_t outlen)
{
    static const char hex[] = "0123456789abcdef";
    size_t            o = 0;
    unsigned char     c;

    if (s == NULL) {
        s = "-";
    }
    for (; *s; s++) {
        c = (unsigned char) *s;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (o + 1 + 4 > outlen) {
                break;
            }
            out[o++] = (char) c;
        } else {
            if (o + 4 + 4 > outlen) {
                break;
            }
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (*s != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}


void
log_msg(int level, const char *fmt, ...)
{
    char            line[2048];
    struct timeval  tv;
    struct tm       tm;
    va_list         ap;
    int             n, m;

    if (level < log_level) {
        return;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (int) (tv.tv_usec / 1000),
                 level_names[level]);

    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);

    if (m < 0) {
        m = 0;
    }
    n += m;
    if (n > (int) sizeof(line) - 2) {
        n = sizeof(line) - 2;
    }
    line[n++] = '\n';

    /* one write() so lines from different threads never interleave */
    if (write(STDERR_FILENO, line, n) < 0) {
        /* nothing sensible to do */
    }
}
