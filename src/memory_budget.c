/*
 * memory_budget.c
 *	  dmf.max_memory charged at each large allocation (memory_budget.h).
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "memory_budget.h"
#include "platform.h"

struct DmfMemoryBudget
{
	const char *operation;
	MemoryContext cxt;			/* the function's context, whose size is charged */
	MemoryContext caller;
	SubTransactionId subxact;	/* where it began: its abort ends the budget */
	uint64		cap;			/* dmf.max_memory when the function began */
	uint64		outside;		/* charged bytes held outside cxt */
	uint64		expected;		/* the function's estimate of its peak (0: none yet) */
	uint64		peak;
	DmfMemoryBudget *outer;		/* the budget this one began inside, if any */
	MemoryContextCallback on_delete;
};

/*
 * The budgets of the calls in progress, innermost first: what dmf_alloc
 * charges.  A nested call (a view that calls dmf while a training reads
 * it) has its own budget, and what it holds counts against the outer caps
 * too.
 */
static DmfMemoryBudget *innermost = NULL;
static bool callbacks_registered = false;

/*
 * The context is going away (dmf_budget_end, or an ERROR's cleanup, in any
 * order among nested budgets): unlink its budget, which lives inside it.
 */
static void
budget_unlink(void *arg)
{
	DmfMemoryBudget *b = (DmfMemoryBudget *) arg;

	if (innermost == b)
		innermost = b->outer;
	else
		for (DmfMemoryBudget *p = innermost; p != NULL; p = p->outer)
			if (p->outer == b)
			{
				p->outer = b->outer;
				break;
			}
}

/*
 * A call that failed may leave its context alive for a while (a cursor
 * opened before a savepoint keeps its portal after ROLLBACK TO): its
 * budget must not go on charging the calls after it.  Subtransaction ids
 * grow, so the budgets begun in an aborted subtransaction or below it are
 * those with an id at least its own; at the end of the transaction none is
 * left (every dmf function that has a budget ends it in the same call).
 */
static void
budget_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (DmfMemoryBudget *p = innermost; p != NULL;)
	{
		DmfMemoryBudget *next = p->outer;

		if (p->subxact >= mySubid)
			budget_unlink(p);
		p = next;
	}
}

static void
budget_xact_callback(XactEvent event, void *arg)
{
	innermost = NULL;
}

/*
 * glibc grows a chunk of 32 MB or more (always one of its own mappings) in
 * place or by mremap; a smaller one may be copied, the old and the new
 * side by side for a moment.
 */
#define REALLOC_IN_PLACE_BYTES ((Size) 32 * 1024 * 1024)

/* bytes held by b: its context, and what it holds outside it */
static uint64
budget_held(const DmfMemoryBudget *b)
{
	return (uint64) MemoryContextMemAllocated(b->cxt, true) + b->outside;
}

/* Whether cxt is a budget's context or lies beneath one. */
static bool
under_a_budget(MemoryContext cxt)
{
	for (MemoryContext c = cxt; c != NULL; c = c->parent)
		for (DmfMemoryBudget *p = innermost; p != NULL; p = p->outer)
			if (p->cxt == c)
				return true;
	return false;
}

DmfMemoryBudget *
dmf_budget_begin(const char *operation, const char *context_name)
{
	uint64		cap = dmf_max_memory_bytes();
	MemoryContext caller = CurrentMemoryContext;

	/*
	 * context_name is a string constant (memory_budget.h), as the macro
	 * would check.  Blocks of at most 1 MB: a small allocation that opens a
	 * new block cannot take the context far past what was charged.
	 */
	MemoryContext cxt = AllocSetContextCreateInternal(caller, context_name,
													  ALLOCSET_DEFAULT_MINSIZE,
													  ALLOCSET_DEFAULT_INITSIZE,
													  1024 * 1024);
	DmfMemoryBudget *b = MemoryContextAllocZero(cxt, sizeof(DmfMemoryBudget));

	if (!callbacks_registered)
	{
		RegisterSubXactCallback(budget_subxact_callback, NULL);
		RegisterXactCallback(budget_xact_callback, NULL);
		callbacks_registered = true;
	}
	b->operation = operation;
	b->cxt = cxt;
	b->caller = caller;
	b->subxact = GetCurrentSubTransactionId();
	b->cap = cap;
	b->outer = innermost;
	b->on_delete.func = budget_unlink;
	b->on_delete.arg = b;
	MemoryContextRegisterResetCallback(cxt, &b->on_delete);
	innermost = b;
	MemoryContextSwitchTo(cxt);
	b->peak = budget_held(b);
	return b;
}

void
dmf_budget_end(DmfMemoryBudget *b)
{
	uint64		held = budget_held(b);

	if (held > b->peak)
		b->peak = held;
	elog(DEBUG1, "dmf: %s peak memory " UINT64_FORMAT " bytes, expected " UINT64_FORMAT " bytes, dmf.max_memory " UINT64_FORMAT " bytes",
		 b->operation, b->peak, b->expected, b->cap);
	MemoryContextSwitchTo(b->caller);
	MemoryContextDelete(b->cxt);	/* unlinks b */
}

