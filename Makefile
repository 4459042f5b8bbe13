# Relaynode build. `make` builds release binaries into build/; `make test` builds an
# ASan+UBSan tree into build/asan/ and runs every unit and integration test.
#
# One static library per folder (sources found by glob, so adding a file needs no edit here),
# listed from the bottom layer up; docs/architecture.md explains the layers and
# tests/check-deps.sh keeps includes pointing down:
#   directory/base    -> librnbase.a     utilities (strings, numbers, base64, clock)
#   directory         -> librelaydir.a   the pure model and permission engine
#   directory/ldap    -> librelayldap.a  libldap: loader, lookups, watcher, admin writes
#   node/common       -> libnodecommon.a the node context, log, worker pool, TLS
#   node/metrics      -> libmetrics.a    Prometheus counters, their renderer, the scrape endpoint
#   node/spool        -> libspool.a      durable store, records, state, group commit
#   node/cluster      -> libcluster.a    the bus, its wire codec, version rules
#   node/delivery     -> libdelivery.a   queue, routing, resolver, SMTP client, DSN
#   node/milter       -> libmilter.a     content filters (milter protocol 6)
#   node/smtp         -> libsmtp.a       the SMTP server session and AUTH
#   node (no main.c)  -> libdaemon.a     daemon, listeners
#   node/main.c       -> relaynode;  tools/*.c -> relayctl
#   tests/unit/test_*.c -> one cmocka binary each; tests/fuzz/fuzz_*.c -> libFuzzer targets

CC       ?= cc
B        ?= build
OPT      ?= -O2
SAN      ?=
CFLAGS   += -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
            -Wformat=2 -Wvla -fno-strict-aliasing -D_GNU_SOURCE -I. $(SAN)
LDFLAGS  += $(SAN)
LIBS     := -lldap -llber -levent -levent_openssl -levent_pthreads -lssl -lcrypto -lsasl2 -lkrb5 -lzmq -lcares -lpthread -lm

# name:folder, bottom layer first
LAYERS   := rnbase:directory/base relaydir:directory relayldap:directory/ldap \
            nodecommon:node/common metrics:node/metrics spool:node/spool cluster:node/cluster \
            delivery:node/delivery milter:node/milter smtp:node/smtp daemon:node
