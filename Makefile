# Relaynode build. `make` builds release binaries into build/; `make test` builds an
# ASan+UBSan tree into build/asan/ and runs every unit and integration test.
#
# Layout (sources are found by glob, so adding a module needs no edit here):
#   directory/*.c         -> librelaydir.a   (model, engine, LDAP loader; never includes node/)
#   node/*.c but main.c   -> libnode.a       (SMTP node pieces)
#   node/main.c           -> relaynode
#   tools/*.c             -> relayctl
#   tests/unit/test_*.c   -> one cmocka binary each
#   tests/fuzz/fuzz_*.c   -> libFuzzer targets (`make fuzz`, clang)

CC       ?= cc
B        ?= build
OPT      ?= -O2
SAN      ?=
CFLAGS   += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -Wformat=2 -Wvla -fno-strict-aliasing -D_GNU_SOURCE -I. $(SAN)
LDFLAGS  += $(SAN)
LIBS     := -lldap -llber -levent -levent_openssl -levent_pthreads -lssl -lcrypto -lsasl2 -lkrb5 -lzmq -lcares -lpthread -lm

DIR_SRC  := $(sort $(wildcard directory/*.c))
NODE_SRC := $(sort $(filter-out node/main.c,$(wildcard node/*.c)))
TOOL_SRC := $(sort $(wildcard tools/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC:= $(sort $(wildcard tests/bench/bench_*.c))

DIR_OBJ  := $(DIR_SRC:%.c=$(B)/%.o)
NODE_OBJ := $(NODE_SRC:%.c=$(B)/%.o)
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
BENCH_BIN:= $(BENCH_SRC:tests/bench/%.c=$(B)/tests/%)

# relaynode links once the SMTP session (node/smtp_session.c, smtp_session_start) exists.
BINS := $(B)/relayctl $(if $(and $(wildcard node/main.c),$(wildcard node/smtp_session.c)),$(B)/relaynode)

.PHONY: all deps test unit run bench fuzz check-deps clean
all: $(BINS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/librelaydir.a: $(DIR_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^
$(B)/libnode.a: $(NODE_OBJ)
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(B)/relayctl: $(TOOL_OBJ) $(B)/libnode.a $(B)/librelaydir.a
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(B)/libnode.a $(B)/librelaydir.a $(LIBS)
$(B)/relaynode: $(B)/node/main.o $(B)/libnode.a $(B)/librelaydir.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libnode.a $(B)/librelaydir.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libnode.a $(B)/librelaydir.a -lcmocka $(LIBS)
$(B)/tests/bench_%: tests/bench/bench_%.c $(B)/libnode.a $(B)/librelaydir.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libnode.a $(B)/librelaydir.a $(LIBS)

deps:
	@bash deploy/deps.sh

# The test build: sanitizers on, warnings are errors, fault injection compiled in
# (RN_FAULTS: RELAYNODE_FAULT=... hooks the tests use; never in the release build), then
# every test.
test: deps
	@$(MAKE) --no-print-directory B=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DRN_FAULTS" \
	  all unit-bins
	@bash tests/check-deps.sh
	@bash tests/run.sh build/asan

unit-bins: $(UNIT_BIN)
unit: unit-bins
	@bash tests/run.sh $(B) unit

bench: all $(BENCH_BIN)
	@bash tests/bench/run.sh $(B)

# libFuzzer targets (clang): the libraries rebuilt with coverage, then every target for
# FUZZ_TIME seconds (tests/fuzz/run.sh). Not part of `make test`.
FUZZ_TIME ?= 30
fuzz:
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang OPT=-O1 \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
	  build/fuzz/libnode.a build/fuzz/librelaydir.a
	@bash tests/fuzz/run.sh build/fuzz $(FUZZ_TIME)

run: deps all
	@bash deploy/run.sh $(B)

# directory/ never includes node/; each external library header lives in one file.
check-deps:
	@bash tests/check-deps.sh

clean:
	rm -rf build

-include $(shell find $(B) -name '*.d' 2>/dev/null)
