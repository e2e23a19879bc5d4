# vunify — see README.md.  make / make check / make demo / make bench / make install
CC ?= cc
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build

WARN := -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral \
	-Wstrict-prototypes -Wpointer-arith -Wvla
CSTD := -std=gnu17
OPT ?= -O2 -g
CPPFLAGS += -Ilib -D_FILE_OFFSET_BITS=64 -DVUNIFY_VERSION=\"0.1\"
CFLAGS_ALL = $(CSTD) $(WARN) $(OPT) $(CFLAGS)
LDLIBS += -lcrypto -lpthread

LIB_SRC := $(sort $(wildcard lib/*.c))
CMD_SRC := $(sort $(wildcard src/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CMD_OBJ := $(CMD_SRC:%.c=$(BUILD)/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tools/%)

.PHONY: all check unit integration lint format format-check cppcheck asan install deb demo bench bench-scale deps clean
all: $(BUILD)/vunify $(TOOL_BIN)

$(BUILD)/%.o: %.c $(wildcard lib/*.h src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libvunify.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/vunify: $(CMD_OBJ) $(BUILD)/libvunify.a
	$(CC) $(CFLAGS_ALL) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# tests/unit/*.h: the helpers the unit tests share (tmpdir.h, unit.h, pool_fixture.h)
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libvunify.a $(wildcard lib/*.h) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_ALL) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(BUILD)/libvunify.a $(LDLIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libvunify.a $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS_ALL) $(LDFLAGS) -o $@ $< $(BUILD)/libvunify.a $(LDLIBS)

# Unit tests, run against the plain and the sanitizer build.
unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" all $(UNIT_SRC:tests/unit/%.c=build-asan/tests/%)

integration: all asan
	tests/integration/run.sh

format:
	clang-format -i lib/*.c lib/*.h src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c

format-check:
	@clang-format --dry-run --Werror lib/*.c lib/*.h src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/tools/*.c

cppcheck:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
		--std=c11 --inline-suppr --suppress=missingIncludeSystem -Ilib lib src tests/tools

lint: format-check cppcheck

# The README's test command: everything, as CI runs it.
check: deps
	$(MAKE) all asan
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) BUILD=build-asan unit
	tests/integration/run.sh
	@echo "== integration tests again with the ASan/UBSan build of vunify (hostile trees, Debian guests)"
	VUNIFY=$(CURDIR)/build-asan/vunify VUNIFY_TEST_LOGS=$(CURDIR)/build-asan/integration-logs \
		tests/integration/run.sh t10 t20

deps:
	scripts/deps.sh

demo: deps
	@echo "demo: building vunify"
	@$(MAKE) -s --no-print-directory all
	scripts/demo.sh

bench: deps
	$(MAKE) BUILD=build-release OPT="-O3 -march=native -DNDEBUG" all
	scripts/bench.sh

# Many synthetic guests (SCALE_N, default 50): growth against the pool's size.
bench-scale: deps
	$(MAKE) BUILD=build-release OPT="-O3 -march=native -DNDEBUG" all
	scripts/bench-scale.sh

# mount(8) looks for mount.vunify in /sbin only; the units name
# /usr/sbin/vunify, rewritten to $(PREFIX)/sbin/vunify.
MOUNT_HELPER_DIR ?= /sbin
UNIT_DIR ?= $(PREFIX)/lib/systemd/system
COMPLETION_DIR ?= $(PREFIX)/share/bash-completion/completions
install: $(BUILD)/vunify
	install -D -m 0755 $(BUILD)/vunify $(DESTDIR)$(PREFIX)/sbin/vunify
	install -d $(DESTDIR)$(MOUNT_HELPER_DIR) $(DESTDIR)$(UNIT_DIR)
	ln -sf $(PREFIX)/sbin/vunify $(DESTDIR)$(MOUNT_HELPER_DIR)/mount.vunify
	install -D -m 0644 docs/vunify.8 $(DESTDIR)$(PREFIX)/share/man/man8/vunify.8
	ln -sf vunify.8 $(DESTDIR)$(PREFIX)/share/man/man8/mount.vunify.8
	for u in systemd/*.service systemd/*.timer; do \
		sed 's|/usr/sbin/vunify|$(PREFIX)/sbin/vunify|g' $$u >$(DESTDIR)$(UNIT_DIR)/$${u#systemd/} || exit 1; \
	done
	install -D -m 0644 completion/vunify $(DESTDIR)$(COMPLETION_DIR)/vunify

# The Debian package, built from a copy of the source tree (tracked and new
# files, not build products) in $(BUILD)/deb, so the tree stays clean and
# the .deb lands in $(BUILD)/deb/.
deb:
	rm -rf $(BUILD)/deb
	mkdir -p $(BUILD)/deb/vunify
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z -co --exclude-standard | \
			tar --null -T - --ignore-failed-read -cf - | tar -x -C $(BUILD)/deb/vunify; \
	else \
		tar --exclude='./build*' --exclude=./.git -cf - . | tar -x -C $(BUILD)/deb/vunify; \
	fi
	cd $(BUILD)/deb/vunify && dpkg-buildpackage -us -uc -b
	@ls -l $(BUILD)/deb/*.deb

clean:
	rm -rf build build-asan build-release
