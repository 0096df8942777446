/* mail.c - the outbox: handlers queue messages in a table inside their own
 * transaction; one background thread pipes committed ones to sendmail with
 * a deadline, so a stuck MTA delays mail and never a request. Bodies hold
 * codes and tokens: they are cleared once sent (or too old to send), and
 * rows deleted after the retention. */
#include "mail.h"
#include "config.h"
#include "db.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAIL_TIMEOUT_MS   30000     /* one sendmail run, start to exit */
#define MAIL_POLL_S       10        /* retry sweep when nobody kicks us */
#define MAIL_MAX_ATTEMPTS 5         /* then the row stays for an operator */
#define MAIL_SUBJECT_MAX  200
#define MAIL_MAX_AGE      "1 day"   /* older unsent mail is kept, not sent */
#define MAIL_SWEEP_SOME   100       /* rows per sweep as mail is queued */
#define MAIL_SWEEP_ALL    10000     /* rows per periodic sweep */

/* Clears the bodies that will never be sent (the rows stay, with who,
 * subject and when, until the retention) and deletes the rows older than
 * the retention ($1 days), at most $2 of each; the two ranges never meet,
 * so no row is changed twice in the statement. */
#define MAIL_SWEEP_SQL                                                      \
    "WITH cleared AS (UPDATE outbox SET body = NULL WHERE id IN"            \
    "  (SELECT id FROM outbox WHERE body IS NOT NULL AND sent_at IS NULL"   \
    "   AND created_at < now() - interval '" MAIL_MAX_AGE "'"               \
    "   AND created_at >= now() - $1::int * interval '1 day'"               \
    "   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1),"  \
    " gone AS (DELETE FROM outbox WHERE id IN"                              \
    "  (SELECT id FROM outbox"                                              \
    "   WHERE created_at < now() - $1::int * interval '1 day'"              \
    "   ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING 1)"  \
    " SELECT (SELECT count(*) FROM cleared), (SELECT count(*) FROM gone)"

#define MAIL_XSTR(x) #x
#define MAIL_STR(x)  MAIL_XSTR(x)

extern char **environ;

static pthread_once_t   mail_once = PTHREAD_ONCE_INIT;
static int              mail_started;
static pthread_mutex_t  mail_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   mail_cond;
static int              mail_kicked;


/* A header-safe copy: control characters (CR and LF above all) become
 * spaces, so a subject can never add a header. */
static char *
one_line(req_t *r, const char *s, size_t max)
{
    size_t n = strlen(s), i;
    char  *out;

    if (n > max) {
        n = max;
        /* do not cut a UTF-8 sequence in half */
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    out = arena_strndup(&r->arena, s, n);
    for (i = 0; i < n; i++) {
        if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f) {
            out[i] = ' ';
        }
    }
    return out;
}


static void
mail_kick(void *unused)
{
    (void) unused;

    pthread_mutex_lock(&mail_lock);
    mail_kicked = 1;
    pthread_cond_signal(&mail_cond);
    pthread_mutex_unlock(&mail_lock);
}


int
mail_send(req_t *r, const char *to, const char *subject, const char *body)
{
    const char *s;
    PGresult   *res;

    for (s = to; *s; s++) {
        if ((unsigned char) *s <= ' ' || *s == 0x7f) {
            break;
        }
    }
    if (*s != '\0' || strchr(to, '@') == NULL || strlen(to) > 320) {
        log_error("req=%s msg=\"mail_send: refusing an unvalidated address\"",
                  r->id);
        reply_error(r, 500, "internal_error", "internal error");
        return -1;
    }

    subject = one_line(r, subject, MAIL_SUBJECT_MAX);
    res = dbq(r, "INSERT INTO outbox (to_addr, subject, body)"
                 " VALUES ($1, $2, $3) RETURNING id", 3, to, subject, body);
    if (res == NULL
        || dbq(r, MAIL_SWEEP_SQL, 2,
               arena_sprintf(&r->arena, "%ld", cfg.outbox_retention_days),
               MAIL_STR(MAIL_SWEEP_SOME)) == NULL)
    {
        return -1;
    }

    /* the message carries a secret (a code, a token): its body is never
     * logged, not even in dev mode; a developer reads it in the outbox */
    if (cfg.dev_mode) {
        char esc[256];

        log_info("req=%s msg=\"mail queued (dev mode): the body is in the"
                 " outbox table\" outbox_id=%s to=%s subject=\"%s\"", r->id,
                 PQgetvalue(res, 0, 0), to,
                 log_escape(subject, esc, sizeof(esc)));
    } else {
        log_debug("req=%s msg=\"mail queued\" outbox_id=%s", r->id,
                  PQgetvalue(res, 0, 0));
    }

    if (cfg.sendmail[0] != '\0') {
        if (mail_start() != 0) {
            /* the row is queued: a later start delivers it */
            log_error("req=%s msg=\"mail delivery thread not running\"",
                      r->id);
        }
        /* wake the thread once the request (and its transaction) is over */
        req_defer(r, mail_kick, NULL);
    }
    return 0;
}


