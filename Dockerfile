# TruePort: nginx (Debian's 1.22.1) with the trueport module, and the sidecar.
# Build:  docker build -t trueport .
# Run:    docker run -p 8080:8080 -e TRUEPORT_DATABASE_URL=... \
#             -e TRUEPORT_JWT_SECRET=... -e TRUEPORT_MASTER_KEY=... trueport

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx nginx-dev gcc make pkg-config libjwt-dev libyajl-dev libpq-dev \
      uuid-dev libssl-dev libmicrohttpd-dev libpcre2-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY config Makefile ./
COPY ngx_trueport_module/ ngx_trueport_module/
COPY sidecar/ sidecar/
COPY scripts/ scripts/
RUN make module sidecar

FROM debian:bookworm
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx-light libjwt2 libyajl2 libpq5 libuuid1 libssl3 libmicrohttpd12 \
      perl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/default
COPY --from=build /src/build/ngx_http_trueport_module.so /usr/lib/nginx/modules/
COPY --from=build /src/build/trueport-sidecar /usr/local/bin/
COPY migrations/ /usr/share/trueport/migrations/
COPY conf.d/ /usr/share/trueport/conf.d/
COPY scripts/render-conf.pl scripts/docker-entrypoint.sh scripts/supervise.sh \
     /usr/local/bin/

ENV TRUEPORT_LISTEN=127.0.0.1:8081 \
    TRUEPORT_INTERNAL_LISTEN=127.0.0.1:8082 \
    TRUEPORT_HTTP_LISTEN=0.0.0.0:8080 \
    TRUEPORT_MIGRATIONS=/usr/share/trueport/migrations
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"]
