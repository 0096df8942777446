/* arena.c - per-request bump allocator (h2o's req->pool idea) */
#include "arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK 8192

struct arena_chunk {
    arena_chunk_t *next;
    size_t         used;
    size_t         size;
    _Alignas(16) unsigned char data[];
};

void
arena_init(arena_t *a)
{
    a->head = NULL;
}

void
arena_free(arena_t *a)
{
    arena_chunk_t *c, *next;

    for (c = a->head; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

void *
arena_alloc(arena_t *a, size_t n)
{
    arena_chunk_t *c;
    size_t         size;
    void          *p;

    n = (n + 15) & ~(size_t) 15;
    c = a->head;

    if (c == NULL || c->size - c->used < n) {
        /* big allocations get a chunk of their own, placed behind the
         * current one so its free space is not wasted */
        size = n > ARENA_CHUNK / 2 ? n : ARENA_CHUNK;
        c = malloc(sizeof(arena_chunk_t) + size);
        if (c == NULL) {
            fprintf(stderr, "trueport-sidecar: out of memory\n");
            abort();
        }
        c->used = 0;
        c->size = size;
        if (a->head != NULL && size != ARENA_CHUNK) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }

    p = c->data + c->used;
    c->used += n;
    return p;
}

char *
arena_strndup(arena_t *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);

    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
arena_strdup(arena_t *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *
arena_sprintf(arena_t *a, const char *fmt, ...)
{
    va_list ap;
    char    tmp[256], *p;
    int     n;

    /* most strings fit the stack buffer: format once */
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return arena_strdup(a, "");
    }
    if ((size_t) n < sizeof(tmp)) {
        return arena_strndup(a, tmp, (size_t) n);
    }

    p = arena_alloc(a, (size_t) n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t) n + 1, fmt, ap);
    va_end(ap);
    return p;
}