/* "Subject: " value: control characters (the table may have been written
 * by hand) become spaces, so no header can be injected; plain ASCII goes
 * as is, anything else as one RFC 2047 encoded word. malloc'd or NULL. */
static char *
subject_header(const char *subject)
{
    size_t  n = strlen(subject), i;
    char   *clean, *out;
    int     ascii = 1;

    clean = strdup(subject);
    if (clean == NULL) {
        return NULL;
    }
    for (i = 0; i < n; i++) {
        if ((unsigned char) clean[i] < 0x20 || clean[i] == 0x7f) {
            clean[i] = ' ';
        } else if ((unsigned char) clean[i] >= 0x80) {
            ascii = 0;
        }
    }
    if (ascii) {
        return clean;
    }

    out = malloc(12 + 4 * ((n + 2) / 3) + 3);
    if (out != NULL) {
        memcpy(out, "=?UTF-8?B?", 10);
        n = (size_t) EVP_EncodeBlock((unsigned char *) out + 10,
                                     (const unsigned char *) clean, (int) n);
        memcpy(out + 10 + n, "?=", 3);
    }
    free(clean);
    return out;
}


static char *
compose(const char *to, const char *subject, const char *body, size_t *len)
{
    char *subj, *msg;
    int   n;

    if (to[strcspn(to, " \t\r\n,;<>")] != '\0') {
        return NULL;
    }
    subj = subject_header(subject);
    if (subj == NULL) {
        return NULL;
    }
    n = asprintf(&msg,
                 "To: %s\n"
                 "Subject: %s\n"
                 "MIME-Version: 1.0\n"
                 "Content-Type: text/plain; charset=UTF-8\n"
                 "Content-Transfer-Encoding: 8bit\n"
                 "Auto-Submitted: auto-generated\n"
                 "\n"
                 "%s%s",
                 to, subj, body,
                 body[0] && body[strlen(body) - 1] == '\n' ? "" : "\n");
    free(subj);
    if (n < 0) {
        return NULL;
    }
    *len = (size_t) n;
    return msg;
}


static long long
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


static int
write_deadline(int fd, const char *buf, size_t len, long long deadline)
{
    struct pollfd pfd;
    ssize_t       n;
    long long     left;

    while (len > 0) {
        left = deadline - mono_ms();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        pfd.fd = fd;
        pfd.events = POLLOUT;
        if (poll(&pfd, 1, (int) left) <= 0) {
            if (errno == EINTR) {
                continue;
            }
            errno = ETIMEDOUT;
            return -1;
        }
        n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            return -1;
        }
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}


/* Runs `sendmail -t -i` with msg on stdin. The whole run has a deadline;
 * past it the child is killed. 0, or -1 with a reason in err. */
