# TruePort: the nginx module, the sidecar, and the commands around them.
#   make run    install what is missing, build, start the stack on 127.0.0.1:8080
#   make test   the same set-up in a throwaway folder, every test, teardown
#   make stop   stop a detached `make run` (TRUEPORT_DETACH=1)

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

.PHONY: all module sidecar unit deps run stop test clean fuzz bench

all: module sidecar unit

module:
	@scripts/build-module.sh

sidecar: $(BUILD)/trueport-sidecar

unit: $(BUILD)/unit-tests

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

clean:
	rm -rf $(BUILD)
