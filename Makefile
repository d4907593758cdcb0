# tttd — build, run, test and install. See README.md.
#
#   make build         swift build (debug)
#   make run           dependencies, build, a private PostgreSQL under .run/ unless
#                      TTTD_DATABASE_URL is set, then tttd in the foreground on etc/tttd/dev.yaml
#   make demo          the same against tttsim (a TikTok emulator) playing a scripted evening of lives
#   make test          every test (what .ci/run runs)
#   make bench         every bench/*/run but the soak (bench/soak/run, hours)
#   make fuzz          libFuzzer on each parser of untrusted input, FUZZ_SECONDS each (scripts/fuzz)
#   make fuzz-ci       each fuzz target briefly, on the committed corpus (what .ci/run runs after the tests)
#   make install       release build, installed under $(DESTDIR)$(PREFIX) with the systemd files
#   make completions   tttctl's bash/zsh/fish completions into .build/completions/
#   make man           regenerate man/tttctl.1 and man/tttd.8 from the commands (commit the result)
#   make clean         build products and the test cluster

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Each recipe runs in one shell: `cd`, variables and traps carry from line to line.
.ONESHELL:
.DEFAULT_GOAL := build

# The Swift toolchain lives in /opt/swift/usr/bin on our machines when it is not on PATH.
ifeq ($(shell command -v swift 2>/dev/null),)
export PATH := $(PATH):/opt/swift/usr/bin
endif

PREFIX ?= /usr/local
DESTDIR ?=
# Private PostgreSQL clusters: `make run` keeps its data in .run/pg; `make test` creates a fresh
# .run/test-pg each run and stops it when the tests end.
RUN_PG_DIR ?= .run/pg
RUN_PG_PORT ?= 54329
TEST_PG_DIR ?= .run/test-pg
TEST_PG_PORT ?= 54330
# Tests running at once. All at once (hundreds, most starting processes: tttd, tttsim, PostgreSQL
# databases, Python servers) kept a 2-core machine so busy for the first minute that a test's
# awaits waited tens of seconds and timeouts measured the queue; 16 finishes as soon.
TEST_WIDTH ?= 16
# Seconds of `make fuzz` per target.
FUZZ_SECONDS ?= 300

.PHONY: build run demo test bench fuzz fuzz-ci install clean completions man

build:
	@swift build

run:
	@scripts/deps
	echo "==> swift build"
	swift build
	(umask 022 && mkdir -p .run)
	if [ -z "$${TTTD_DATABASE_URL:-}" ]; then
	    TTTD_DATABASE_URL=$$(scripts/pg-private start $(RUN_PG_DIR) $(RUN_PG_PORT))
	    echo "PostgreSQL: $$TTTD_DATABASE_URL (stop it with: scripts/pg-private stop $(RUN_PG_DIR))"
	fi
	export TTTD_DATABASE_URL
	# The local speech recogniser (scripts/asr-server, faster-whisper) that etc/tttd/dev.yaml names.
	scripts/asr-server --setup-only
	scripts/asr-server --listen 127.0.0.1:8090 --model base 2> .run/asr-server.log &
	asr_pid=$$!
	trap 'kill $$asr_pid 2>/dev/null || true; wait $$asr_pid 2>/dev/null || true' EXIT
	until grep -qs 'listening on' .run/asr-server.log; do
	    if ! kill -0 $$asr_pid 2>/dev/null; then
	        cat .run/asr-server.log >&2
	        echo "make run: scripts/asr-server did not start (log above: .run/asr-server.log)" >&2
	        exit 1
	    fi
	    sleep 0.2
	done
	echo "ASR: http://127.0.0.1:8090/v1, model base (log: .run/asr-server.log)"
	echo "TTTCTL_SOCKET=$$(pwd)/.run/control.sock"
	echo "In another terminal: export TTTCTL_SOCKET=$$(pwd)/.run/control.sock; .build/debug/tttctl status"
	.build/debug/tttd --config etc/tttd/dev.yaml

demo:
	@scripts/deps
	echo "==> swift build"
	swift build
	(umask 022 && mkdir -p .run)
	exec scripts/demo

