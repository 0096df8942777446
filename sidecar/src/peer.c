/* peer.c - the client's address: parsed, canonical, matched against the
 * operator's list of trusted proxies (TRUEPORT_TRUSTED_PROXIES) */
#include "peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static int
parse_addr(const char *s, net_t *n)
{
    if (inet_pton(AF_INET, s, n->addr) == 1) {
        n->family = AF_INET;
        n->bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, s, n->addr) == 1) {
        n->family = AF_INET6;
        n->bits = 128;
        return 0;
    }
    return -1;
}


int
netlist_parse(const char *s, netlist_t *out, char *err, size_t errlen)
{
    char        item[64], *slash, *end;
    const char *p = s, *e;
    size_t      len;
    long        bits;
    net_t      *n;

    out->n = 0;
    for (;;) {
        while (*p == ',' || *p == ' ') {
            p++;
        }
        if (*p == '\0') {
            return 0;
        }
        e = p + strcspn(p, ", ");
        len = (size_t) (e - p);
        if (len >= sizeof(item) || out->n == NETLIST_MAX) {
            snprintf(err, errlen, "\"%.*s\": too long, or more than %d"
                     " entries", (int) (len > 40 ? 40 : len), p, NETLIST_MAX);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        p = e;

        n = &out->nets[out->n];
        slash = strchr(item, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        if (parse_addr(item, n) != 0) {
            snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address",
                     item);
            return -1;
        }
        if (slash != NULL) {
            bits = strtol(slash + 1, &end, 10);
            if (end == slash + 1 || *end != '\0' || bits < 0
                || bits > n->bits)
            {
                snprintf(err, errlen, "\"%s/%s\": bad prefix length", item,
                         slash + 1);
                return -1;
            }
            n->bits = (int) bits;
        }
        out->n++;
    }
}


static int
in_net(const net_t *n, const net_t *a)
{
    int full = n->bits / 8, rest = n->bits % 8;

    if (n->family != a->family || memcmp(n->addr, a->addr, full) != 0) {
        return 0;
    }
    return rest == 0
           || ((n->addr[full] ^ a->addr[full]) & (0xff << (8 - rest))) == 0;
}


int
netlist_has(const netlist_t *l, const char *ip)
{
    net_t a;
    int   i;

    if (parse_addr(ip, &a) != 0) {
        return 0;
    }
    for (i = 0; i < l->n; i++) {
        if (in_net(&l->nets[i], &a)) {
            return 1;
        }
    }
    return 0;
}


void
peer_text(const struct sockaddr *sa, char *out, size_t outlen)
{
    out[0] = '\0';
    if (sa == NULL) {
        return;
    }
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, out,
                  (socklen_t) outlen);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr,
                  out, (socklen_t) outlen);
    }
}


int
peer_parse(const char *s, char *out, size_t outlen)
{
    net_t a;

    if (s == NULL || strlen(s) >= 64 || parse_addr(s, &a) != 0
        || inet_ntop(a.family, a.addr, out, (socklen_t) outlen) == NULL)
    {
        return -1;
    }
    return 0;
}


int
peer_is_loopback(const char *ip)
{
    static const netlist_t loopback = {
        { { AF_INET, { 127 }, 8 },
          { AF_INET6, { [15] = 1 }, 128 },
          /* ::ffff:127.0.0.0/104, an IPv4 loopback peer of an IPv6 socket */
          { AF_INET6, { [10] = 0xff, [11] = 0xff, [12] = 127 }, 104 } },
        3
    };

    return netlist_has(&loopback, ip);
}


void
peer_subscriber(const char *ip, char *out, size_t outlen)
{
    unsigned char a[16];
    char          text[INET6_ADDRSTRLEN];

    if (inet_pton(AF_INET6, ip, a) != 1
        || (memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0))
    {
        snprintf(out, outlen, "%s", ip);
        return;
    }
    memset(a + 8, 0, 8);
    inet_ntop(AF_INET6, a, text, sizeof(text));
    snprintf(out, outlen, "%s/64", text);
}
