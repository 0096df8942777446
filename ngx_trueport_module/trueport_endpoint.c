/* trueport_endpoint.c - provider endpoints against the operator's
 * allowlist (trueport_endpoint.h). */
#include <string.h>

#include "trueport_endpoint.h"

#define TP_EP_HOST_MAX   253
#define TP_EP_LABEL_MAX  63

/* an endpoint's or a pattern's scheme, host and port */
typedef struct {
    int          https;
    const char  *host;          /* IPv6 with its brackets */
    size_t       host_len;
    long         port;          /* 0: the scheme's; -1: any (patterns) */
    int          wild;          /* a "*" in the host (patterns) */
} tp_ep_t;

/* what a host is, for the names a wildcard may never match */
enum { TP_EP_NAME = 0, TP_EP_IP, TP_EP_LOCAL, TP_EP_SINGLE };

/* resolve to this machine or the local network by convention (RFC 6761,
 * 6762, 8375; ICANN's .internal) */
static const char *const tp_ep_local[] = {
    "localhost", "local", "localdomain", "internal", "home.arpa", NULL
};

static const char *const tp_ep_class_reason[] = {
    [TP_EP_NAME] = "the host is not in the operator's allowlist",
    [TP_EP_IP] = "IP address literals are not allowed (in any spelling)",
    [TP_EP_LOCAL] = "localhost and local-only domains (.local, .localdomain,"
                    " .internal, .home.arpa) are not allowed",
    [TP_EP_SINGLE] = "single-label host names are not allowed (a fully"
                     " qualified name is needed)",
};


static int
tp_ep_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}


static int
tp_ep_digit(int c)
{
    return c >= '0' && c <= '9';
}


static int
tp_ep_hex(int c)
{
    return tp_ep_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}


static int
tp_ep_ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t i;

    if (alen != blen) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        if (tp_ep_lower((unsigned char) a[i])
            != tp_ep_lower((unsigned char) b[i]))
        {
            return 0;
        }
    }
    return 1;
}


/* a bracketed IPv6 literal: hex digits, colons and dots (an embedded
 * IPv4), at least one colon; no zone ("%25": escapes are refused) */
static const char *
tp_ep_ipv6(const char *s, size_t len)
{
    size_t i, colons = 0;

    if (len < 4 || len > 48) {
        return "a malformed IPv6 literal";
    }
    for (i = 1; i < len - 1; i++) {
        if (s[i] == ':') {
            colons++;
        } else if (!tp_ep_hex((unsigned char) s[i]) && s[i] != '.') {
            return "a malformed IPv6 literal";
        }
    }
    return colons ? NULL : "a malformed IPv6 literal";
}


/* host names: labels of letters, digits and hyphens ("*" too in
 * patterns), 1 to 63 each, 253 in all */
static const char *
tp_ep_hostname(const char *s, size_t len, int pattern)
{
    size_t i, start;
    int    c;

    if (len > TP_EP_HOST_MAX) {
        return "the host is longer than 253 characters";
    }
    for (start = 0, i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            c = (unsigned char) s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || tp_ep_digit(c) || c == '-' || (pattern && c == '*')))
            {
                return "the host may only have letters, digits, hyphens"
                       " and dots";
            }
            continue;
        }
        if (i == start) {
            return "the host has an empty label (or a trailing dot)";
        }
        if (i - start > TP_EP_LABEL_MAX) {
            return "a label of the host is longer than 63 characters";
        }
        if (s[start] == '-' || s[i - 1] == '-') {
            return "a label of the host starts or ends with a hyphen";
        }
        start = i + 1;
    }
    return NULL;
}


/* "x://" anywhere: a scheme other than http(s), in a pattern */
static int
tp_ep_has_scheme(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i + 3 <= len; i++) {
        if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') {
            return 1;
        }
    }
    return 0;
}


/*
 * scheme://host[:port] at the start of s; *used: its length.  Patterns
 * may leave out the scheme (https), put "*" in the host and ":*" as the
 * port.
 */
