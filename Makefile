# Beckon — the two commands a newcomer needs:
#   make demo   run the pipeline end to end on the embedded Tansu broker and a local PostgreSQL
#   make test   unit and integration tests against a real Tansu and a real PostgreSQL
SHELL := /bin/bash
export PKG_CONFIG_PATH := $(CURDIR)/.deps/librdkafka/lib/pkgconfig

.PHONY: setup build release demo test test-unit chaos bench bench-e2e fuzz clean distclean

setup:
	@bash scripts/setup.sh

build: setup
	swift build

release: setup
	swift build -c release --product beckon

demo: release
	@bash scripts/demo.sh

# Unit and integration tests, the shipped rule tests (Rules/tests), then the short chaos
# run (kill -9, PostgreSQL outage, a group member lost) against the release binary.
test: setup
	swift test
	swift build -c release --product beckon
	.build/release/beckon rules check Rules
	.build/release/beckon rules test Rules
	bash scripts/chaos.sh --short

test-unit: setup
	swift test --filter BeckonCoreTests

clean:
	rm -rf .build .run

# Also removes the project-local librdkafka build and the Tansu venv.
distclean: clean
	rm -rf .deps

# The full chaos run: 20 kill -9 cycles, PostgreSQL down for 20 s, a lost group member.
chaos: release
	bash scripts/chaos.sh

# Micro-benchmarks (ordo-one/benchmark), built apart from the tests in .build-bench.
bench: setup
	BECKON_BENCHMARKS=1 swift package --scratch-path .build-bench --allow-writing-to-package-directory benchmark --format markdown

# End to end on Tansu: raw librdkafka consume rate vs Beckon on the same topic, one run.
bench-e2e: release
	bash scripts/bench-e2e.sh

# Decoder fuzzing: 1,000,000 mutated inputs from Schemas/examples.
fuzz: setup
	bash scripts/fuzz.sh 1000000