static int
sendmail_pipe(const char *msg, size_t len, char *err, size_t errlen)
{
    posix_spawn_file_actions_t  fa;
    posix_spawnattr_t           at;
    sigset_t                    none, dflt;
    char                       *argv[4], said[161];
    long long                   deadline;
    ssize_t                     n, i;
    pid_t                       pid;
    int                         fds[2], efds[2], rc, status = 0, wrc;

    /* stdin carries the message; what sendmail says on stderr goes into
     * last_error (the pipe buffer holds far more than we keep) */
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    if (pipe2(efds, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }

    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                     O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, efds[1], STDERR_FILENO);

    /* the server blocks SIGTERM and ignores SIGPIPE: give the child the
     * defaults back */
    posix_spawnattr_init(&at);
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dflt);
    /* its own process group, so a timeout kills what it started too */
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK
                                  | POSIX_SPAWN_SETSIGDEF
                                  | POSIX_SPAWN_SETPGROUP);

    argv[0] = cfg.sendmail;
    argv[1] = "-t";
    argv[2] = "-i";
    argv[3] = NULL;
    rc = posix_spawn(&pid, cfg.sendmail, &fa, &at, argv, environ);

    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[0]);
    close(efds[1]);

    if (rc != 0) {
        close(fds[1]);
        close(efds[0]);
        snprintf(err, errlen, "cannot run %s: %s", cfg.sendmail,
                 strerror(rc));
        return -1;
    }

    deadline = mono_ms() + MAIL_TIMEOUT_MS;
    wrc = fcntl(fds[1], F_SETFL, O_NONBLOCK) == 0
          ? write_deadline(fds[1], msg, len, deadline) : -1;
    if (wrc != 0) {
        snprintf(err, errlen, "writing to sendmail: %s", strerror(errno));
    }
    close(fds[1]);

    for ( ;; ) {
        rc = waitpid(pid, &status, WNOHANG);
        if (rc == pid || (rc < 0 && errno != EINTR)) {
            break;
        }
        if (mono_ms() >= deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            close(efds[0]);
            snprintf(err, errlen, "sendmail timed out after %d ms",
                     MAIL_TIMEOUT_MS);
            return -1;
        }
        usleep(20000);
    }

    n = read(efds[0], said, sizeof(said) - 1);
    close(efds[0]);
    /* one line: trailing newlines dropped, the others become spaces */
    while (n > 0 && (said[n - 1] == '\n' || said[n - 1] == '\r'
                     || said[n - 1] == ' '))
    {
        n--;
    }
    said[n > 0 ? n : 0] = '\0';
    for (i = 0; i < n; i++) {
        if ((unsigned char) said[i] < 0x20) {
            said[i] = ' ';
        }
    }

    if (rc != pid) {
        snprintf(err, errlen, "waitpid: %s", strerror(errno));
        return -1;
    }
    if (wrc != 0) {
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(err, errlen, "sendmail failed (%s %d)%s%.160s",
                 WIFEXITED(status) ? "exit" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                 said[0] ? ": " : "", said);
        return -1;
    }
    return 0;
}


static int
exec_ok(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    int       ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    PQclear(res);
    return ok ? 0 : -1;
}


/* Delivers the oldest due message, one transaction per message (the row
 * lock keeps other sidecars off it). 1: one handled, 0: none due,
 * -1: database trouble. */
