/* db.h - one PostgreSQL connection per worker thread, reconnected on demand */
#ifndef TP_DB_H
#define TP_DB_H

#include <libpq-fe.h>

/* This thread's connection, (re)connected when needed; NULL when the
 * server cannot be reached (the caller answers 503). */
PGconn *db_conn(void);

/* Drops this thread's connection (after a fatal error or at thread exit). */
void db_close(void);

/* Runs sql on c (text parameters, types inferred, like PQexecParams). On
 * this thread's connection a SELECT/WITH/INSERT/UPDATE/DELETE is prepared
 * the first time and executed by name afterwards, which spares Postgres
 * the parse, analysis and (for generic plans) planning on every request. */
PGresult *db_exec(PGconn *c, const char *sql, int nparams,
    const char *const *vals);

/* Maps a SQLSTATE to an HTTP status and an error code. */
int db_status_for(const char *sqlstate, const char **code);

/* Connects outside any worker thread (migrate, create-admin). */
PGconn *db_connect_once(const char *dsn, char *err, size_t errlen);

#endif
