/*
 * memory_budget.h
 *	  dmf.max_memory as a cap that holds, not an estimate that drifts.
 *
 * A function whose memory grows with its input (training, refresh, the
 * evaluations, explain, the factor aggregates) works in a memory context of
 * its own under a budget.  Every large allocation is charged before it is
 * made: what the context already holds (MemoryContextMemAllocated, the
 * bytes really taken from malloc) plus the request must stay within the
 * cap, else an ERROR.  The numeric core allocates through dmf_alloc, which
 * charges the innermost budget, so it needs no knowledge of the cap.
 *
 * A function also states, once it knows its shapes, how much it expects to
 * need (dmf_budget_expect): a refusal then comes before the work, and its
 * hint names that amount, which is enough.  The peak is kept and logged at
 * DEBUG1 when the function ends, which the tests read.
 */
#ifndef DMF_MEMORY_BUDGET_H
#define DMF_MEMORY_BUDGET_H

#include "postgres.h"

#include "utils/palloc.h"

typedef struct DmfMemoryBudget DmfMemoryBudget;

/*
 * Creates the function's context under CurrentMemoryContext, switches to
 * it and makes its budget the innermost one.  operation names the work in
 * messages ("training"); both are string constants.  The budget ends with the context: by
 * dmf_budget_end, or when an ERROR deletes the context.
 */
extern DmfMemoryBudget *dmf_budget_begin(const char *operation, const char *context_name);

/* Logs the peak, switches back to the caller's context and deletes the budget's. */
extern void dmf_budget_end(DmfMemoryBudget *b);

/* The budget's context. */
extern MemoryContext dmf_budget_context(const DmfMemoryBudget *b);

/*
 * ERROR unless the innermost budget can take bytes more now; does not
 * allocate.  Without a budget (a call outside one) it does nothing.
 */
extern void dmf_budget_charge(Size bytes);

/* Whether the innermost budget can take bytes more now (true without one). */
extern bool dmf_budget_fits(Size bytes);

/* How many elements of elem_bytes the innermost budget can take now (a lot without one). */
extern int64 dmf_budget_room(Size elem_bytes);

/* What the innermost budget holds now (0 without one). */
extern uint64 dmf_budget_held(void);

/*
 * Bytes charged to the budget that live outside its context (a result
 * built in the caller's context): added to what the context holds.
 */
extern void dmf_budget_hold_outside(DmfMemoryBudget *b, Size bytes);

/*
 * The function's own estimate of its peak, now that it knows its shapes;
 * whether it is within the cap (the caller refuses if not, its hint naming
 * this estimate).  A later refusal's hint names at least this much.
 */
extern bool dmf_budget_expect(DmfMemoryBudget *b, uint64 bytes);

/* palloc_extended(size, MCXT_ALLOC_HUGE | flags) in the current context, charged first. */
extern void *dmf_budget_alloc(Size size, int flags);

/* repalloc_huge, charged first (the old and new chunks coexist while it copies). */
extern void *dmf_budget_realloc(void *ptr, Size old_size, Size new_size);

/* The most the budget's context has held (plus what it holds outside). */
extern uint64 dmf_budget_peak(const DmfMemoryBudget *b);

#endif