static const char *
tp_ep_parse(const char *s, size_t len, int pattern, tp_ep_t *ep, size_t *used)
{
    const char  *a, *end, *p, *q, *reason;
    long         port;

    memset(ep, 0, sizeof(*ep));

    if (len >= 8 && tp_ep_ieq(s, 8, "https://", 8)) {
        ep->https = 1;
        a = s + 8;
    } else if (len >= 7 && tp_ep_ieq(s, 7, "http://", 7)) {
        a = s + 7;
    } else if (pattern && !tp_ep_has_scheme(s, len)) {
        ep->https = 1;
        a = s;
    } else {
        return pattern ? "the scheme must be http:// or https://"
                       : "the scheme must be https://";
    }

    end = memchr(a, '/', s + len - a);
    if (end == NULL) {
        end = s + len;
    }

    if (memchr(a, '@', end - a)) {
        return "user information (user@host) is not allowed";
    }

    if (a < end && *a == '[') {
        q = memchr(a, ']', end - a);
        if (q == NULL) {
            return "a malformed IPv6 literal";
        }
        p = q + 1;
        if ((reason = tp_ep_ipv6(a, p - a)) != NULL) {
            return reason;
        }
    } else {
        p = memchr(a, ':', end - a);
        if (p == NULL) {
            p = end;
        }
        if (p == a) {
            return "the URL has no host";
        }
        if ((reason = tp_ep_hostname(a, p - a, pattern)) != NULL) {
            return reason;
        }
    }

    ep->host = a;
    ep->host_len = p - a;
    ep->wild = memchr(a, '*', p - a) != NULL;

    if (p < end) {
        if (*p != ':') {
            return "a malformed IPv6 literal";
        }
        p++;
        if (pattern && end - p == 1 && *p == '*') {
            ep->port = -1;
        } else {
            port = 0;
            for (q = p; q < end && q - p <= 5 && tp_ep_digit(*q); q++) {
                port = port * 10 + (*q - '0');
            }
            if (q == p || q != end || *p == '0' || port > 65535) {
                return "the port must be a number from 1 to 65535";
            }
            ep->port = port;
        }
    }

    *used = end - s;
    return NULL;
}


static int
tp_ep_host_class(const char *h, size_t len)
{
    const char          *last;
    const char *const   *d;
    size_t               i, n, dl;

    if (h[0] == '[') {
        return TP_EP_IP;
    }

    /* as a URL parser reads it (WHATWG): a host whose last label is a
     * number, decimal, octal or "0x" hex, is an IPv4 address, however
     * many parts and whatever their bases ("127.1", "0x7f.1",
     * "2130706433", "017700000001") */
    for (last = h + len; last > h && last[-1] != '.'; last--) {
        /* void */
    }
    n = h + len - last;

    if (n >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X')) {
        for (i = 2; i < n && tp_ep_hex((unsigned char) last[i]); i++) {
            /* void */
        }
    } else {
        for (i = 0; i < n && tp_ep_digit((unsigned char) last[i]); i++) {
            /* void */
        }
    }
    if (i == n) {
        return TP_EP_IP;
    }

    for (d = tp_ep_local; *d; d++) {
        dl = strlen(*d);
        if (tp_ep_ieq(h, len, *d, dl)
            || (len > dl && h[len - dl - 1] == '.'
                && tp_ep_ieq(h + len - dl, dl, *d, dl)))
        {
            return TP_EP_LOCAL;
        }
    }

    return memchr(h, '.', len) ? TP_EP_NAME : TP_EP_SINGLE;
}


/* one label against a pattern label: "*" is any run of characters */
static int
tp_ep_glob(const char *p, size_t plen, const char *s, size_t slen)
{
    size_t pi = 0, si = 0, star = (size_t) -1, mark = 0;

    while (si < slen) {
        if (pi < plen && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < plen && tp_ep_lower((unsigned char) p[pi])
                                == tp_ep_lower((unsigned char) s[si]))
        {
            pi++;
            si++;
        } else if (star != (size_t) -1) {
            pi = star + 1;
            si = ++mark;
        } else {
            return 0;
        }
    }
    while (pi < plen && p[pi] == '*') {
        pi++;
    }
    return pi == plen;
}


/* label by label, the same number of labels */
static int
tp_ep_host_glob(const char *p, size_t plen, const char *h, size_t hlen)
{
    const char *pe = p + plen, *he = h + hlen, *pd, *hd;

    for ( ;; ) {
        pd = memchr(p, '.', pe - p);
        hd = memchr(h, '.', he - h);
        if ((pd == NULL) != (hd == NULL)) {
            return 0;
        }
        if (!tp_ep_glob(p, (pd ? pd : pe) - p, h, (hd ? hd : he) - h)) {
            return 0;
        }
        if (pd == NULL) {
            return 1;
        }
        p = pd + 1;
        h = hd + 1;
    }
}


/* the next pattern of allow at *pos (commas and blanks between them) */
static int
tp_ep_next(const char *allow, size_t len, size_t *pos, const char **p,
    size_t *plen)
{
    size_t i = *pos, start;

    while (i < len && (allow[i] == ',' || allow[i] == ' ' || allow[i] == '\t'
                       || allow[i] == '\n' || allow[i] == '\r'))
    {
        i++;
    }
    if (i == len) {
        return 0;
    }
    for (start = i; i < len && allow[i] != ',' && allow[i] != ' '
                    && allow[i] != '\t' && allow[i] != '\n'
                    && allow[i] != '\r'; i++)
    {
        /* void */
    }
    *p = allow + start;
    *plen = i - start;
    *pos = i;
    return 1;
}


