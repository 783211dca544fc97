/*
 * platform.h
 *	  What the numeric core needs from its host: memory, interrupts, asserts.
 *
 * The numeric core (rng, sparse, network, train, model_format) uses no
 * PostgreSQL types, so it can be built outside the server for the fuzz
 * harness and unit tests (define DMF_STANDALONE).  Inside the server,
 * allocations go to the current memory context, so an ERROR or a cancel
 * frees everything with the context, and interrupts are honoured.
 */
#ifndef DMF_PLATFORM_H
#define DMF_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef DMF_STANDALONE

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void *
dmf_malloc_or_die(size_t size, bool zero)
{
	void	   *p = zero ? calloc(1, size ? size : 1) : malloc(size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "dmf: out of memory (%zu bytes)\n", size);
		abort();
	}
	return p;
}
#define dmf_alloc(size)			dmf_malloc_or_die((size), false)
#define dmf_alloc0(size)		dmf_malloc_or_die((size), true)
#define dmf_free(ptr)			free(ptr)
#ifdef DMF_TEST_INTERRUPTS
/* the unit tests stand in for the server's interrupts (test/unit/test_numeric.c) */
extern void dmf_test_check_interrupts(void);
extern bool dmf_test_interrupt_pending(void);
#define dmf_check_interrupts()	dmf_test_check_interrupts()
#define dmf_interrupt_pending()	dmf_test_interrupt_pending()
#else
#define dmf_check_interrupts()	((void) 0)
#define dmf_interrupt_pending()	false
#endif

#else							/* inside the server */

#include "postgres.h"
#include "miscadmin.h"

/*
 * Huge allocations: a first-layer weight matrix may exceed 1 GB.  Each is
 * charged to dmf.max_memory first (memory_budget.c).  Only the backend's
 * own thread allocates: helper threads work in what it gave them.
 */
extern void *dmf_budget_alloc(size_t size, int flags);

#define dmf_alloc(size)			dmf_budget_alloc((size), 0)
#define dmf_alloc0(size)		dmf_budget_alloc((size), MCXT_ALLOC_ZERO)
#define dmf_free(ptr)			pfree(ptr)
#define dmf_check_interrupts()	CHECK_FOR_INTERRUPTS()
/* whether dmf_check_interrupts() has work; does not process it */
#define dmf_interrupt_pending()	(InterruptPending != 0)

#endif

/*
 * Hot loops are compiled for several instruction sets and the best one is
 * chosen on first use, so one binary runs everywhere and uses AVX-512 or
 * AVX2/FMA where the CPU has them.  (GCC's target_clones does not work in a
 * library loaded with -z now: its resolver runs before the CPU is probed.)
 *
 * A kernel is written once as "static inline void NAME_impl(...)" marked
 * DMF_INLINE; DMF_KERNEL(NAME, (params), (args)) then defines NAME_pick(),
 * which returns the variant for this CPU.
 */
#define DMF_INLINE static inline __attribute__((always_inline))

#define DMF_ARGS(...) __VA_ARGS__

#if defined(__x86_64__) && defined(__GNUC__)
#define DMF_KERNEL_PICK(name) \
	static name##_fn name##_pick(void) \
	{ \
		__builtin_cpu_init(); \
		if (__builtin_cpu_supports("avx512f")) \
			return name##_avx512; \
		if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) \
			return name##_avx2; \
		return name##_generic; \
	}
#define DMF_KERNEL(name, params, args) \
	__attribute__((target("avx512f"))) static void name##_avx512 params \
	{ name##_impl args; } \
	__attribute__((target("avx2,fma"))) static void name##_avx2 params \
	{ name##_impl args; } \
	static void name##_generic params { name##_impl args; } \
	typedef void (*name##_fn) params; \
	DMF_KERNEL_PICK(name)
/*
 * The same for a kernel written for vectors of a width its first argument
 * gives, a constant: 16 floats (one AVX-512 register) where the CPU has
 * AVX-512, else 8 (one AVX2 register).  GCC lowers a vector wider than the
 * target's registers through the stack, which costs more than the work.
 */
#define DMF_KERNEL_LANES(name, params, args) \
	__attribute__((target("avx512f"))) static void name##_avx512 params \
	{ name##_impl(16, DMF_ARGS args); } \
	__attribute__((target("avx2,fma"))) static void name##_avx2 params \
	{ name##_impl(8, DMF_ARGS args); } \
	static void name##_generic params { name##_impl(8, DMF_ARGS args); } \
	typedef void (*name##_fn) params; \
	DMF_KERNEL_PICK(name)
#else
#define DMF_KERNEL(name, params, args) \
	static void name##_generic params { name##_impl args; } \
	typedef void (*name##_fn) params; \
	static name##_fn name##_pick(void) { return name##_generic; }
#define DMF_KERNEL_LANES(name, params, args) \
	static void name##_generic params { name##_impl(8, DMF_ARGS args); } \
	typedef void (*name##_fn) params; \
	static name##_fn name##_pick(void) { return name##_generic; }
#endif

/*
 * Dot product of floats with sixteen lanes of partial sums.  The order of
 * the additions is fixed by the lanes, so the loop runs as vector
 * instructions on every instruction set without reassociating anything; a
 * plain loop is one chain of dependent adds, which the compiler may not
 * vectorize.  The lanes are two vectors of eight, the width of an AVX2
 * register (see DMF_KERNEL_LANES).  Use it inside DMF_KERNELs.
 */
typedef float DmfFloat16 __attribute__((vector_size(64)));
typedef float DmfFloat8 __attribute__((vector_size(32)));

DMF_INLINE float
dmf_dot(const float *a, const float *b, int n)
{
	DmfFloat8	acc[2] = {{0}};
	float		sum = 0.0f;
	int			j = 0;

	for (; j + 16 <= n; j += 16)
	{
		for (int h = 0; h < 2; h++)
		{
			DmfFloat8	x,
						y;

			memcpy(&x, a + j + 8 * h, sizeof(x));
			memcpy(&y, b + j + 8 * h, sizeof(y));
			acc[h] += x * y;
		}
	}
	for (; j < n; j++)
		sum += a[j] * b[j];
	for (int l = 0; l < 16; l++)
		sum += acc[l / 8][l % 8];
	return sum;
}

/* Calls the best variant of a DMF_KERNEL, picking it once (thread-safe). */
#define DMF_CALL(name, args) \
	do { \
		static name##_fn name##_chosen = NULL; \
		name##_fn	name##_f = __atomic_load_n(&name##_chosen, __ATOMIC_ACQUIRE); \
		if (name##_f == NULL) \
		{ \
			name##_f = name##_pick(); \
			__atomic_store_n(&name##_chosen, name##_f, __ATOMIC_RELEASE); \
		} \
		name##_f args; \
	} while (0)

/* Wall clock in seconds, for progress reports and model metrics. */
double		dmf_now_seconds(void);

#endif							/* DMF_PLATFORM_H */
