# smtpfault - GNU make
PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
SYSCONFDIR	?= $(PREFIX)/etc
DATADIR		?= $(PREFIX)/share
MANDIR		?= $(DATADIR)/man
DESTDIR		?=

CC		?= cc
CFLAGS		?= -O2 -g
WARN		 = -std=c11 -Wall -Wextra -Wshadow -Wpointer-arith -Wcast-qual \
		   -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
		   -Werror=implicit-function-declaration
ifeq ($(WERROR),1)
WARN		+= -Werror
endif
# kept apart from CFLAGS so `make CFLAGS=...` cannot drop them
ifneq ($(SANITIZE),)
SANFLAGS	:= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer \
		   -fno-sanitize-recover=all
endif

LIBEV_LIBS	?= -lev
INIPARSER_CFLAGS ?=
INIPARSER_LIBS	?= -liniparser
OPENSSL_LIBS	?= $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
CUNIT_LIBS	?= $(shell pkg-config --libs cunit 2>/dev/null || echo -lcunit)

CPPFLAGS	+= -D_GNU_SOURCE -Iresponder -Ifaults $(INIPARSER_CFLAGS) \
		   -DSCENARIO_DIR=\"$(SYSCONFDIR)/smtpfault/scenarios\"
JANSSON_LIBS	?= $(shell pkg-config --libs jansson 2>/dev/null || echo -ljansson)
MHD_LIBS	?= $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
LDLIBS		+= $(LIBEV_LIBS) $(INIPARSER_LIBS) -llmdb $(OPENSSL_LIBS) \
		   $(JANSSON_LIBS) -lm

B		:= build
# modules that do no I/O of their own: shared by the server and the tests
CORE_SRC	:= responder/util.c responder/log.c responder/iobuf.c \
		   faults/match.c faults/scenario.c faults/store.c faults/fault.c \
		   faults/greylist.c \
		   responder/dscan.c responder/cmd.c responder/conf.c \
		   responder/events.c responder/capture.c responder/report.c \
		   responder/timeline.c
SERVER_SRC	:= responder/server.c responder/session.c responder/smtp.c \
		   responder/hook.c responder/starttls.c responder/main.c \
		   responder/tlsio.c responder/control.c responder/ctldata.c
UNIT_SRC	:= $(sort $(wildcard tests/unit/*.c))

CORE_OBJ	:= $(CORE_SRC:%.c=$(B)/%.o)
SERVER_OBJ	:= $(SERVER_SRC:%.c=$(B)/%.o)
UNIT_OBJ	:= $(UNIT_SRC:%.c=$(B)/%.o)
DEPS		:= $(CORE_OBJ:.o=.d) $(SERVER_OBJ:.o=.d) $(UNIT_OBJ:.o=.d)

.PHONY: all run check check-unit check-integration e2e asan bench deps \
	install uninstall clean format

all: $(B)/smtpfault

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<

$(B)/smtpfault: $(CORE_OBJ) $(SERVER_OBJ)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS) $(MHD_LIBS)

$(B)/unit-tests: $(CORE_OBJ) $(UNIT_OBJ)
	$(CC) $(LDFLAGS) $(SANFLAGS) -o $@ $^ $(LDLIBS) $(CUNIT_LIBS)

deps:
	@sh scripts/install-deps

run: deps
	$(MAKE) all
	./$(B)/smtpfault

check: deps
	$(MAKE) check-unit check-integration e2e

check-unit: $(B)/unit-tests
	./$(B)/unit-tests

check-integration: $(B)/smtpfault
	python3 tests/integration/run ./$(B)/smtpfault
	python3 tests/integration/scenarios_test.py ./$(B)/smtpfault
	python3 tests/integration/tls_test.py ./$(B)/smtpfault
	python3 tests/integration/greylist_test.py ./$(B)/smtpfault
	python3 tests/integration/control_test.py ./$(B)/smtpfault
	python3 tests/integration/report_test.py ./$(B)/smtpfault

# A real, private Postfix instance sends through smtpfault (needs root).
e2e: $(B)/smtpfault
	python3 scripts/e2e/run ./$(B)/smtpfault

# The whole suite under AddressSanitizer + UndefinedBehaviorSanitizer, in
# its own build tree so it never mixes with the normal objects.
asan: deps
	$(MAKE) B=build-asan SANITIZE=address,undefined CFLAGS="-O1 -g" \
	    check-unit
	$(MAKE) B=build-asan SANITIZE=address,undefined CFLAGS="-O1 -g" \
	    build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/run ./build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/scenarios_test.py ./build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/tls_test.py ./build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/greylist_test.py ./build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/control_test.py ./build-asan/smtpfault
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    python3 tests/integration/report_test.py ./build-asan/smtpfault

bench: deps all
	sh scripts/bench ./$(B)/smtpfault

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/smtpfault \
	    $(DESTDIR)$(SYSCONFDIR)/smtpfault/scenarios $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(B)/smtpfault $(DESTDIR)$(BINDIR)/smtpfault
	@# never overwrite a configuration the admin may have edited
	[ -e $(DESTDIR)$(SYSCONFDIR)/smtpfault/smtpfault.ini ] || \
	    install -m 0644 conf/smtpfault.ini $(DESTDIR)$(SYSCONFDIR)/smtpfault/smtpfault.ini
	for f in conf/scenarios/*.ini; do \
	    [ -e "$$f" ] || continue; \
	    [ -e $(DESTDIR)$(SYSCONFDIR)/smtpfault/scenarios/$${f##*/} ] || \
	    install -m 0644 $$f $(DESTDIR)$(SYSCONFDIR)/smtpfault/scenarios/; \
	done
	[ ! -e docs/smtpfault.1 ] || install -m 0644 docs/smtpfault.1 $(DESTDIR)$(MANDIR)/man1/smtpfault.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/smtpfault $(DESTDIR)$(MANDIR)/man1/smtpfault.1
	@echo "left $(DESTDIR)$(SYSCONFDIR)/smtpfault in place (configuration)"

clean:
	rm -rf build build-asan

format:
	clang-format -i responder/*.[ch] faults/*.[ch] tests/unit/*.[ch]

-include $(DEPS)
