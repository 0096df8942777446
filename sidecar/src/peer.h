/* peer.h - who the client is: the connection's peer, or the address a
 * trusted proxy (nginx) names in X-Real-IP; address lists and loopback */
#ifndef TP_PEER_H
#define TP_PEER_H

#include <stddef.h>
#include <sys/socket.h>

#define NETLIST_MAX 16

typedef struct {
    int           family;        /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int           bits;          /* prefix length */
} net_t;

typedef struct {
    net_t nets[NETLIST_MAX];
    int   n;
} netlist_t;

/* "127.0.0.0/8, ::1, 10.1.2.3": addresses with an optional /prefix,
 * separated by commas and spaces; "" is an empty list. 0, or -1 with the
 * reason in err. */
int netlist_parse(const char *s, netlist_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* 1 when the textual address ip (as peer_text writes it) is in the list */
int netlist_has(const netlist_t *l, const char *ip);

/* The address of sa as text (IPv4 dotted, IPv6 compressed) into out;
 * "" for another family. */
void peer_text(const struct sockaddr *sa, char *out, size_t outlen);

/* The address in a header value, canonical (so one client has one
 * spelling), into out: 0, or -1 when it is not one IPv4/IPv6 address. */
int peer_parse(const char *s, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* The unit a per-address limit counts: an IPv4 address as it is, an IPv6
 * address as its /64 ("2001:db8:1:2::/64"), one subscriber's share, since
 * counting single IPv6 addresses would give each client 2^64 budgets. */
void peer_subscriber(const char *ip, char *out, size_t outlen);

/* 127.0.0.0/8 or ::1 */
int peer_is_loopback(const char *ip);

#endif
