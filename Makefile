EXTENSION = dmf
EXTVERSION = 0.2.1

MODULE_big = dmf
OBJS = \
	src/dmf.o \
	src/options.o \
	src/ratings_reader.o \
	src/model_format.o \
	src/model_cache.o \
	src/extend.o \
	src/recommend.o \
	src/evaluate.o \
	src/sparse.o \
	src/network.o \
	src/train.o \
	src/quantizer.o \
	src/fold_in.o \
	src/rng.o \
	src/blas.o

# install scripts of each release and the upgrade scripts between them
DATA = $(wildcard sql/dmf--*.sql)

# pg_regress suites, in sql/ with results in expected/
REGRESS = setup train predict extend discrete errors model_format recommend security
REGRESS_OPTS = --inputdir=. --load-extension=dmf

# -fno-math-errno: sqrtf and friends need not set errno, so loops calling
# them (Adam's update) are vectorized; nothing here reads errno after math
PG_CFLAGS = -std=gnu99 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -O3 \
	-fno-math-errno
# OpenBLAS is loaded on first use in a backend, not linked (see src/blas.h)
SHLIB_LINK = -lm

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# every object depends on every header: the structs are shared
$(OBJS): $(wildcard src/*.h)

# A direct OpenBLAS call would fail only when the library is loaded: fail here.
all: check-blas-calls
check-blas-calls: $(shlib)
	@if nm -D --undefined-only $(shlib) | grep -E ' (cblas_|openblas_)'; then \
		echo "$(shlib) calls OpenBLAS directly: use dmf_sgemm, dmf_sgemv, ... of src/blas.h" >&2; \
		exit 1; \
	fi
.PHONY: check-blas-calls
