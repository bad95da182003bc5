# partisan: one entry point. `make`, `make check`, `make demo`, `make bench`,
# `make sim`, `make install PREFIX=/usr/local DESTDIR=`, `make uninstall`
# (with the same variables as the install).

B        ?= build
SAN      ?=
VERSION  := 0.1.0
SOVER    := 0

# Where `make install` puts things. Each can be given on the command line
# (Debian: `make install PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu
# DESTDIR=debian/tmp`); they are recursive so PREFIX moves the others.
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
PKGCONFIGDIR?= $(LIBDIR)/pkgconfig
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# /etc even for /usr/local: partisand reads /etc/partisan/partisand.json
# (compiled in); SYSCONFDIR only says where the example config goes.
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
INSTALL     ?= install
OBJCOPY     ?= objcopy

PKGS     := libevent libprotobuf-c jansson
CC       ?= cc
# CPPFLAGS, CFLAGS and LDFLAGS belong to whoever builds (a distribution's
# hardening flags, say): they are used on every compile and link, after ours
# so that theirs win. The project's own flags live in the variables below.
CFLAGS   ?= -O2 -g
CPPFLAGS ?=
LDFLAGS  ?=
# Warnings are errors only where we control the compiler: `make check` (and
# so CI) sets WERROR=-Werror; a plain `make` with a newer compiler warns.
WERROR   ?=
WFLAGS   := -std=c11 -Wall -Wextra -Wno-unused-parameter -Wshadow \
            -Wstrict-prototypes -Wmissing-prototypes
# Sanitizer builds add their flags after CFLAGS (their -O1 wins); the same
# flags go to the link.
ifeq ($(SAN),1)
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
endif
ifeq ($(SAN),fuzz)
SANFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link
FUZZMAIN := -fsanitize=fuzzer
else
FUZZMAIN := tests/fuzz/driver.c
endif
PKGCFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
INC      := -I$(B)/proto -Iproto -Idaemon -Idaemon/core -Iclient/include -Iclient
# A pure core (daemon/core/) sees only the other cores and the generated
# protobuf headers: including a shell header there does not compile
# (tests/imports.py checks the same, and system headers for I/O, in make check).
CORE_INC := -I$(B)/proto -Idaemon/core
ALLCPPFLAGS = -D_GNU_SOURCE $(INC) $(CPPFLAGS)
ALLCFLAGS = $(WFLAGS) $(WERROR) $(CFLAGS) $(SANFLAGS) $(PKGCFLAGS) -fPIC -MMD -MP
COMPILE   = $(CC) $(ALLCPPFLAGS) $(ALLCFLAGS)
# Linking gets CFLAGS too (-fstack-protector, -flto and the sanitizers need it).
LINK      = $(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS)

