# jobd: a thin wrapper over CMake.
#   make run        install missing Debian packages, build, start jobd on 127.0.0.1:8080
#   make test       the same build, then every test (CTest)
#   make test-asan  the suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make test-tsan  unit and thread-heavy tests under ThreadSanitizer
#   make fuzz       the libFuzzer targets, FUZZ_SECONDS each (tests/fuzz/README.md)
#   make soak       ten minutes of mixed load on one jobd, then its checks (tests/soak/soak.py)
#   make valgrind   part of the integration suite with jobd under valgrind memcheck
#   make bench      the benchmarks (tests/bench/README.md)
BUILD    ?= build
JOBS     ?= $(shell nproc)
DEB_PKGS := build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev \
            libcurl4-openssl-dev libsqlite3-dev libcmocka-dev python3 python3-yaml procps wrk openssl \
            iproute2 shellcheck
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: all deps build run test test-asan test-tsan fuzz soak valgrind bench format format-check clean

all: build

# Install only what is missing, so a second run needs no network.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null && command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/jobd --listen 127.0.0.1:8080 --data-dir ./jobd-data

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# The same suite under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DJOBD_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer: the unit tests and the thread-heavy integration tests
# (tasks on the thread pool, the shared-state stress test, batches).
test-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DJOBD_TSAN=ON
	cmake --build build-tsan -j $(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -j $(JOBS) -R '^(unit\.|integration\.(tasks|batches|concurrency)|cluster\.)'

# libFuzzer targets under ASan+UBSan (clang), FUZZ_SECONDS each (default 60); tests/fuzz/README.md
fuzz: deps
	@command -v clang >/dev/null && dpkg-query -W libclang-rt-14-dev >/dev/null 2>&1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang libclang-rt-14-dev; }
	tests/fuzz/run.sh

soak: build
	JOBD_BIN=$(BUILD)/jobd SOAK_SECONDS=600 python3 tests/soak/soak.py

valgrind: build
	@command -v valgrind >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq valgrind; }
	VALGRIND_BUILD_DIR=$(BUILD) VALGRIND_NO_BUILD=1 tests/soak/valgrind.sh

# Formatting: the repository's .clang-format, checked in CI.
C_SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format-check:
	@command -v clang-format >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq clang-format; }
	clang-format --dry-run --Werror $(C_SOURCES)

format:
	clang-format -i $(C_SOURCES)

bench: build
	tests/bench/run.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