test:
	@for f in scripts/* .ci/run; do
	    if [ -f "$$f" ] && head -n 1 "$$f" | grep -q bash; then bash -n "$$f"; fi
	done
	scripts/deps
	scripts/test-users
	echo "==> scripts/asr-server tests (scripts/asr/tests)"
	scripts/asr-server --setup-only
	"$${TTT_ASR_VENV:-.run/asr-venv}/bin/python" -m pytest -q scripts/asr/tests
	pgdir=$(TEST_PG_DIR)
	# As root the cluster runs as postgres, which must be able to enter this checkout.
	here=$$(pwd)
	if [ "$$(id -u)" -eq 0 ] && ! (cd / && runuser -u postgres -- test -x "$$here"); then
	    pgdir=/tmp/tttd-test-pg-$$(printf %s "$$here" | md5sum | cut -c1-8)
	    echo "make test: postgres cannot enter $$here; the test cluster goes to $$pgdir" >&2
	else
	    (umask 022 && mkdir -p .run)
	fi
	# A fresh cluster each run: nothing left over from an earlier (interrupted) run.
	scripts/pg-private stop "$$pgdir" >/dev/null 2>&1 || true
	rm -rf "$$pgdir"
	trap 'scripts/pg-private stop "$$pgdir" >/dev/null 2>&1 || true' EXIT
	TTT_TEST_DATABASE_URL=$$(scripts/pg-private start "$$pgdir" $(TEST_PG_PORT))
	TTT_TEST_PG_BIN=$$(scripts/pg-private bindir)
	echo "==> swift build --build-tests"
	swift build --build-tests
	TTT_TEST_BIN_DIR=$$(swift build --show-bin-path)
	export TTT_TEST_DATABASE_URL TTT_TEST_PG_BIN TTT_TEST_BIN_DIR
	echo "==> swift test (TTT_TEST_DATABASE_URL=$$TTT_TEST_DATABASE_URL TTT_TEST_PG_BIN=$$TTT_TEST_PG_BIN TTT_TEST_BIN_DIR=$$TTT_TEST_BIN_DIR)"
	swift test --experimental-maximum-parallelization-width $(TEST_WIDTH)

bench:
	@shopt -s nullglob
	found=0
	for r in bench/*/run; do
	    # The soak runs for hours: on its own (bench/soak/run).
	    [ "$$r" != bench/soak/run ] || continue
	    found=1
	    echo "== $$r"
	    if [ -x "$$r" ]; then "$$r"; else bash "$$r"; fi
	done
	[ "$$found" = 1 ] || echo "no benchmarks in bench/ yet"

fuzz:
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz

fuzz-ci:
	@scripts/fuzz --ci

