/* arena.h - per-request bump allocator, freed in one call when the response completes */
#ifndef TP_ARENA_H
#define TP_ARENA_H

#include <stddef.h>
#include <stdarg.h>

typedef struct arena_chunk arena_chunk_t;

typedef struct {
    arena_chunk_t *head;
} arena_t;

void  arena_init(arena_t *a);
void  arena_free(arena_t *a);
/* Never returns NULL: an allocation failure aborts (out of memory is not a
 * condition a request handler can recover from sensibly). */
void *arena_alloc(arena_t *a, size_t n);
char *arena_strndup(arena_t *a, const char *s, size_t n);
char *arena_strdup(arena_t *a, const char *s);
char *arena_sprintf(arena_t *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
