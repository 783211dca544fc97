/*
 * memory_budget.c
 *	  dmf.max_memory charged at each large allocation (memory_budget.h).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "dmf.h"
#include "memory_budget.h"

struct DmfMemoryBudget
{
	const char *operation;
	MemoryContext cxt;			/* the function's context, whose size is charged */
	MemoryContext caller;
	uint64		cap;			/* dmf.max_memory when the function began */
	uint64		outside;		/* charged bytes held outside cxt */
	uint64		expected;		/* the function's estimate of its peak (0: none yet) */
	uint64		peak;
	DmfMemoryBudget *outer;		/* the budget this one began inside, if any */
	MemoryContextCallback on_delete;
};

/* The innermost budget of this backend: what dmf_alloc charges. */
static DmfMemoryBudget *innermost = NULL;

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

static uint64
budget_held(const DmfMemoryBudget *b)
{
	return (uint64) MemoryContextMemAllocated(b->cxt, true) + b->outside;
}

DmfMemoryBudget *
dmf_budget_begin(const char *operation, const char *context_name)
{
	uint64		cap = dmf_max_memory_bytes();
	MemoryContext caller = CurrentMemoryContext;
	/* context_name is a string constant (memory_budget.h), as the macro would check */
	MemoryContext cxt = AllocSetContextCreateInternal(caller, context_name,
													  ALLOCSET_DEFAULT_SIZES);
	DmfMemoryBudget *b = MemoryContextAllocZero(cxt, sizeof(DmfMemoryBudget));

	b->operation = operation;
	b->cxt = cxt;
	b->caller = caller;
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
dmf_budget_peak(const DmfMemoryBudget *b)
{
	return Max(b->peak, budget_held(b));
}

/* ERROR: the budget cannot take bytes more on top of held */
static void
refuse(const DmfMemoryBudget *b, uint64 held, uint64 bytes)
{
	/* enough for this request, and for the whole work if it said how much */
	uint64		enough = Max(b->expected, held + bytes);

	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("%s would need more than dmf.max_memory (%s)",
					b->operation, dmf_pretty_bytes(b->cap)),
			 errdetail("It holds %s and needs %s more.",
					   dmf_pretty_bytes(held), dmf_pretty_bytes(bytes)),
			 errhint("Raise dmf.max_memory (SET dmf.max_memory = '%s').",
					 dmf_pretty_bytes_setting(enough + enough / 4))));
}

void
dmf_budget_charge(Size bytes)
{
	DmfMemoryBudget *b = innermost;
	uint64		held;

	if (b == NULL)
		return;
	held = budget_held(b);
	if (held + bytes > b->cap)
		refuse(b, held, bytes);
	if (held + bytes > b->peak)
		b->peak = held + bytes;
}

bool
dmf_budget_fits(Size bytes)
{
	return innermost == NULL || budget_held(innermost) + bytes <= innermost->cap;
}

int64
dmf_budget_room(Size elem_bytes)
{
	uint64		held;

	if (innermost == NULL)
		return PG_INT64_MAX / 2;
	held = budget_held(innermost);
	return held >= innermost->cap ? 0 : (int64) ((innermost->cap - held) / elem_bytes);
}

uint64
dmf_budget_held(void)
{
	return innermost == NULL ? 0 : budget_held(innermost);
}

void
dmf_budget_hold_outside(DmfMemoryBudget *b, Size bytes)
{
	uint64		held = budget_held(b);

	if (held + bytes > b->cap)
		refuse(b, held, bytes);
	b->outside += bytes;
	if (held + bytes > b->peak)
		b->peak = held + bytes;
}

bool
dmf_budget_expect(DmfMemoryBudget *b, uint64 bytes)
{
	b->expected = bytes;
	return bytes <= b->cap;
}

/* After an allocation: the context may have taken a whole new block. */
static void
note_held(void)
{
	DmfMemoryBudget *b = innermost;

	if (b != NULL)
	{
		uint64		held = budget_held(b);

		if (held > b->peak)
			b->peak = held;
	}
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

	/* a large chunk grows in place or by mremap: only the growth is new */
	if (new_size > old_size)
		dmf_budget_charge(new_size - old_size);
	p = repalloc_huge(ptr, new_size);
	note_held();
	return p;
}
