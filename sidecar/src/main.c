/* main.c - trueport-sidecar: serve | migrate | create-admin */
#include "config.h"
#include "db.h"
#include "log.h"
#include "migrate.h"
#include "password.h"
#include "server.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: trueport-sidecar [serve]\n"
    "       trueport-sidecar migrate\n"
    "       trueport-sidecar create-admin --email EMAIL --password-stdin\n"
    "settings come from TRUEPORT_* environment variables (see README)\n";


static int
cmd_migrate(void)
{
    char    err[256];
    PGconn *c;
    int     n;

    c = db_connect_once(cfg.database_url, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "trueport-sidecar: cannot connect: %s\n", err);
        return 1;
    }
    n = migrate_run(c, cfg.migrations_dir);
    PQfinish(c);
    if (n < 0) {
        return 1;
    }
    printf(n == 0 ? "schema up to date\n" : "applied %d migration(s)\n", n);
    return 0;
}


static int
cmd_create_admin(int argc, char **argv)
{
    const char *email = NULL, *pw_err, *p[2];
    char        pw[1100], err[256], lower[321];
    char       *hash;
    PGconn     *c;
    PGresult   *res;
    size_t      n, i;
    int         stdin_pw = 0, rc = 1;

    for (i = 2; i < (size_t) argc; i++) {
        if (strcmp(argv[i], "--email") == 0 && i + 1 < (size_t) argc) {
            email = argv[++i];
        } else if (strcmp(argv[i], "--password-stdin") == 0) {
            stdin_pw = 1;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (email == NULL || !stdin_pw) {
        fputs(usage, stderr);
        return 2;
    }

    n = strlen(email);
    if (n < 3 || n > 320 || strchr(email, '@') == NULL) {
        fprintf(stderr, "trueport-sidecar: \"%s\" is not an email address\n",
                email);
        return 2;
    }
    for (i = 0; i <= n; i++) {
        lower[i] = (char) tolower((unsigned char) email[i]);
    }

    if (fgets(pw, sizeof(pw), stdin) == NULL) {
        fprintf(stderr, "trueport-sidecar: no password on standard input\n");
        return 2;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    pw_err = password_policy(pw);
    if (pw_err != NULL) {
        fprintf(stderr, "trueport-sidecar: %s\n", pw_err);
        return 2;
    }

    hash = password_hash(pw, cfg.scrypt_n);
    if (hash == NULL) {
        fprintf(stderr, "trueport-sidecar: cannot hash the password\n");
        return 1;
    }

    c = db_connect_once(cfg.database_url, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "trueport-sidecar: cannot connect: %s\n", err);
        free(hash);
        return 1;
    }

    /* an existing user is promoted and gets the new password */
    p[0] = lower;
    p[1] = hash;
    res = PQexecParams(c,
                       "INSERT INTO users (email, name, password_hash,"
                       " is_platform_admin) VALUES ($1, 'Platform admin', $2,"
                       " true) ON CONFLICT (email) DO UPDATE"
                       " SET is_platform_admin = true,"
                       " password_hash = EXCLUDED.password_hash"
                       " RETURNING id", 2, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        printf("platform admin %s: %s\n", lower, PQgetvalue(res, 0, 0));
        rc = 0;
    } else {
        fprintf(stderr, "trueport-sidecar: %s", PQresultErrorMessage(res));
    }

    PQclear(res);
    PQfinish(c);
    free(hash);
    return rc;
}


int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    char        err[512];

    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
        fputs(usage, stdout);
        return 0;
    }

    if (config_load(err, sizeof(err)) != 0) {
        fprintf(stderr, "trueport-sidecar: configuration error: %s\n", err);
        return 2;
    }
    log_level = cfg.log_level;

    if (strcmp(cmd, "serve") == 0) {
        if (config_check_serve(err, sizeof(err)) != 0) {
            fprintf(stderr, "trueport-sidecar: configuration error: %s\n",
                    err);
            return 2;
        }
        return server_run() == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "migrate") == 0) {
        return cmd_migrate();
    }
    if (strcmp(cmd, "create-admin") == 0) {
        return cmd_create_admin(argc, argv);
    }

    fputs(usage, stderr);
    return 2;
}