lib_src   = $(sort $(filter-out node/main.c,$(wildcard $(1)/*.c)))
lib_name  = $(B)/lib$(1).a
$(foreach l,$(LAYERS),$(eval LIB_$(word 1,$(subst :, ,$(l))) := $(call lib_name,$(word 1,$(subst :, ,$(l))))) \
  $(eval OBJ_$(word 1,$(subst :, ,$(l))) := $(patsubst %.c,$(B)/%.o,$(call lib_src,$(word 2,$(subst :, ,$(l)))))))
# Link order: top layer first.
NODE_LIBS := $(LIB_daemon) $(LIB_smtp) $(LIB_milter) $(LIB_delivery) $(LIB_cluster) $(LIB_spool) \
             $(LIB_metrics) $(LIB_nodecommon) $(LIB_relayldap) $(LIB_relaydir) $(LIB_rnbase)
# relayctl: the directory side, the spool reader, the bus client; no session, delivery or daemon.
CTL_LIBS  := $(LIB_cluster) $(LIB_spool) $(LIB_metrics) $(LIB_nodecommon) $(LIB_relayldap) $(LIB_relaydir) $(LIB_rnbase)

TOOL_SRC := $(sort $(wildcard tools/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
BENCH_SRC:= $(sort $(wildcard tests/bench/bench_*.c))
TOOL_OBJ := $(TOOL_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
BENCH_BIN:= $(BENCH_SRC:tests/bench/%.c=$(B)/tests/%)

BINS := $(B)/relayctl $(B)/relaynode

.PHONY: all libs deps test unit run bench fuzz check-deps clean
all: $(BINS)
libs: $(NODE_LIBS)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(foreach l,$(LAYERS),$(eval $(LIB_$(word 1,$(subst :, ,$(l)))): $(OBJ_$(word 1,$(subst :, ,$(l))))))
$(B)/lib%.a:
	@mkdir -p $(dir $@); rm -f $@; ar rcs $@ $^

$(B)/relayctl: $(TOOL_OBJ) $(CTL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(CTL_LIBS) $(LIBS)
$(B)/relaynode: $(B)/node/main.o $(NODE_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(B)/node/main.o $(NODE_LIBS) $(LIBS)

$(B)/tests/%: tests/unit/%.c $(NODE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(NODE_LIBS) -lcmocka $(LIBS)
$(B)/tests/bench_%: tests/bench/bench_%.c $(NODE_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(NODE_LIBS) $(LIBS)

deps:
	@bash deploy/deps.sh

# The test build: sanitizers on, warnings are errors, fault injection compiled in
# (RN_FAULTS: RELAYNODE_FAULT=... hooks the tests use; never in the release build), then
# every test.
test: deps
	@$(MAKE) --no-print-directory -j$(shell nproc) B=build/asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -DRN_FAULTS" \
	  all unit-bins
	@bash tests/check-deps.sh
	@bash tests/check-size.sh
	@bash tests/harness/test_run.sh >build/asan/harness.log 2>&1 || \
	  { cat build/asan/harness.log; echo "tests/harness/test_run.sh failed"; exit 1; }
	@bash tests/run.sh build/asan
	@$(MAKE) --no-print-directory fuzz FUZZ_TIME=$(TEST_FUZZ_TIME)

unit-bins: $(UNIT_BIN)
unit: unit-bins
	@bash tests/run.sh $(B) unit

bench: all $(BENCH_BIN)
	@bash tests/bench/run.sh $(B)

# libFuzzer targets (clang): the libraries rebuilt with coverage, then every target for
# FUZZ_TIME seconds (tests/fuzz/run.sh). `make test` runs them for TEST_FUZZ_TIME seconds
# each (a crash fails it); `make fuzz` is the longer run.
FUZZ_TIME ?= 30
TEST_FUZZ_TIME ?= 5
fuzz:
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang OPT=-O1 \
	  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer" \
	  libs
	@FUZZ_LIBS="$(subst $(B)/,build/fuzz/,$(NODE_LIBS))" bash tests/fuzz/run.sh build/fuzz $(FUZZ_TIME)

run: deps all
	@bash deploy/run.sh $(B)

# Includes point down the layers, external headers stay confined (docs/architecture.md).
check-deps:
	@bash tests/check-deps.sh
	@bash tests/check-size.sh

clean:
	rm -rf build

# Install (issue 12): the binaries built in $(B) (nothing is rebuilt: build first, then e.g.
# `sudo make install`), schema, ACLs and example organisation, a sample bootstrap (installed
# once, never overwritten), man pages, systemd units, a logrotate snippet and the operations
# guide. Paths in the units, the sample and the man pages are written for /usr/sbin and
# /etc/relaynode and rewritten here to SBINDIR and SYSCONFDIR. `make deb` stages this with
# PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system (deploy/debian/build-deb.sh).
PREFIX     ?= /usr/local
SYSCONFDIR ?= $(PREFIX)/etc
SBINDIR    ?= $(PREFIX)/sbin
DATADIR    ?= $(PREFIX)/share/relaynode
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/relaynode
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
ETCDIR      = $(SYSCONFDIR)/relaynode
MAN5       := docs/man/relaynode.conf.5 docs/man/relaynode-schema.5
MAN8       := docs/man/relaynode.8 docs/man/relayctl.8
UNITS      := deploy/systemd/relaynode.service deploy/systemd/relaynode@.service
SHARE_FILES:= schema/relaynode.schema schema/relaynode.ldif deploy/slapd/acl.ldif
EXAMPLE    := $(sort $(wildcard deploy/example/*))
INST_SED    = sed -e 's|/usr/sbin/|$(SBINDIR)/|g' -e 's|/etc/relaynode|$(ETCDIR)|g' \
                  -e 's|/usr/share/relaynode|$(DATADIR)|g'
D           = $(DESTDIR)

.PHONY: install uninstall deb
install:
	@test -x $(B)/relaynode -a -x $(B)/relayctl || \
	  { echo "make install: no relaynode/relayctl in $(B): run make (or give B=) first" >&2; exit 2; }
	$(INSTALL) -d $(D)$(SBINDIR) $(D)$(DATADIR)/example $(D)$(ETCDIR) $(D)$(MANDIR)/man5 \
	  $(D)$(MANDIR)/man8 $(D)$(UNITDIR) $(D)$(SYSCONFDIR)/logrotate.d $(D)$(DOCDIR)
	$(INSTALL) -m 0755 $(B)/relaynode $(B)/relayctl $(D)$(SBINDIR)/
	$(INSTALL) -m 0644 $(SHARE_FILES) $(D)$(DATADIR)/
	$(INSTALL) -m 0644 $(EXAMPLE) $(D)$(DATADIR)/example/
	$(INST_SED) deploy/relaynode.conf.sample >$(D)$(DATADIR)/relaynode.conf.sample
	chmod 0644 $(D)$(DATADIR)/relaynode.conf.sample
	@if [ -e $(D)$(ETCDIR)/relaynode.conf ]; then \
	  echo "make install: keeping $(D)$(ETCDIR)/relaynode.conf (the sample is $(DATADIR)/relaynode.conf.sample)"; \
	else $(INSTALL) -m 0644 $(D)$(DATADIR)/relaynode.conf.sample $(D)$(ETCDIR)/relaynode.conf; fi
	for f in $(MAN5); do $(INST_SED) $$f >$(D)$(MANDIR)/man5/$${f##*/} && chmod 0644 $(D)$(MANDIR)/man5/$${f##*/}; done
	for f in $(MAN8); do $(INST_SED) $$f >$(D)$(MANDIR)/man8/$${f##*/} && chmod 0644 $(D)$(MANDIR)/man8/$${f##*/}; done
	for f in $(UNITS); do $(INST_SED) $$f >$(D)$(UNITDIR)/$${f##*/} && chmod 0644 $(D)$(UNITDIR)/$${f##*/}; done
	$(INSTALL) -m 0644 deploy/logrotate/relaynode $(D)$(SYSCONFDIR)/logrotate.d/relaynode
	$(INSTALL) -m 0644 docs/operations.md docs/ad-profile.md $(D)$(DOCDIR)/

# Everything install wrote, except a relaynode.conf that differs from the sample (edited:
# kept, and said so). Directories are removed only when empty.
uninstall:
	rm -f $(D)$(SBINDIR)/relaynode $(D)$(SBINDIR)/relayctl
	@if [ -e $(D)$(ETCDIR)/relaynode.conf ]; then \
	  if cmp -s $(D)$(ETCDIR)/relaynode.conf $(D)$(DATADIR)/relaynode.conf.sample; then \
	    rm -f $(D)$(ETCDIR)/relaynode.conf; \
	  else echo "make uninstall: keeping the edited $(D)$(ETCDIR)/relaynode.conf"; fi; fi
	rm -f $(addprefix $(D)$(DATADIR)/,$(notdir $(SHARE_FILES)) relaynode.conf.sample) \
	  $(addprefix $(D)$(DATADIR)/example/,$(notdir $(EXAMPLE))) \
	  $(addprefix $(D)$(MANDIR)/man5/,$(notdir $(MAN5))) \
	  $(addprefix $(D)$(MANDIR)/man8/,$(notdir $(MAN8))) \
	  $(addprefix $(D)$(UNITDIR)/,$(notdir $(UNITS))) \
	  $(D)$(SYSCONFDIR)/logrotate.d/relaynode $(D)$(DOCDIR)/operations.md \
	  $(D)$(DOCDIR)/ad-profile.md
	@for d in $(D)$(DATADIR)/example $(D)$(DATADIR) $(D)$(DOCDIR) $(D)$(ETCDIR); do \
	  rmdir $$d 2>/dev/null || true; done

# A Debian package of the binaries in $(B): $(DEB_OUT)/relaynode_<version>_<arch>.deb.
DEB_OUT ?= $(B)
deb:
	@bash deploy/debian/build-deb.sh $(B) $(DEB_OUT)

-include $(shell find $(B) -type f -name '*.d' 2>/dev/null)
