/* server.h - the HTTP server: libmicrohttpd with a thread pool */
#ifndef TP_SERVER_H
#define TP_SERVER_H

/* Serves until SIGTERM/SIGINT, then finishes requests in flight. */
int server_run(void);

#endif
