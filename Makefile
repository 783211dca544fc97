EXTENSION = dmf
# The version is stated once, in dmf.control; the library gets it as
# DMF_VERSION.  META.json and CHANGELOG.md repeat it for their readers and
# test/t/050_upgrade.sh checks that they agree.
EXTVERSION := $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" $(dir $(lastword $(MAKEFILE_LIST)))dmf.control)

MODULE_big = dmf

# src/core/: the numeric core, models and training, built on src/core/platform.h
# alone (no PostgreSQL header: unit tests and the fuzzer build it standalone).
# src/: the server layer: settings, SQL-callable functions, the ratings
# reader, the model cache, OpenBLAS loading.
CORE_OBJS = \
	src/core/sparse.o \
	src/core/network.o \
	src/core/train.o \
	src/core/train_block.o \
	src/core/train_alternating.o \
	src/core/grouped.o \
	src/core/implicit.o \
	src/core/quantizer.o \
	src/core/fold_in.o \
	src/core/fold_choice.o \
	src/core/score.o \
	src/core/helper_thread.o \
	src/core/adam.o \
	src/core/block_sides.o \
	src/core/dmfd.o \
	src/core/levels.o \
	src/core/prepare.o \
	src/core/rng.o \
	src/core/model_format.o \
	src/core/model_encode.o
SERVER_OBJS = \
	src/module.o \
	src/memory_budget.o \
	src/options.o \
	src/ratings_reader.o \
	src/model_cache.o \
	src/model_bytes.o \
	src/blas.o \
	src/train_sql.o \
	src/refresh_sql.o \
	src/warm_start.o \
	src/predict_sql.o \
	src/factor_agg.o \
	src/recommend.o \
	src/similar.o \
	src/popularity.o \
	src/progress.o \
	src/explain.o \
	src/evaluate.o \
	src/evaluate_ranking.o
OBJS = $(SERVER_OBJS) $(CORE_OBJS)

# install scripts of each release and the upgrade scripts between them
DATA = $(wildcard sql/dmf--*.sql)

# pg_regress suites, in sql/ with results in expected/
REGRESS = setup train warm predict extend discrete errors model_format recommend security implicit serving
REGRESS_OPTS = --inputdir=. --load-extension=dmf

# -fno-math-errno: sqrtf and friends need not set errno, so loops calling
# them (Adam's update) are vectorized; nothing here reads errno after math
PG_CPPFLAGS = -I$(srcdir)/src -I$(srcdir)/src/core -DDMF_VERSION='"$(EXTVERSION)"' 
PG_CFLAGS = -std=gnu99 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -O3 \
	-fno-math-errno
# OpenBLAS is loaded on first use in a backend, not linked (see src/blas.h)
SHLIB_LINK = -lm

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on every header: the structs are shared
$(OBJS): $(wildcard src/*.h src/core/*.h)

# The core includes no PostgreSQL header of its own (platform.h adapts it;
# the model codec takes CRC32C from libpgport): fail the build if one does.
all: check-core-headers
check-core-headers:
	@if grep -nE '^#include "(postgres|fmgr|utils/|access/|catalog/|executor/|nodes/|lib/|libpq/|miscadmin)' \
			$(filter-out src/core/platform.h src/core/model_layout.h src/core/model_format.c src/core/model_encode.c,$(wildcard src/core/*.[ch])); then \
		echo "src/core/ includes a PostgreSQL header: the core must build without the server" >&2; \
		exit 1; \
	fi
.PHONY: check-core-headers

# A direct OpenBLAS call would fail only when the library is loaded: fail here.
all: check-blas-calls
check-blas-calls: $(shlib)
	@if nm -D --undefined-only $(shlib) | grep -E ' (cblas_|openblas_)'; then \
		echo "$(shlib) calls OpenBLAS directly: use dmf_sgemm, dmf_sgemv, ... of src/blas.h" >&2; \
		exit 1; \
	fi
.PHONY: check-blas-calls
