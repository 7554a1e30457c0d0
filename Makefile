# The README's commands. Each installs its Debian packages and builds first.
.PHONY: deps demo test bench asan tsan fuzz format tidy clean

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60

deps:
	@scripts/install-deps.sh

build/release/build.ninja: CMakeLists.txt CMakePresets.json | deps
	cmake --preset release >/dev/null
build/dev/build.ninja: CMakeLists.txt CMakePresets.json | deps
	cmake --preset dev >/dev/null

# The lab demo needs root (network namespaces); elsewhere the offline one runs.
demo: deps build/release/build.ninja
	cmake --build --preset release --target tripod -j $(JOBS)
	@if [ "$$(id -u)" -eq 0 ] && ip netns add tpdemoprobe 2>/dev/null && ip netns del tpdemoprobe; then \
	  lab/demo.sh; \
	else \
	  echo "make demo: not root (or no network namespaces): the offline pcap demo instead"; \
	  ./build/release/src/cmd/tripod demo; \
	fi

test: deps build/dev/build.ninja
	cmake --build --preset dev -j $(JOBS)
	ctest --preset dev -j $(JOBS)

bench: deps build/release/build.ninja
	cmake --build --preset release --target tripod_bench tripod -j $(JOBS)
	scripts/bench.sh

# Sanitizer and fuzz runs (CI runs all of them).
asan: deps
	cmake --preset asan >/dev/null
	cmake --build --preset asan -j $(JOBS)
	ctest --preset asan -j $(JOBS)

tsan: deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan -j $(JOBS) --target table_shard_test route_snapshot_test health_test daemon_test cluster_agent_test
	ctest --preset tsan -L threads

fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	scripts/run-fuzzers.sh $(FUZZ_SECONDS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

tidy: build/dev/build.ninja
	git ls-files 'src/*.cc' | xargs clang-tidy -p build/dev --quiet

clean:
	rm -rf build