int
tp_endpoint_pattern_valid(const char *pattern, size_t len,
    const char **reason)
{
    const char  *r, *dot;
    size_t       used, i, dots;
    tp_ep_t      ep;

    if ((r = tp_ep_parse(pattern, len, 1, &ep, &used)) == NULL
        && used != len)
    {
        r = "a pattern is [scheme://]host[:port], without a path";
    }

    /* "*.com" or "*" would take names of anyone's choosing */
    if (r == NULL && ep.wild) {
        dot = NULL;
        for (i = ep.host_len, dots = 0; i > 0 && dots < 2; i--) {
            if (ep.host[i - 1] == '.') {
                dots++;
                dot = ep.host + i - 1;
            }
        }
        if (dots < 2 || memchr(dot, '*', ep.host + ep.host_len - dot)) {
            r = "a wildcard needs two fixed labels after it, as in"
                " *.openai.azure.com";
        }
    }

    if (r != NULL) {
        *reason = r;
        return -1;
    }
    return 0;
}


int
tp_endpoint_allow_valid(const char *allow, size_t len, const char **reason,
    const char **bad, size_t *bad_len)
{
    const char  *p;
    size_t       pos = 0, plen, n = 0;

    while (tp_ep_next(allow, len, &pos, &p, &plen)) {
        if (tp_endpoint_pattern_valid(p, plen, reason) != 0) {
            *bad = p;
            *bad_len = plen;
            return -1;
        }
        n++;
    }
    if (n == 0) {
        *reason = "the allowlist has no pattern";
        *bad = allow;
        *bad_len = 0;
        return -1;
    }
    return 0;
}


int
tp_endpoint_check(const char *url, size_t len, const char *allow,
    size_t allow_len, const char **reason)
{
    const char  *p, *s, *seg;
    size_t       i, used, plen, pos;
    long         uport, pport;
    int          cls, host_ok = 0, scheme_ok = 0, c;
    tp_ep_t      u, pat;

    for (i = 0; i < len; i++) {
        c = (unsigned char) url[i];
        if (c <= ' ' || c >= 0x7f) {
            *reason = "blanks, control and non-ASCII characters are not"
                      " allowed";
            return -1;
        }
        if (c == '?' || c == '#') {
            *reason = "a query or fragment is not allowed";
            return -1;
        }
        if (c == '\\' || c == '%') {
            *reason = "backslashes and percent-escapes are not allowed";
            return -1;
        }
    }

    if ((*reason = tp_ep_parse(url, len, 0, &u, &used)) != NULL) {
        return -1;
    }

    /* the path: plain segments only, nothing a parser could read twice */
    for (s = url + used, seg = s; s <= url + len; s++) {
        if (s == url + len || *s == '/') {
            if ((s - seg == 2 && seg[1] == '.')
                || (s - seg == 3 && seg[1] == '.' && seg[2] == '.'))
            {
                *reason = "dot segments (. and ..) are not allowed in the"
                          " path";
                return -1;
            }
            seg = s;
            continue;
        }
        c = (unsigned char) *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || tp_ep_digit(c) || c == '-' || c == '.' || c == '_'
              || c == '~'))
        {
            *reason = "the path may only have letters, digits and - . _ ~ /";
            return -1;
        }
    }

    cls = tp_ep_host_class(u.host, u.host_len);
    uport = u.port ? u.port : (u.https ? 443 : 80);

    pos = 0;
    while (tp_ep_next(allow, allow_len, &pos, &p, &plen)) {
        if (tp_ep_parse(p, plen, 1, &pat, &used) != NULL || used != plen) {
            continue;
        }

        if (pat.wild ? cls != TP_EP_NAME
                       || !tp_ep_host_glob(pat.host, pat.host_len, u.host,
                                           u.host_len)
                     : !tp_ep_ieq(pat.host, pat.host_len, u.host, u.host_len))
        {
            continue;
        }
        host_ok = 1;

        if (pat.https != u.https) {
            continue;
        }
        scheme_ok = 1;

        pport = pat.port ? pat.port : (pat.https ? 443 : 80);
        if (pport == -1 || pport == uport) {
            *reason = NULL;
            return 0;
        }
    }

    if (!host_ok) {
        *reason = tp_ep_class_reason[cls];
    } else if (!scheme_ok) {
        *reason = u.https ? "the operator allows only http:// for this host"
                          : "the scheme must be https://";
    } else {
        *reason = "this port is not allowed for this host";
    }
    return -1;
}
