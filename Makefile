# partisan: one entry point. `make`, `make check`, `make demo`, `make bench`,
# `make sim`, `make install PREFIX=/usr/local DESTDIR=`.

B        ?= build
SAN      ?=
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  := 0.1.0
SOVER    := 0

PKGS     := libevent libprotobuf-c jansson
CC       ?= cc
CFLAGS   ?= -O2 -g
WFLAGS   := -std=c11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow \
            -Wstrict-prototypes -Wmissing-prototypes -D_GNU_SOURCE
ifeq ($(SAN),1)
CFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=undefined
LDSAN    := -fsanitize=address,undefined
endif
ifeq ($(SAN),fuzz)
CFLAGS   := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link
LDSAN    := -fsanitize=address,undefined
FUZZMAIN := -fsanitize=fuzzer
else
FUZZMAIN := tests/fuzz/driver.c
endif
PKGCFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKGLIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
INC      := -I$(B)/proto -Iproto -Idaemon -Iclient/include -Iclient
ALLCFLAGS = $(WFLAGS) $(CFLAGS) $(INC) $(PKGCFLAGS) -fPIC -MMD -MP

PROTOS   := $(wildcard proto/*.proto)
PB_C     := $(patsubst proto/%.proto,$(B)/proto/%.pb-c.c,$(PROTOS))
PB_H     := $(PB_C:.c=.h)
COMMON   := $(wildcard proto/*.c)
DAEMON   := $(filter-out daemon/main.c,$(wildcard daemon/*.c))
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
BENCH_SRC:= $(wildcard bench/*.c)
BENCH_BIN:= $(patsubst bench/%.c,$(B)/bench/%,$(BENCH_SRC))

LIBS     := $(B)/libpartisan-client.so $(B)/libpartisan-client.a
BINS     := $(B)/partisand $(B)/partisanctl

.PHONY: all deps check unit sim-test integration sim demo bench install \
        clean format tests fuzz
.SECONDARY:

all: $(BINS) $(LIBS) $(B)/libpartisan-client.pc $(B)/partisand.service

deps:
	@sh tests/deps.sh

# Generated protobuf code.
$(B)/proto/%.pb-c.c $(B)/proto/%.pb-c.h: proto/%.proto
	@mkdir -p $(B)/proto
	protoc-c --proto_path=proto --c_out=$(B)/proto $<

$(B)/proto/%.pb-c.o: $(B)/proto/%.pb-c.c
	$(CC) $(filter-out -Wmissing-prototypes,$(ALLCFLAGS)) -c -o $@ $<

$(B)/obj/%.o: %.c | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(B)/libpartisand.a: $(DAEMON_O) $(COMMON_O)
	@rm -f $@
	ar rcs $@ $^

$(B)/partisand: $(B)/obj/daemon/main.o $(B)/libpartisand.a
	$(CC) $(LDSAN) -o $@ $^ $(PKGLIBS) -levent_core -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/libpartisan-client.a: $(CLIENT_O) $(COMMON_O)
	@rm -f $@
	ar rcs $@ $^

$(B)/libpartisan-client.so: $(CLIENT_O) $(COMMON_O) client/libpartisan-client.map
	$(CC) $(LDSAN) -shared -Wl,-soname,libpartisan-client.so.$(SOVER) \
	  -Wl,--version-script=client/libpartisan-client.map \
	  -o $@.$(VERSION) $(CLIENT_O) $(COMMON_O) -lprotobuf-c
	ln -sf libpartisan-client.so.$(VERSION) $(B)/libpartisan-client.so.$(SOVER)
	ln -sf libpartisan-client.so.$(VERSION) $@

$(B)/libpartisan-client.pc: client/libpartisan-client.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' $< > $@

$(B)/partisand.service: systemd/partisand.service.in
	sed -e 's|@SBINDIR@|$(PREFIX)/sbin|g' $< > $@

$(B)/partisanctl: $(B)/obj/client/partisanctl.o $(B)/libpartisan-client.a
	$(CC) $(LDSAN) -o $@ $^ -ljansson -lprotobuf-c

# Tests.
$(B)/tests/test_%: tests/unit/test_%.c $(B)/libpartisand.a $(B)/libpartisan-client.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -o $@ $< $(B)/libpartisand.a $(B)/libpartisan-client.a \
	  $(LDSAN) $(PKGLIBS) $$(pkg-config --libs check) -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/tests/sim: $(SIM_SRC) $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests/sim -o $@ $(SIM_SRC) $(B)/libpartisand.a \
	  $(LDSAN) $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/tests/simscale: $(SIMSCALE_SRC) $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests/simscale -o $@ $(SIMSCALE_SRC) $(B)/libpartisand.a \
	  $(LDSAN) $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

# Fuzz targets: with tests/fuzz/driver.c (replay and seeded mutations,
# any compiler), or with SAN=fuzz under clang's libFuzzer (`make fuzz`).
$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/harness.c tests/fuzz/driver.c tests/fuzz/fuzz.h \
                  $(B)/libpartisand.a | $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -Itests/fuzz -o $@ $< tests/fuzz/harness.c $(FUZZMAIN) \
	  $(B)/libpartisand.a $(LDSAN) $(PKGLIBS) -lmbedtls -lmbedx509 -lmbedcrypto -lm

$(B)/tests/ptclient: tests/integration/ptclient.c $(B)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(WFLAGS) $(CFLAGS) -Iclient/include -o $@ $< $(B)/libpartisan-client.a $(LDSAN) -lprotobuf-c

$(B)/py/ipc_pb2.py: proto/ipc.proto
	@mkdir -p $(B)/py
	protoc --proto_path=proto --python_out=$(B)/py proto/ipc.proto

tests: all $(UNIT_BIN) $(B)/tests/sim $(B)/tests/simscale $(B)/tests/ptclient $(B)/py/ipc_pb2.py \
       $(FUZZ_BIN)

unit: tests
	@sh tests/run-unit.sh $(B)

sim-test: tests
	@$(B)/tests/sim --suite check

integration: all
	@PARTISAN_BUILD=$(CURDIR)/$(B) /usr/bin/python3 tests/integration/run.py

# make check: everything, then everything again under ASan + UBSan.
check: deps
	@$(MAKE) --no-print-directory tests
	@$(MAKE) --no-print-directory B=build/asan SAN=1 tests
	@sh tests/run-all.sh

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
	  mkdir -p build/fuzz/corpus/$$t && $(B)/fuzz/$$t --write-seeds build/fuzz/corpus/$$t && \
	  PARTISAN_SRCDIR=$(CURDIR) build/fuzz/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -max_len=8192 build/fuzz/corpus/$$t || exit 1; done

demo: deps
	@$(MAKE) --no-print-directory all
	@sh tests/demo.sh $(B)

$(B)/bench/%: bench/%.c $(B)/libpartisan-client.a
	@mkdir -p $(dir $@)
	$(CC) $(ALLCFLAGS) -o $@ $< $(B)/libpartisan-client.a -lprotobuf-c -lm

bench: deps
	@sh tests/deps.sh --bench
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@/usr/bin/python3 bench/run.py $(B)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/partisan \
	  $(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/share/man/man5 \
	  $(DESTDIR)$(PREFIX)/share/man/man8 $(DESTDIR)/etc/partisan \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system $(DESTDIR)$(PREFIX)/lib/tmpfiles.d
	install -m 755 $(B)/partisand $(DESTDIR)$(PREFIX)/sbin/partisand
	install -m 755 $(B)/partisanctl $(DESTDIR)$(PREFIX)/bin/partisanctl
	install -m 644 $(B)/libpartisan-client.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/libpartisan-client.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libpartisan-client.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libpartisan-client.so.$(SOVER)
	ln -sf libpartisan-client.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libpartisan-client.so
	install -m 644 client/include/partisan/client.h $(DESTDIR)$(PREFIX)/include/partisan/
	install -m 644 $(B)/libpartisan-client.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 644 conf/partisand.json $(DESTDIR)/etc/partisan/partisand.json.example
	install -m 644 client/libpartisan-client.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -m 644 daemon/partisand.json.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 daemon/partisand.8 client/partisanctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 $(B)/partisand.service $(DESTDIR)$(PREFIX)/lib/systemd/system/
	install -m 644 systemd/partisan.conf $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/
	@# A system install: refresh the loader cache so programs find the library.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then /sbin/ldconfig || true; fi

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)
