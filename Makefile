# TruePort: the nginx module, the sidecar, and the commands around them.
#   make run    install what is missing, build, start the stack on 127.0.0.1:8080
#   make test   the same set-up in a throwaway folder, every test, teardown
#   make stop   stop a detached `make run` (TRUEPORT_DETACH=1)
#   make bench  gateway against plain nginx with wrk, on loopback (bench/)

BUILD    ?= build
PKGS     := libmicrohttpd libpq yajl libjwt uuid libcrypto
CC       ?= cc
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter \
            -D_GNU_SOURCE -fstack-protector-strong -D_FORTIFY_SOURCE=2 \
            $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS  += -fsanitize=address,undefined
endif

SIDECAR_SRC := $(wildcard sidecar/src/*.c sidecar/src/handlers/*.c)
SIDECAR_OBJ := $(patsubst sidecar/src/%.c,$(BUILD)/obj/%.o,$(SIDECAR_SRC))
LIB_OBJ     := $(filter-out $(BUILD)/obj/main.o,$(SIDECAR_OBJ))
UNIT_SRC    := $(wildcard sidecar/tests/*.c)
UNIT_OBJ    := $(patsubst sidecar/tests/%.c,$(BUILD)/obj/tests/%.o,$(UNIT_SRC))
HEADERS     := $(wildcard sidecar/src/*.h sidecar/src/handlers/*.h sidecar/tests/*.h)

# the module's pure C parsers (no nginx types): unit tests and fuzz targets
MODULE_PURE := $(wildcard ngx_trueport_module/trueport_*.c)
MODULE_PURE_H := $(wildcard ngx_trueport_module/trueport_*.h)
PURE_TESTS  := $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/test_*.c))
FUZZERS     := $(patsubst t/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard t/fuzz/fuzz_*.c))

.PHONY: all module sidecar unit deps run stop test test-asan clean fuzz bench \
        policy-bench bench-shm bench-policy

all: module sidecar unit

module:
	@scripts/build-module.sh

sidecar: $(BUILD)/trueport-sidecar

unit: $(BUILD)/unit-tests $(PURE_TESTS)

$(BUILD)/unit/%: t/unit/%.c $(MODULE_PURE) $(MODULE_PURE_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ingx_trueport_module -o $@ $< $(MODULE_PURE) $(LDLIBS) -lz -lpcre2-8

# libFuzzer targets (clang); run one with e.g. build/fuzz/fuzz_usage -max_total_time=60
fuzz: $(FUZZERS)

$(BUILD)/fuzz/%: t/fuzz/%.c $(MODULE_PURE) $(MODULE_PURE_H)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Ingx_trueport_module \
	    $(shell pkg-config --cflags yajl) -o $@ $< $(MODULE_PURE) -lyajl -lz -lpcre2-8

# the sidecar's spool line reader, checked against yajl itself and the
# ingester's fallback parser
FUZZ_SPOOL_SRC := $(addprefix sidecar/src/,spool_record.c json.c arena.c)

$(BUILD)/fuzz/fuzz_spool_record: t/fuzz/fuzz_spool_record.c $(FUZZ_SPOOL_SRC) \
        $(HEADERS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isidecar/src \
	    $(shell pkg-config --cflags yajl) -o $@ $< $(FUZZ_SPOOL_SRC) -lyajl

# the sidecar's request path: body parse, then the validate-or-reply
# helpers on the parsed value (sidecar sources only, none of the module's)
FUZZ_REQ_SRC := $(addprefix sidecar/src/,json.c arena.c req.c log.c db.c \
                config.c peer.c) ngx_trueport_module/trueport_endpoint.c

$(BUILD)/fuzz/fuzz_sidecar_request: t/fuzz/fuzz_sidecar_request.c \
        $(FUZZ_REQ_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
	    -Isidecar/src -Ingx_trueport_module \
	    $(shell pkg-config --cflags $(PKGS)) -o $@ $< \
	    $(FUZZ_REQ_SRC) $(shell pkg-config --libs libmicrohttpd libpq yajl) \
	    -lpthread

$(BUILD)/trueport-sidecar: $(SIDECAR_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit-tests: $(UNIT_OBJ) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: sidecar/src/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/tests/%.o: sidecar/tests/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isidecar/src -c -o $@ $<

# policies (issue 6): the sidecar validates rules with the gateway's own
# policy engine, so its pure C core is linked into the sidecar and the unit
# tests; build/tools/policy-check compiles a rule set (the internal
# endpoint's answer) the way the module does, for t/060-policies.t.
POLICY_SRC  := $(addprefix ngx_trueport_module/,trueport_policy.c \
               trueport_prompt.c trueport_usage.c)
POLICY_OBJ  := $(patsubst ngx_trueport_module/%.c,$(BUILD)/obj/module/%.o,$(POLICY_SRC))
POLICY_H    := $(addprefix ngx_trueport_module/,trueport_policy.h \
               trueport_prompt.h trueport_usage.h)
LDLIBS      += -lpcre2-8 -lz

$(BUILD)/trueport-sidecar $(BUILD)/unit-tests: $(POLICY_OBJ)
$(BUILD)/obj/handlers/policies.o: CFLAGS += -Ingx_trueport_module
$(BUILD)/obj/handlers/policies.o: $(POLICY_H)

$(BUILD)/obj/module/%.o: ngx_trueport_module/%.c $(POLICY_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

unit: $(BUILD)/tools/policy-check

$(BUILD)/tools/policy-check: t/tools/policy_check.c $(POLICY_OBJ) $(POLICY_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ingx_trueport_module $(LDFLAGS) -o $@ $< $(POLICY_OBJ) $(LDLIBS)
# build/tools/policy-bench: the engine's cost on bench scenario b
# (ns per call; run it under valgrind --tool=callgrind for exact counts)
policy-bench: $(BUILD)/tools/policy-bench

$(BUILD)/tools/policy-bench: t/tools/policy_bench.c $(POLICY_OBJ) $(POLICY_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ingx_trueport_module $(LDFLAGS) -o $@ $< $(POLICY_OBJ) $(LDLIBS)
# build/tools/policy-compile-bench: compile time of maximal allowed rule
# sets (make bench-policy)
policy-bench: $(BUILD)/tools/policy-compile-bench

$(BUILD)/tools/policy-compile-bench: t/tools/policy_compile_bench.c $(POLICY_OBJ) $(POLICY_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ingx_trueport_module $(LDFLAGS) -o $@ $< $(POLICY_OBJ) $(LDLIBS)
# end policies

# provider endpoints (issue 13): the sidecar checks a tenant's endpoint
# against TRUEPORT_ENDPOINT_ALLOWLIST with the module's own code
ENDPOINT_OBJ := $(BUILD)/obj/module/trueport_endpoint.o
ENDPOINT_USERS := $(BUILD)/obj/config.o $(BUILD)/obj/handlers/configs.o

$(BUILD)/trueport-sidecar $(BUILD)/unit-tests: $(ENDPOINT_OBJ)
$(ENDPOINT_USERS): CFLAGS += -Ingx_trueport_module
$(ENDPOINT_USERS) $(ENDPOINT_OBJ): ngx_trueport_module/trueport_endpoint.h

# build/tools/shm-collide: keys for one bucket of the key cache's old
# unkeyed hash, for bench/shm-collide.sh
$(BUILD)/tools/shm-collide: t/tools/shm_collide.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

deps:
	@scripts/deps.sh

run:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@scripts/stack.sh run

stop:
	@scripts/stack.sh stop

test:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@scripts/test.sh

# the same tests against ASan/UBSan builds of the sidecar, its unit tests
# and the module (in build-asan/); Debian's nginx is not instrumented, so it runs with the
# sanitizer runtimes preloaded, and a test block fails on any report
ASAN_PRELOAD = $(shell $(CC) -print-file-name=libasan.so) \
               $(shell $(CC) -print-file-name=libubsan.so)

test-asan:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=1 BUILD=build-asan sidecar \
	    build-asan/unit-tests
	@TRUEPORT_SANITIZE=1 TRUEPORT_BUILD=build-asan scripts/build-module.sh
	@TP_SIDECAR=$(CURDIR)/build-asan/trueport-sidecar \
	 TP_UNIT_TESTS=$(CURDIR)/build-asan/unit-tests \
	 TP_MODULE=$(CURDIR)/build-asan/ngx_http_trueport_module.so \
	 TP_NGINX_PRELOAD="$(ASAN_PRELOAD)" scripts/test.sh

# BENCH_SECONDS, BENCH_PAIRS, ... : see bench/gateway.sh
bench:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory module sidecar
	@bench/all.sh

# issue 12: 20,000 keys of one bucket of the old unkeyed hash against a
# known key's cost (BENCH_BASE=<rev>: that commit's module measured too)
bench-shm:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory module sidecar $(BUILD)/tools/shm-collide
	@bench/shm-collide.sh

# issue 13: a worker's RSS with 500 tenants' rule sets loaded, and what
# compiling a maximal allowed set costs (bench/policy-rss.sh,
# build/tools/policy-compile-bench)
bench-policy:
	@scripts/deps.sh
	@$(MAKE) --no-print-directory module sidecar $(BUILD)/tools/policy-compile-bench
	@$(BUILD)/tools/policy-compile-bench
	@bench/policy-rss.sh

clean:
	rm -rf $(BUILD) build-asan
