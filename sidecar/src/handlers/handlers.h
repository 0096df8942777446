/* handlers.h - every route handler, h_<resource>_<action> */
#ifndef TP_HANDLERS_H
#define TP_HANDLERS_H

#include "../req.h"

/* health.c */
void h_health_get(req_t *r);

#endif