static int
deliver_one(PGconn *c)
{
    const char *p[2];
    char        err[256], esc[512];
    PGresult   *res, *upd;
    size_t      len;
    char       *msg;
    int         rc;

    if (exec_ok(c, "BEGIN") != 0) {
        return -1;
    }
    res = PQexec(c,
                 "SELECT id, to_addr, subject, body FROM outbox"
                 " WHERE sent_at IS NULL AND next_attempt_at <= now()"
                 " AND created_at > now() - interval '" MAIL_MAX_AGE "'"
                 " AND attempts < " MAIL_STR(MAIL_MAX_ATTEMPTS)
                 " ORDER BY next_attempt_at, id LIMIT 1"
                 " FOR UPDATE SKIP LOCKED");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) == 0) {
        rc = PQresultStatus(res) == PGRES_TUPLES_OK ? 0 : -1;
        PQclear(res);
        exec_ok(c, "ROLLBACK");
        return rc;
    }

    err[0] = '\0';
    msg = compose(PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                  PQgetvalue(res, 0, 3), &len);
    if (msg == NULL) {
        snprintf(err, sizeof(err), "bad recipient or out of memory");
        rc = -1;
    } else {
        rc = sendmail_pipe(msg, len, err, sizeof(err));
        free(msg);
    }

    p[0] = PQgetvalue(res, 0, 0);
    p[1] = err;
    if (rc == 0) {
        /* the body (a code, a token) has done its job */
        upd = PQexecParams(c, "UPDATE outbox SET sent_at = now(),"
                              " attempts = attempts + 1, last_error = NULL,"
                              " body = NULL WHERE id = $1", 1, NULL, p, NULL,
                           NULL, 0);
    } else {
        log_warn("msg=\"mail delivery failed\" outbox_id=%s error=\"%s\"",
                 p[0], log_escape(err, esc, sizeof(esc)));
        /* 1, 2, 4, 8 minutes */
        upd = PQexecParams(c, "UPDATE outbox SET attempts = attempts + 1,"
                              " last_error = $2, next_attempt_at = now()"
                              " + interval '1 minute' * power(2, attempts)"
                              " WHERE id = $1", 2, NULL, p, NULL, NULL, 0);
    }
    rc = PQresultStatus(upd) == PGRES_COMMAND_OK ? 1 : -1;
    PQclear(upd);
    PQclear(res);

    if (rc != 1 || exec_ok(c, "COMMIT") != 0) {
        exec_ok(c, "ROLLBACK");
        return -1;
    }
    return 1;
}


long long
mail_sweep(PGconn *c)
{
    const char *p[2];
    char        days[24];
    PGresult   *res;
    long long   n = -1;

    snprintf(days, sizeof(days), "%ld", cfg.outbox_retention_days);
    p[0] = days;
    p[1] = MAIL_STR(MAIL_SWEEP_ALL);
    res = PQexecParams(c, MAIL_SWEEP_SQL, 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        n = atoll(PQgetvalue(res, 0, 0)) + atoll(PQgetvalue(res, 0, 1));
        if (n > 0) {
            log_info("msg=\"outbox swept\" bodies_cleared=%s rows_deleted=%s",
                     PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        }
    } else {
        log_warn("msg=\"outbox sweep failed\" error=\"%s\"",
                 PQresultErrorMessage(res));
    }
    PQclear(res);
    return n;
}


static void *
mail_thread(void *unused)
{
    struct timespec ts;
    PGconn         *c = NULL;
    char            err[256], esc[512];
    sigset_t        set;

    (void) unused;

    /* signals are for the main thread's sigwait */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    for ( ;; ) {
        if (c != NULL && PQstatus(c) != CONNECTION_OK) {
            PQfinish(c);
            c = NULL;
        }
        if (c == NULL) {
            c = db_connect_once(cfg.database_url, err, sizeof(err));
            if (c == NULL) {
                log_warn("msg=\"mail: database unavailable\" error=\"%s\"",
                         log_escape(err, esc, sizeof(esc)));
            }
        }
        if (c != NULL) {
            while (deliver_one(c) == 1) {
                /* drain what is due */
            }
        }

        pthread_mutex_lock(&mail_lock);
        if (!mail_kicked) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += MAIL_POLL_S;
            pthread_cond_timedwait(&mail_cond, &mail_lock, &ts);
        }
        mail_kicked = 0;
        pthread_mutex_unlock(&mail_lock);
    }

    return NULL;
}


static void
mail_start_once(void)
{
    pthread_condattr_t ca;
    pthread_attr_t     ta;
    pthread_t          tid;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&mail_cond, &ca);
    pthread_condattr_destroy(&ca);

    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&tid, &ta, mail_thread, NULL) == 0) {
        mail_started = 1;
        log_info("msg=\"mail delivery started\" sendmail=\"%s\"",
                 cfg.sendmail);
    } else {
        log_error("msg=\"cannot start the mail delivery thread\"");
    }
    pthread_attr_destroy(&ta);
}


int
mail_start(void)
{
    if (cfg.sendmail[0] == '\0') {
        return 0;
    }
    pthread_once(&mail_once, mail_start_once);
    return mail_started ? 0 : -1;
}
