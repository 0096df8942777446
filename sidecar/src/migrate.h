/* migrate.h - forward-only schema migrations from migrations/NNNN_name.sql */
#ifndef TP_MIGRATE_H
#define TP_MIGRATE_H

#include <libpq-fe.h>

/* Applies pending migrations in order, each in one transaction.
 * Returns the number applied, or -1 on error (logged). */
int migrate_run(PGconn *c, const char *dir);

/* Pure: NNNN from "NNNN_name.sql", -1 when the name does not fit. */
int migrate_version_of(const char *filename);

#endif