install:
	@echo "==> scripts/release-build (swift build -c release, the Swift runtime linked statically)"
	scripts/release-build
	bin=$$(scripts/release-build --show-bin-path)
	root="$(DESTDIR)"
	install -d "$$root$(PREFIX)/bin"
	install -m 0755 "$$bin/tttd" "$$bin/tttctl" "$$root$(PREFIX)/bin/"
	# systemd: the unit (pointing at this PREFIX), sysusers, tmpfiles.
	install -d "$$root/usr/lib/systemd/system" "$$root/usr/lib/sysusers.d" "$$root/usr/lib/tmpfiles.d"
	sed -e 's|^ExecStart=[^ ]*|ExecStart=$(PREFIX)/bin/tttd|' \
	    -e 's|file:/usr/local/share/doc/|file:$(PREFIX)/share/doc/|g' \
	    systemd/tttd.service > "$$root/usr/lib/systemd/system/tttd.service"
	chmod 0644 "$$root/usr/lib/systemd/system/tttd.service"
	install -m 0644 systemd/tttd.sysusers "$$root/usr/lib/sysusers.d/tttd.conf"
	install -m 0644 systemd/tttd.tmpfiles "$$root/usr/lib/tmpfiles.d/tttd.conf"
	live=no
	if [ -z "$$root" ] && [ "$$(id -u)" -eq 0 ]; then
	    live=yes
	    systemd-sysusers /usr/lib/sysusers.d/tttd.conf
	    systemd-tmpfiles --create /usr/lib/tmpfiles.d/tttd.conf
	    if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	fi
	# /etc/tttd: the example config and prompts, never overwriting what the operator has.
	mode=0644; owner=()
	if [ "$$live" = yes ] && getent group tttd >/dev/null; then mode=0640; owner=(-o root -g tttd); fi
	install -d -m 0755 "$$root/etc/tttd"
	put_config() {  # SRC DEST
	    if [ -e "$$2" ]; then
	        echo "kept $$2 (the shipped version is $$1)"
	    else
	        install -m "$$mode" "$${owner[@]}" "$$1" "$$2"
	    fi
	}
	if [ -f etc/tttd/tttd.yaml ]; then
	    put_config etc/tttd/tttd.yaml "$$root/etc/tttd/tttd.yaml"
	else
	    echo "warning: etc/tttd/tttd.yaml is missing from the source tree: no config installed" >&2
	fi
	if [ -d etc/tttd/prompts ]; then
	    install -d -m 0755 "$$root/etc/tttd/prompts"
	    for f in etc/tttd/prompts/*; do
	        if [ -f "$$f" ]; then put_config "$$f" "$$root/etc/tttd/prompts/$${f##*/}"; fi
	    done
	fi
	# Manual pages, documentation and tttctl's shell completions.
	install -d "$$root$(PREFIX)/share/man/man1" "$$root$(PREFIX)/share/man/man5" "$$root$(PREFIX)/share/man/man8"
	install -m 0644 man/tttctl.1 "$$root$(PREFIX)/share/man/man1/"
	install -m 0644 man/tttd.yaml.5 "$$root$(PREFIX)/share/man/man5/"
	install -m 0644 man/tttd.8 "$$root$(PREFIX)/share/man/man8/"
	install -d "$$root$(PREFIX)/share/doc/tttd"
	install -m 0644 README.md docs/*.md "$$root$(PREFIX)/share/doc/tttd/"
	install -d "$$root$(PREFIX)/share/bash-completion/completions" \
	    "$$root$(PREFIX)/share/zsh/site-functions" "$$root$(PREFIX)/share/fish/vendor_completions.d"
	"$$bin/tttctl" --generate-completion-script bash > "$$root$(PREFIX)/share/bash-completion/completions/tttctl"
	"$$bin/tttctl" --generate-completion-script zsh > "$$root$(PREFIX)/share/zsh/site-functions/_tttctl"
	"$$bin/tttctl" --generate-completion-script fish > "$$root$(PREFIX)/share/fish/vendor_completions.d/tttctl.fish"
	echo "installed tttd and tttctl in $$root$(PREFIX)/bin"
	if [ "$$live" = yes ]; then
	    echo "Next steps (docs/operations.md has the details):"
	    echo "  1. edit /etc/tttd/tttd.yaml (database.url first), then check it: tttd check-config"
	    echo "  2. the database: runuser -u postgres -- createuser tttd; runuser -u postgres -- createdb -O tttd tttd"
	    echo "  3. secrets: one file per secret in /etc/tttd/credentials/ (mode 0600), and"
	    echo "     systemctl edit tttd  ->  [Service] LoadCredential=NAME:/etc/tttd/credentials/NAME"
	    echo "  4. systemctl enable --now tttd; systemctl status tttd"
	    echo "  5. tttctl users: usermod -aG tttd bob (viewer); usermod -aG tttd,tttd-admin alice (admin)"
	elif [ -z "$$root" ]; then
	    echo "as root, also run: systemd-sysusers tttd.conf; systemd-tmpfiles --create tttd.conf; systemctl daemon-reload"
	fi

completions: build
	@bin=$$(swift build --show-bin-path)
	mkdir -p .build/completions
	"$$bin/tttctl" --generate-completion-script bash > .build/completions/tttctl.bash
	"$$bin/tttctl" --generate-completion-script zsh > .build/completions/_tttctl
	"$$bin/tttctl" --generate-completion-script fish > .build/completions/tttctl.fish
	echo "completions in .build/completions/: tttctl.bash _tttctl tttctl.fish"

# swift-argument-parser's generate-manual plugin writes the pages from tttctl's and tttd's command
# definitions (debug build); man/extra/PAGE replaces its generic EXIT STATUS section with the
# environment, files, exit status, examples and see-also that the parser cannot know.
# man/tttd.yaml.5 is written by hand. The date is that of the last change to what the pages say.
man:
	@date=$$(git log -1 --format=%cs -- Sources/tttd Sources/tttctl man/extra 2>/dev/null || true)
	[ -n "$$date" ] || date=$$(date +%F)
	out=.build/plugins/GenerateManual/outputs
	for page in tttctl.1 tttd.8; do
	    tool=$${page%.*}
	    section=$${page##*.}
	    echo "==> swift package plugin generate-manual --section $$section ($$page)"
	    swift package plugin generate-manual --configuration debug --date "$$date" --section "$$section" >/dev/null
	    awk -v extra="man/extra/$$page" '
	        /^\.Sh "?EXIT STATUS"?$$/ { while ((getline line < extra) > 0) print line; skip = 1; next }
	        /^\.Sh / { skip = 0 }
	        !skip' "$$out/$$tool/$$page" > "man/$$page"
	done
	echo "man/tttctl.1 and man/tttd.8 regenerated (man -l man/tttctl.1)"

clean:
	@scripts/pg-private stop $(TEST_PG_DIR) >/dev/null 2>&1 || true
	rm -rf $(TEST_PG_DIR) .build/completions
	swift package clean
	echo "left alone: the dev cluster in $(RUN_PG_DIR) (scripts/pg-private stop $(RUN_PG_DIR); rm -rf .run to drop it)"