MemoryContext
dmf_budget_context(const DmfMemoryBudget *b)
{
	return b->cxt;
}

uint64
dmf_budget_cap(const DmfMemoryBudget *b)
{
	return b->cap;
}

uint64
dmf_budget_cap_now(void)
{
	return innermost != NULL ? innermost->cap : dmf_max_memory_bytes();
}

uint64
dmf_budget_peak(const DmfMemoryBudget *b)
{
	return Max(b->peak, budget_held(b));
}

void
dmf_budget_refuse(const DmfMemoryBudget *b, uint64 enough, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s would need more than dmf.max_memory (%s)",
					b->operation, dmf_pretty_bytes(b->cap)),
			 errdetail_internal("%s", detail),
			 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
					 dmf_pretty_bytes_setting(Max(enough, b->expected)))));
}

/* ERROR: budget b cannot take bytes more on top of held (its own and nested) */
static void
refuse(const DmfMemoryBudget *b, uint64 held, uint64 bytes)
{
	/* enough for this request, with a margin for what follows it */
	uint64		enough = held + bytes;

	dmf_budget_refuse(b, enough + enough / 4,
					  psprintf("It holds %s and needs %s more.",
							   dmf_pretty_bytes(held), dmf_pretty_bytes(bytes)));
}

/*
 * Bytes more that every budget can take now: each cap bounds what its own
 * context holds and what the budgets nested in it hold.
 */
static uint64
budget_room(void)
{
	uint64		held = 0,
				room = PG_UINT64_MAX;

	for (DmfMemoryBudget *p = innermost; p != NULL; p = p->outer)
	{
		held += budget_held(p);
		room = Min(room, held >= p->cap ? 0 : p->cap - held);
	}
	return room;
}

/* Charges bytes about to be allocated in cxt: ERROR if a budget cannot take them. */
static void
charge_in(MemoryContext cxt, Size bytes)
{
	uint64		held = 0;

	if (innermost == NULL || !under_a_budget(cxt))
		return;
	for (DmfMemoryBudget *p = innermost; p != NULL; p = p->outer)
	{
		held += budget_held(p);
		if (held + bytes > p->cap)
			refuse(p, held, bytes);
		if (held + bytes > p->peak)
			p->peak = held + bytes;
	}
}

/* After an allocation: the context may have taken a whole new block. */
static void
note_held(void)
{
	uint64		held = 0;

	for (DmfMemoryBudget *p = innermost; p != NULL; p = p->outer)
	{
		held += budget_held(p);
		if (held > p->peak)
			p->peak = held;
	}
}

void
dmf_budget_charge(Size bytes)
{
	charge_in(CurrentMemoryContext, bytes);
}

bool
dmf_budget_fits(Size bytes)
{
	return bytes <= budget_room();
}

int64
dmf_budget_room(Size elem_bytes)
{
	uint64		room = budget_room();

	return (int64) Min(room / elem_bytes, (uint64) PG_INT64_MAX / 2);
}

/* What growing arrays of cap rows to new_cap charges (dmf_budget_realloc's rule). */
static uint64
growth_cost(int64 cap, int64 new_cap, Size row_bytes, int arrays)
{
	Size		array_bytes = (Size) new_cap * (row_bytes / arrays);
	uint64		cost = (uint64) (new_cap - cap) * row_bytes;

	/* the arrays grow one after the other: at most one copy at a time */
	if ((Size) cap * (row_bytes / arrays) < REALLOC_IN_PLACE_BYTES)
		cost += array_bytes;
	return cost;
}

int64
dmf_budget_grow_capacity(int64 cap, int64 need, Size row_bytes, int arrays)
{
	uint64		room = budget_room();
	int64		lo = need,
				hi = Max(2 * cap, need);

	if (growth_cost(cap, hi, row_bytes, arrays) <= room)
		return hi;
	if (growth_cost(cap, lo, row_bytes, arrays) > room)
		return cap;
	/* the most rows that fit: the cost grows with the capacity */
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo + 1) / 2;

		if (growth_cost(cap, mid, row_bytes, arrays) <= room)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

void
dmf_budget_hold_outside(DmfMemoryBudget *b, Size bytes)
{
	dmf_budget_charge(bytes);
	b->outside += bytes;
}

bool
dmf_budget_expect(DmfMemoryBudget *b, uint64 bytes)
{
	b->expected = bytes;
	return bytes <= b->cap;
}

void *
dmf_budget_alloc(Size size, int flags)
{
	void	   *p;

	dmf_budget_charge(size);
	p = palloc_extended(size, MCXT_ALLOC_HUGE | flags);
	note_held();
	return p;
}

void *
dmf_budget_realloc(void *ptr, Size old_size, Size new_size)
{
	void	   *p;

	if (new_size > old_size)
		charge_in(GetMemoryChunkContext(ptr),
				  old_size >= REALLOC_IN_PLACE_BYTES ? new_size - old_size : new_size);
	p = repalloc_huge(ptr, new_size);
	note_held();
	return p;
}