PROTOS   := $(wildcard proto/*.proto)
PB_C     := $(patsubst proto/%.proto,$(B)/proto/%.pb-c.c,$(PROTOS))
PB_H     := $(PB_C:.c=.h)
COMMON   := $(wildcard proto/*.c)
CORES    := $(wildcard daemon/core/*.c)
DAEMON   := $(filter-out daemon/main.c,$(wildcard daemon/*.c)) $(CORES)
CLIENT   := $(filter-out client/partisanctl.c,$(wildcard client/*.c))

OBJ       = $(patsubst %.c,$(B)/obj/%.o,$(1))
PB_OBJ   := $(PB_C:.c=.o)
COMMON_O := $(call OBJ,$(COMMON)) $(PB_OBJ)
DAEMON_O := $(call OBJ,$(DAEMON))
CLIENT_O := $(call OBJ,$(CLIENT))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
SIM_SRC  := $(wildcard tests/sim/*.c)
SIMSCALE_SRC := $(wildcard tests/simscale/*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
BENCH_SRC:= $(wildcard bench/*.c)
BENCH_BIN:= $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

LIBS     := $(B)/libpartisan-client.so $(B)/libpartisan-client.a
BINS     := $(B)/partisand $(B)/partisanctl

.PHONY: all deps check unit sim-test integration sim fuzz-corpus demo bench install \
        uninstall clean format tests fuzz campaign FORCE
.SECONDARY:

GENERATED := $(B)/libpartisan-client.pc $(B)/partisand.service

all: $(BINS) $(LIBS) $(GENERATED)

deps:
	@sh tests/deps.sh

# Generated protobuf code.
$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/proto
	protoc-c --proto_path=proto --c_out=$(B)/proto $<

# A generated file includes the headers of the files its .proto imports
# (ipc and peer import common): every header first.
$(B)/proto/%.pb-c.o: $(B)/proto/%.pb-c.c | $(PB_H)
	$(CC) $(ALLCPPFLAGS) $(filter-out -Wmissing-prototypes,$(ALLCFLAGS)) -c -o $@ $<

$(B)/obj/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	$(COMPILE) -c -o $@ $<

$(B)/obj/daemon/core/%.o: INC := $(CORE_INC)

$(B)/libpartisand.a: $(DAEMON_O) $(COMMON_O)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/partisand: $(B)/obj/daemon/main.o $(B)/libpartisand.a
	$(LINK) -o $@ $^ $(PKGLIBS) -levent_core -lmbedtls -lmbedx509 -lmbedcrypto -lm

# The static library holds one object whose only global symbols are the
# public API (the names client/libpartisan-client.map exports from the shared
# library): the client's internals (pc_*) and the code it shares with the
# daemon (proto/: frame_*, ref_*, the protobuf-c messages) are made local, so
# they cannot clash with a program's own symbols. The objects are linked
# together first (-r) so the internal references are resolved before the
# symbols become local. Under -flto that link compiles the IR to machine code
# (nolto-rel): IR left in the object would still name the symbols global.
$(B)/client-api.syms: client/libpartisan-client.map
	@mkdir -p $(B)
	sed -n 's/^[[:space:]]*\(partisan_[A-Za-z0-9_]*\);.*/\1/p' $< > $@

$(B)/obj/libpartisan-client.o: $(CLIENT_O) $(COMMON_O) $(B)/client-api.syms
	$(CC) $(CFLAGS) $(SANFLAGS) $(if $(findstring -flto,$(CFLAGS)),-flinker-output=nolto-rel) \
	  -r -nostdlib -o $@.tmp $(CLIENT_O) $(COMMON_O)
	$(OBJCOPY) --keep-global-symbols=$(B)/client-api.syms $@.tmp $@
	@rm -f $@.tmp

$(B)/libpartisan-client.a: $(B)/obj/libpartisan-client.o
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/libpartisan-client.so: $(CLIENT_O) $(COMMON_O) client/libpartisan-client.map
	$(LINK) -shared -Wl,-soname,libpartisan-client.so.$(SOVER) \
	  -Wl,--version-script=client/libpartisan-client.map \
	  -o $@.$(VERSION) $(CLIENT_O) $(COMMON_O) -lprotobuf-c
	ln -sf libpartisan-client.so.$(VERSION) $(B)/libpartisan-client.so.$(SOVER)
	ln -sf libpartisan-client.so.$(VERSION) $@

$(B)/partisanctl: $(B)/obj/client/partisanctl.o $(B)/libpartisan-client.a
	$(LINK) -o $@ $^ -ljansson -lprotobuf-c

# Files that carry install paths are generated from *.in. They depend on a
# stamp holding the path variables, rewritten only when one of them changes,
# so `make` then `make install PREFIX=/usr` regenerates them for /usr.
PATHVARS := VERSION PREFIX BINDIR SBINDIR LIBDIR INCLUDEDIR DATADIR MANDIR \
            SYSCONFDIR UNITDIR SYSUSERSDIR TMPFILESDIR
PATHVALS  = $(foreach v,$(PATHVARS),$(v)=$($(v)))
$(B)/install-paths.stamp: FORCE
	@mkdir -p $(B)
	@echo '$(PATHVALS)' | cmp -s - $@ || echo '$(PATHVALS)' > $@
FORCE:

# In the .pc, a directory under PREFIX is written as ${prefix}/..., as
# pkg-config files usually are; one elsewhere stays absolute.
pcdir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
$(B)/libpartisan-client.pc: client/libpartisan-client.pc.in $(B)/install-paths.stamp
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(call pcdir,$(LIBDIR))|g' \
	  -e 's|@INCLUDEDIR@|$(call pcdir,$(INCLUDEDIR))|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(B)/partisand.service: systemd/partisand.service.in $(B)/install-paths.stamp
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' $< > $@

# Tests.
$(B)/tests/test_%: tests/unit/test_%.c $(B)/libpartisand.a $(B)/libpartisan-client.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -o $@ $< $(B)/libpartisand.a $(B)/libpartisan-client.a \
	  $(PKGLIBS) $$(pkg-config --libs check) -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/tests/sim: $(SIM_SRC) $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -Itests/sim -o $@ $(SIM_SRC) $(B)/libpartisand.a \
	  $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/tests/simscale: $(SIMSCALE_SRC) $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -Itests/simscale -o $@ $(SIMSCALE_SRC) $(B)/libpartisand.a \
	  $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

# Fuzz targets: with tests/fuzz/driver.c (replay and seeded mutations,
# any compiler), or with SAN=fuzz under clang's libFuzzer (`make fuzz`).
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.c tests/fuzz/driver.c tests/fuzz/fuzz.h \
                  $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -Itests/fuzz -o $@ $< tests/fuzz/harness.c $(FUZZMAIN) \
	  $(B)/libpartisand.a $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

# A client as a user would build one: the public header only.
$(B)/tests/ptclient: tests/integration/ptclient.c $(B)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) -D_GNU_SOURCE -Iclient/include $(CPPFLAGS) $(WFLAGS) $(WERROR) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) \
	  -o $@ $< $(B)/libpartisan-client.a -lprotobuf-c

