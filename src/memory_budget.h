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
 *
 * The budget ends with its context: at dmf_budget_end, when an ERROR's
 * cleanup deletes the context, or when the (sub)transaction in which the
 * call began aborts, whichever comes first.
 */
#ifndef DMF_MEMORY_BUDGET_H
#define DMF_MEMORY_BUDGET_H

#include "postgres.h"

#include "utils/palloc.h"

typedef struct DmfMemoryBudget DmfMemoryBudget;

/*
 * Creates the function's context under CurrentMemoryContext, switches to
 * it and makes its budget the innermost one.  operation names the work in
 * messages ("training"); both are string constants.
 */
extern DmfMemoryBudget *dmf_budget_begin(const char *operation, const char *context_name);

/* Logs the peak, switches back to the caller's context and deletes the budget's. */
extern void dmf_budget_end(DmfMemoryBudget *b);

/* The budget's context. */
extern MemoryContext dmf_budget_context(const DmfMemoryBudget *b);

/*
 * ERROR unless the budgets can take bytes more, about to be allocated in
 * the current memory context; does not allocate.  An allocation outside
 * every budget's context (the model cache's, SPI's) is not charged.
 */
extern void dmf_budget_charge(Size bytes);

/*
 * Whether the budgets can take bytes more now (true without one): each cap
 * bounds its own context and the budgets of calls nested in it.
 */
extern bool dmf_budget_fits(Size bytes);

/*
 * The capacity to grow arrays (arrays of them, row_bytes a row in all) of
 * cap rows to, through dmf_budget_realloc: doubled, or the most the budgets
 * allow, at least need; cap if not even need fits.
 */
extern int64 dmf_budget_grow_capacity(int64 cap, int64 need, Size row_bytes, int arrays);

/* How many elements of elem_bytes the budgets can take now (a lot without one). */
extern int64 dmf_budget_room(Size elem_bytes);

/* The cap the budget enforces (dmf.max_memory when it began). */
extern uint64 dmf_budget_cap(const DmfMemoryBudget *b);

/* The innermost budget's cap, or dmf.max_memory without one. */
extern uint64 dmf_budget_cap_now(void);

/*
 * ERROR: the work of budget b does not fit; enough is what it needs (the
 * hint names at least that and the budget's expectation), detail says why.
 */
extern void dmf_budget_refuse(const DmfMemoryBudget *b, uint64 enough,
							  const char *detail) pg_attribute_noreturn();

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

/*
 * repalloc_huge, charged first: the growth for a chunk that grows in
 * place, the whole new size for one that may be copied.
 */
extern void *dmf_budget_realloc(void *ptr, Size old_size, Size new_size);

/* The most the budget's context has held (plus what it holds outside). */
extern uint64 dmf_budget_peak(const DmfMemoryBudget *b);

#endif
