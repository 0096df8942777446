/* handlers.h - every route handler, h_<resource>_<action> */
#ifndef TP_HANDLERS_H
#define TP_HANDLERS_H

#include "../req.h"

/* health.c */
void h_health_get(req_t *r);

/* analytics.c */
void h_analytics_logs(req_t *r);
void h_analytics_stats(req_t *r);
void h_violations_list(req_t *r);
void h_violations_get(req_t *r);

#endif
