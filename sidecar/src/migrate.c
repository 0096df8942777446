/* migrate.c - applies migrations/NNNN_*.sql in order; each file and its
 * schema_migrations row commit together, so a crash never half-applies
 * one, and an advisory lock keeps two sidecars from racing. */
#include "migrate.h"
#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIGRATE_LOCK_ID "7201431"   /* arbitrary, fixed advisory lock key */


int
migrate_version_of(const char *name)
{
    size_t n = strlen(name);
    int    i, v = 0;

    if (n < 10 || strcmp(name + n - 4, ".sql") != 0 || name[4] != '_') {
        return -1;
    }
    for (i = 0; i < 4; i++) {
        if (!isdigit((unsigned char) name[i])) {
            return -1;
        }
        v = v * 10 + (name[i] - '0');
    }
    return v;
}


static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    long  n;
    char *buf;

    if (f == NULL) {
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0 || (buf = malloc(n + 1)) == NULL)
    {
        fclose(f);
        return NULL;
    }
    if (fread(buf, 1, n, f) != (size_t) n) {
        free(buf);
        fclose(f);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}


static int
exec_ok(PGconn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c, sql);
    int       ok = PQresultStatus(res) == PGRES_COMMAND_OK
                   || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok) {
        char esc[1024];

        log_error("msg=\"migration failed\" step=\"%s\" error=\"%s\"", what,
                  log_escape(PQresultErrorMessage(res), esc, sizeof(esc)));
    }
    PQclear(res);
    return ok ? 0 : -1;
}


static int
is_applied(PGconn *c, int version)
{
    char        v[16];
    const char *p[1] = { v };
    PGresult   *res;
    int         applied;

    snprintf(v, sizeof(v), "%d", version);
    res = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1",
                       1, NULL, p, NULL, NULL, 0);
    applied = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0;
    PQclear(res);
    return applied;
}


static int
apply_one(PGconn *c, const char *dir, const char *name, int version)
{
    char        path[4096], v[16];
    const char *p[2] = { v, name };
    char       *sql;
    PGresult   *res;
    int         ok;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    sql = read_file(path);
    if (sql == NULL) {
        log_error("msg=\"cannot read migration\" file=\"%s\"", path);
        return -1;
    }

    if (exec_ok(c, "BEGIN", "begin") != 0) {
        free(sql);
        return -1;
    }
    if (exec_ok(c, sql, name) != 0) {
        free(sql);
        exec_ok(c, "ROLLBACK", "rollback");
        return -1;
    }
    free(sql);

    snprintf(v, sizeof(v), "%d", version);
    res = PQexecParams(c,
                       "INSERT INTO schema_migrations (version, name)"
                       " VALUES ($1, $2)", 2, NULL, p, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        char esc[1024];

        log_error("msg=\"cannot record migration\" error=\"%s\"",
                  log_escape(PQresultErrorMessage(res), esc, sizeof(esc)));
    }
    PQclear(res);

    if (!ok || exec_ok(c, "COMMIT", "commit") != 0) {
        exec_ok(c, "ROLLBACK", "rollback");
        return -1;
    }

    log_info("msg=\"applied migration\" version=%d file=\"%s\"", version,
             name);
    return 0;
}


int
migrate_run(PGconn *c, const char *dir)
{
    DIR           *d;
    struct dirent *e;
    char         **names = NULL;
    size_t         n = 0, cap = 0, i;
    int            applied = 0, rc = -1, v, last = -1;

    d = opendir(dir);
    if (d == NULL) {
        log_error("msg=\"cannot open migrations directory\" dir=\"%s\"", dir);
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (migrate_version_of(e->d_name) < 0) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, cap * sizeof(char *));
            if (nn == NULL) {
                goto done;
            }
            names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            goto done;
        }
        n++;
    }
    qsort(names, n, sizeof(char *), cmp_names);

    if (exec_ok(c, "SELECT pg_advisory_lock(" MIGRATE_LOCK_ID ")", "lock") != 0
        || exec_ok(c, "SET client_min_messages = warning", "settings") != 0
        || exec_ok(c,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version integer PRIMARY KEY,"
                   " name text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   "schema_migrations") != 0)
    {
        goto unlock;
    }

    for (i = 0; i < n; i++) {
        v = migrate_version_of(names[i]);
        if (v == last) {
            log_error("msg=\"two migrations share a version\" version=%d", v);
            goto unlock;
        }
        last = v;
        if (is_applied(c, v)) {
            continue;
        }
        if (apply_one(c, dir, names[i], v) != 0) {
            goto unlock;
        }
        applied++;
    }
    rc = applied;

unlock:
    exec_ok(c, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_ID ")", "unlock");
done:
    closedir(d);
    for (i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}