# The Python client's messages (tests/integration/pyclient.py): ipc_pb2
# imports common_pb2, as ipc.proto imports common.proto.
PY_PB    := $(B)/py/ipc_pb2.py $(B)/py/common_pb2.py $(B)/py/peer_pb2.py
$(B)/py/%_pb2.py: proto/%.proto
	@mkdir -p $(B)/py
	protoc --proto_path=proto --python_out=$(B)/py $<

tests: all $(UNIT_BIN) $(B)/tests/sim $(B)/tests/simscale $(B)/tests/ptclient $(PY_PB) \
       $(FUZZ_BIN)

unit: tests
	@sh tests/run-unit.sh $(B)

sim-test: tests
	@$(B)/tests/sim --suite check

integration: all
	@PARTISAN_BUILD=$(CURDIR)/$(B) /usr/bin/python3 tests/integration/run.py

# make check: everything, then everything again under ASan + UBSan.
# Both builds with -Werror: warnings fail CI, not a user's `make`.
check: deps
	@$(MAKE) --no-print-directory WERROR=-Werror tests
	@$(MAKE) --no-print-directory B=build/asan SAN=1 WERROR=-Werror tests
	@sh tests/run-all.sh

# The randomized fault campaign on network-namespace hosts (tests/campaign;
# not part of make check, which runs a short seeded one): SEED reruns a
# campaign, DURATION is seconds of faults, HOSTS 5 to 7.
SEED     ?=
DURATION ?= 600
HOSTS    ?= 5
campaign: deps
	@$(MAKE) --no-print-directory all $(PY_PB)
	@PARTISAN_BUILD=$(CURDIR)/$(B) /usr/bin/python3 tests/campaign/campaign.py \
	  $(if $(SEED),--seed $(SEED)) --duration $(DURATION) --hosts $(HOSTS)

sim: deps
	@$(MAKE) --no-print-directory tests
	@$(B)/tests/sim --suite full
	@$(B)/tests/simscale --suite full --jobs 2

# Coverage-guided fuzzing of the decoders with libFuzzer (needs clang; not
# part of make check, which runs the same targets with driver.c).
fuzz: deps
	@command -v clang >/dev/null || { echo "make fuzz needs clang: apt-get install clang" >&2; exit 1; }
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang SAN=fuzz \
	  $(patsubst tests/fuzz/%.c,build/fuzz/fuzz/%,$(FUZZ_SRC))
	@for t in $(notdir $(basename $(FUZZ_SRC))); do \
	  mkdir -p build/fuzz/corpus/$$t tests/fuzz/corpus/$$t && \
	  $(B)/fuzz/$$t --write-seeds build/fuzz/corpus/$$t && \
	  PARTISAN_SRCDIR=$(CURDIR) build/fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -runs=$(FUZZ_RUNS) -max_len=8192 -print_final_stats=1 -artifact_prefix=build/fuzz/ \
	    build/fuzz/corpus/$$t tests/fuzz/corpus/$$t || exit 1; done

# Minimise what `make fuzz` found, with the committed corpus, into
# tests/fuzz/corpus/TARGET (libFuzzer's -merge keeps the inputs that add
# coverage); `make check` replays every file there.
fuzz-corpus:
	@for t in $(notdir $(basename $(FUZZ_SRC))); do \
	  rm -rf build/fuzz/merged/$$t && mkdir -p build/fuzz/merged/$$t build/fuzz/corpus/$$t && \
	  PARTISAN_SRCDIR=$(CURDIR) build/fuzz/fuzz/$$t -merge=1 -max_len=8192 \
	    build/fuzz/merged/$$t tests/fuzz/corpus/$$t build/fuzz/corpus/$$t || exit 1; \
	  rm -rf tests/fuzz/corpus/$$t && mv build/fuzz/merged/$$t tests/fuzz/corpus/$$t; done

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/demo.sh $(B)

