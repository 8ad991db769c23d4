# paygate — see README.md. `make`, `make check`, `make demo`.
CC      ?= cc
CFLAGS  ?= -O2 -g
PREFIX  ?= /usr/local
DESTDIR ?=
PYTHON  ?= /usr/bin/python3

# SAN=1 builds everything under AddressSanitizer + UBSan into build-asan/.
# BUILD=dir overrides the output folder (parallel work in one checkout).
ifeq ($(SAN),1)
B        := $(or $(BUILD),build-asan)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
B        := $(or $(BUILD),build)
SANFLAGS :=
endif

WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wmissing-prototypes -Wvla -Wcast-qual
PKGS    := libmariadb openssl libxml-2.0 libcurl jansson inih libqrencode libzip zlib
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = $(CFLAGS) $(WARN) $(SANFLAGS) -D_GNU_SOURCE $(LAYERS:%=-Iinclude/%) $(PKG_CFLAGS) -MMD -MP
LDLIBS_ALL = $(PKG_LIBS) -lpthread

# src/ by layer (README "Layout"): util <- channel, store <- core <- web; one -I per layer
LAYERS   := util channel store core web
LIB_SRC  := $(wildcard $(LAYERS:%=src/%/*.c))
APP_SRC  := $(wildcard fcgi-app/*.c)
CLI_SRC  := $(wildcard cli/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)

SQL_SRC  := $(sort $(wildcard sql/[0-9]*.sql))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/obj/%.o) $(B)/obj/gen/migrations.o
APP_OBJ  := $(APP_SRC:%.c=$(B)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/obj/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)

.PHONY: all deps check unit unit-asan integration demo demo-stop install clean lint

all: $(B)/paygate.fcgi $(B)/paygatectl

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# The migrations are compiled into the library (paygatectl migrate needs no files).
$(B)/gen/migrations.c: scripts/embed-sql.sh $(SQL_SRC)
	@mkdir -p $(dir $@)
	sh scripts/embed-sql.sh $(SQL_SRC) > $@.tmp && mv $@.tmp $@

$(B)/obj/gen/migrations.o: $(B)/gen/migrations.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libpaygate.a: $(LIB_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^

$(B)/paygate.fcgi: $(APP_OBJ) $(B)/libpaygate.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $(APP_OBJ) $(B)/libpaygate.a $(LDLIBS_ALL) -lfcgi

$(B)/paygatectl: $(CLI_OBJ) $(B)/libpaygate.a
	$(CC) $(CFLAGS) $(SANFLAGS) -o $@ $(CLI_OBJ) $(B)/libpaygate.a $(LDLIBS_ALL)

$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(B)/libpaygate.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libpaygate.a $(LDLIBS_ALL) -lcmocka

deps:
	@bash scripts/deps.sh

# Unit tests: each cmocka runner prints its own closing lines.
unit: $(UNIT_BIN)
	@set -e; cd tests/unit && for t in $(UNIT_BIN:%=../../%); do echo "== $$t"; $$t; done

unit-asan:
	$(MAKE) SAN=1 unit

integration: all
	$(MAKE) SAN=1 all
	PAYGATE_BUILD=$(CURDIR)/build-asan $(PYTHON) -m pytest -p no:cacheprovider -q tests/integration

# Bans risky calls and floating point, and checks that every header compiles
# on its own.
lint:
	@! grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)\(' src/*/*.c fcgi-app/*.c cli/*.c include/*/*.h || { echo "lint: risky call above"; exit 1; }
	@! grep -nwE 'double|float' src/*/*.c fcgi-app/*.c cli/*.c include/*/*.h || { echo "lint: floating point above"; exit 1; }
	@! grep -nE 'mysql_query|mysql_real_query|XML_PARSE_NOENT|XML_PARSE_DTDLOAD' src/*/*.c fcgi-app/*.c cli/*.c || { echo "lint: forbidden API above"; exit 1; }
	@for h in include/*/*.h; do echo "#include \"$$(basename $$h)\"" | $(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -x c -fsyntax-only - || exit 1; done
	@bash scripts/layers.sh
	@echo "lint: ok"

check: deps
	$(MAKE) lint
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) unit-asan
	$(MAKE) fuzz-regress
	$(MAKE) integration

demo: deps all
	bash scripts/demo.sh start

demo-stop:
	bash scripts/demo.sh stop

# Benchmarks: builds into build-bench/, runs the stack under run/bench/, prints
# the table (also run/bench/results.md). BENCH_SECONDS=3 for a quick pass.
.PHONY: bench
bench:
	$(PYTHON) bench/bench.py

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/paygate/sql $(DESTDIR)$(PREFIX)/share/paygate/apache-conf
	install -m 0755 $(B)/paygate.fcgi $(B)/paygatectl $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 sql/*.sql $(DESTDIR)$(PREFIX)/share/paygate/sql/
	install -m 0644 apache-conf/* $(DESTDIR)$(PREFIX)/share/paygate/apache-conf/

# Fuzzing (tests/fuzz/README.md). `make fuzz` builds the libFuzzer targets
# with clang into build-fuzz/ and runs each for FUZZ_SECONDS: new inputs go to
# build-fuzz/corpus/<target>/ (the committed seeds are only read), a crash,
# leak or UB report stops it with the input in build-fuzz/artifacts/<target>/.
# `make fuzz-regress` (part of check) builds the same targets with $(CC),
# ASan+UBSan and tests/fuzz/replay_main.c, and replays every committed corpus
# and regression input. FUZZ_TARGETS="xml money" picks targets.
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_MAIN    ?=
FUZZ_LDSAN   ?= $(SANFLAGS)
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=all -Wno-format-nonliteral
FUZZ_DIRS     = tests/fuzz/corpus/$$t $$(test -d tests/fuzz/regressions/$$t && echo tests/fuzz/regressions/$$t)
.PHONY: fuzz fuzz-regress fuzz-bins fuzz-replay

$(B)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(FUZZ_MAIN) $(B)/libpaygate.a
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) $(FUZZ_LDSAN) -o $@ $< $(FUZZ_MAIN) $(B)/libpaygate.a $(LDLIBS_ALL)

fuzz-bins: $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)

fuzz:
	$(MAKE) CC=clang BUILD=build-fuzz CFLAGS="-O1 -g" SANFLAGS="$(FUZZ_SAN)" FUZZ_MAIN= \
	    FUZZ_LDSAN="-fsanitize=fuzzer,address,undefined" fuzz-bins
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t build-fuzz/artifacts/$$t; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS) s, log build-fuzz/fuzz_$$t.log"; \
	  build-fuzz/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/artifacts/$$t/ build-fuzz/corpus/$$t $(FUZZ_DIRS) \
	    > build-fuzz/fuzz_$$t.log 2>&1 || { tail -n 60 build-fuzz/fuzz_$$t.log; \
	    echo "fuzz: fuzz_$$t FAILED, input in build-fuzz/artifacts/$$t/"; exit 1; }; \
	  grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' build-fuzz/fuzz_$$t.log; \
	done

fuzz-regress:
	$(MAKE) SAN=1 FUZZ_MAIN=tests/fuzz/replay_main.c fuzz-replay

fuzz-replay: fuzz-bins
	@set -e; for t in $(FUZZ_TARGETS); do $(B)/fuzz/fuzz_$$t $(FUZZ_DIRS); done

clean:
	rm -rf build build-asan build-fuzz build-bench

-include $(LIB_OBJ:.o=.d) $(APP_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