$(B)/bench/tls_crypto: bench/tls_crypto.c
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -o $@ $< -lmbedcrypto

$(B)/bench/%: bench/%.c $(B)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(COMPILE) $(LDFLAGS) -o $@ $< $(B)/libpartisan-client.a -lprotobuf-c -lm -pthread

bench: deps
	@sh tests/deps.sh --bench
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@/usr/bin/python3 bench/run.py $(B)

# Everything `make install` puts in place, for `make uninstall` to take out
# again: one list, so the two cannot drift apart.
BASHCOMP := $(wildcard client/partisanctl.bash-completion)
INSTALLED = $(SBINDIR)/partisand $(BINDIR)/partisanctl \
  $(LIBDIR)/libpartisan-client.a $(LIBDIR)/libpartisan-client.so.$(VERSION) \
  $(LIBDIR)/libpartisan-client.so.$(SOVER) $(LIBDIR)/libpartisan-client.so \
  $(INCLUDEDIR)/partisan/client.h $(PKGCONFIGDIR)/libpartisan-client.pc \
  $(SYSCONFDIR)/partisan/partisand.json.example \
  $(MANDIR)/man3/libpartisan-client.3 $(MANDIR)/man5/partisand.json.5 \
  $(MANDIR)/man8/partisand.8 $(MANDIR)/man8/partisanctl.8 \
  $(UNITDIR)/partisand.service $(SYSUSERSDIR)/partisan.conf $(TMPFILESDIR)/partisan.conf \
  $(if $(BASHCOMP),$(BASHCOMPDIR)/partisanctl)

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBDIR) \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(INCLUDEDIR)/partisan \
	  $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(SYSCONFDIR)/partisan $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	$(INSTALL) -m 755 $(B)/partisand $(DESTDIR)$(SBINDIR)/partisand
	$(INSTALL) -m 755 $(B)/partisanctl $(DESTDIR)$(BINDIR)/partisanctl
	$(INSTALL) -m 644 $(B)/libpartisan-client.a $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 755 $(B)/libpartisan-client.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libpartisan-client.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpartisan-client.so.$(SOVER)
	ln -sf libpartisan-client.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpartisan-client.so
	$(INSTALL) -m 644 client/include/partisan/client.h $(DESTDIR)$(INCLUDEDIR)/partisan/
	$(INSTALL) -m 644 $(B)/libpartisan-client.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(INSTALL) -m 644 conf/partisand.json $(DESTDIR)$(SYSCONFDIR)/partisan/partisand.json.example
	$(INSTALL) -m 644 client/libpartisan-client.3 $(DESTDIR)$(MANDIR)/man3/
	$(INSTALL) -m 644 daemon/partisand.json.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 644 daemon/partisand.8 client/partisanctl.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 644 $(B)/partisand.service $(DESTDIR)$(UNITDIR)/
	$(INSTALL) -m 644 systemd/partisan-sysusers.conf $(DESTDIR)$(SYSUSERSDIR)/partisan.conf
	$(INSTALL) -m 644 systemd/partisan.conf $(DESTDIR)$(TMPFILESDIR)/partisan.conf
ifneq ($(BASHCOMP),)
	$(INSTALL) -d $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 644 $(BASHCOMP) $(DESTDIR)$(BASHCOMPDIR)/partisanctl
endif
	@# A system install: refresh the loader cache so programs find the library,
	@# and create the partisan user and /run/partisan the unit runs with (a
	@# package does this in its maintainer scripts instead).
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  /sbin/ldconfig || true; \
	  if command -v systemd-sysusers >/dev/null; then \
	    systemd-sysusers $(SYSUSERSDIR)/partisan.conf || true; fi; \
	  if command -v systemd-tmpfiles >/dev/null; then \
	    systemd-tmpfiles --create $(TMPFILESDIR)/partisan.conf || true; fi; \
	fi

# Takes out the files only (and our own partisan/ directories once empty);
# the partisan user stays, as packages leave system users behind.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	@for d in $(DESTDIR)$(INCLUDEDIR)/partisan $(DESTDIR)$(SYSCONFDIR)/partisan; do \
	  rmdir "$$d" 2>/dev/null || true; done
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then /sbin/ldconfig || true; fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Removes the build directory: `make clean` all of build/, `make B=build/x
# clean` only build/x.
clean:
	rm -rf $(B)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
