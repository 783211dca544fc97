/*
 * progress.c
 *	  The progress of a running dmf_train or dmf_refresh: shared memory
 *	  slots, the function behind the view dmf_progress, and the LOG lines
 *	  of dmf.log_progress.
 *
 * Like PostgreSQL's pg_stat_progress_* views: a row appears when the work
 * starts and is gone when it ends, and a role sees the details of another
 * role's work only where pg_stat_activity would show them.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/backendid.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "progress.h"

bool		dmf_log_progress = false;

/* "schema"."relation": two names with every character a doubled quote, quotes, the dot */
#define PROGRESS_RELATION_LEN (2 * (2 * NAMEDATALEN + 2) + 2)

typedef struct ProgressSlot
{
	uint32		changecount;	/* odd while its backend writes */
	int			pid;			/* 0: no command running */
	Oid			dbid;
	Oid			userid;
	DmfProgressCommand command;
	DmfProgressPhase phase;
	char		relation[PROGRESS_RELATION_LEN];
	TimestampTz started;
	int			epoch;			/* 0: none ended yet */
	int			epochs;
	int64		rows_read;
	double		train_rmse;
	double		validation_rmse;	/* NaN: none */
	double		remaining;		/* seconds; NaN: no estimate */
} ProgressSlot;

static const char *const command_names[] = {"dmf_train", "dmf_refresh"};
static const char *const phase_names[] = {"reading", "training", "fold-in", "encoding"};

/* MaxBackends slots, by backend id; NULL when dmf was not preloaded */
static ProgressSlot *progress_slots = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* this backend's command: its slot (NULL: not reported), and nesting depth */
static volatile ProgressSlot *my_slot = NULL;
static int	my_depth = 0;
static DmfProgressCommand my_command;
static char my_relation[PROGRESS_RELATION_LEN];	/* for the LOG lines */
static bool exit_callback_registered = false;

static Size
progress_shmem_size(void)
{
	return mul_size(MaxBackends, sizeof(ProgressSlot));
}

static void
progress_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(progress_shmem_size());
}

static void
progress_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	progress_slots = ShmemInitStruct("dmf progress", progress_shmem_size(), &found);
	if (!found)
		memset(progress_slots, 0, progress_shmem_size());
	LWLockRelease(AddinShmemInitLock);
}

void
dmf_progress_preload(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = progress_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = progress_shmem_startup;
}

/* ---- the owner's writes ---- */

/*
 * A write between these must not ERROR (as pgstat's): readers wait while
 * the count is odd, so a critical section turns any into a PANIC.
 */
static void
begin_write(void)
{
	START_CRIT_SECTION();
	my_slot->changecount++;
	pg_write_barrier();
}

static void
end_write(void)
{
	pg_write_barrier();
	my_slot->changecount++;
	END_CRIT_SECTION();
}

static void
clear_slot(void)
{
	if (my_slot == NULL)
		return;
	begin_write();
	my_slot->pid = 0;
	end_write();
	my_slot = NULL;
}

/* a FATAL or a terminated backend: no ERROR path runs, this does */
static void
clear_at_exit(int code, Datum arg)
{
	clear_slot();
	my_depth = 0;
}

void
dmf_progress_begin(DmfProgressCommand command, const char *relation)
{
	if (my_depth++ > 0)
		return;
	my_command = command;
	strlcpy(my_relation, relation, PROGRESS_RELATION_LEN);
	if (progress_slots == NULL || MyBackendId == InvalidBackendId)
		return;
	if (!exit_callback_registered)
	{
		before_shmem_exit(clear_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	my_slot = &progress_slots[MyBackendId - 1];
	begin_write();
	my_slot->pid = MyProcPid;
	my_slot->dbid = MyDatabaseId;
	/* the session's role, as pg_stat_activity shows and checks it */
	my_slot->userid = GetSessionUserId();
	my_slot->command = command;
	my_slot->phase = DMF_PHASE_READING;
	strlcpy((char *) my_slot->relation, my_relation, PROGRESS_RELATION_LEN);
	my_slot->started = GetCurrentTimestamp();
	my_slot->epoch = 0;
	my_slot->epochs = 0;
	my_slot->rows_read = 0;
	my_slot->train_rmse = NAN;
	my_slot->validation_rmse = NAN;
	my_slot->remaining = NAN;
	end_write();
}

void
dmf_progress_end(void)
{
	if (my_depth == 0)
		return;
	if (--my_depth == 0)
		clear_slot();
}

void
dmf_progress_phase(DmfProgressPhase phase)
{
	if (my_slot == NULL || my_depth != 1)
		return;
	begin_write();
	my_slot->phase = phase;
	my_slot->remaining = NAN;
	end_write();
}

void
dmf_progress_rows_read(int64 more)
{
	if (my_slot == NULL || my_depth != 1)
		return;
	begin_write();
	my_slot->rows_read += more;
	end_write();
}

/*
 * The time left: the phase's epochs up to its cap at their mean length so
 * far (early stopping usually comes sooner), at most the budget's rest.
 * DMF-D's quantizer phase may follow the first: no estimate there.
 */
static double
remaining_seconds(const DmfEpochReport *r, const DmfEpochStats *s)
{
	double		left;

	if (r->discrete && !r->quantizing)
		return NAN;
	left = (r->epochs - r->phase_epochs) * (r->phase_seconds / r->phase_epochs);
	if (!isnan(s->budget_left))
		left = Min(left, s->budget_left);
	return Max(left, 0.0);
}

static void
progress_epoch(const DmfEpochStats *s, int epochs, double remaining)
{
	if (my_slot == NULL || my_depth != 1)
		return;
	begin_write();
	my_slot->epoch = s->epoch;
	my_slot->epochs = epochs;
	my_slot->train_rmse = s->train_rmse;
	my_slot->validation_rmse = s->validation_rmse;
	my_slot->remaining = remaining;
	end_write();
}

static void
log_epoch(const DmfEpochStats *s, int epochs, bool verbose)
{
	int			level = verbose ? NOTICE : LOG;
	char	   *what = verbose ? "" :
		psprintf("%s of %s: ", command_names[my_command], my_relation);

	if (s->lambda > 0.0)
		ereport(level,
				(errmsg("%sepoch %d (quantizer, lambda %.3g): train RMSE %.4f, validation RMSE %.4f (discrete), %.2f s",
						what, s->epoch, s->lambda, s->train_rmse, s->validation_rmse, s->seconds),
				 errhidestmt(true)));
	else if (isnan(s->validation_rmse))
		ereport(level,
				(errmsg("%sepoch %d/%d: train RMSE %.4f, %.2f s",
						what, s->epoch, epochs, s->train_rmse, s->seconds),
				 errhidestmt(true)));
	else
		ereport(level,
				(errmsg("%sepoch %d/%d: train RMSE %.4f, validation RMSE %.4f, %.2f s",
						what, s->epoch, epochs, s->train_rmse, s->validation_rmse, s->seconds),
				 errhidestmt(true)));
}

void
dmf_report_epoch(void *arg, const DmfEpochStats *working)
{
	DmfEpochReport *r = (DmfEpochReport *) arg;
	DmfEpochStats s = *working;

	/* errors on the working scale are errors in rating units times factor */
	s.train_rmse /= r->rating_factor;
	s.validation_rmse /= r->rating_factor;
	s.lambda *= r->rating_factor;
	if (s.lambda > 0.0 && !r->quantizing)
	{
		r->quantizing = true;
		r->phase_seconds = 0.0;
		r->phase_epochs = 0;
	}
	r->phase_seconds += s.seconds;
	r->phase_epochs++;
	progress_epoch(&s, r->epochs, remaining_seconds(r, &s));
	if (dmf_log_progress && my_depth == 1)
		log_epoch(&s, r->epochs, false);
	if (r->verbose)
		log_epoch(&s, r->epochs, true);
}

/* the epochs are over: fold-in and every factor */
void
dmf_report_finish(void *arg)
{
	dmf_progress_phase(DMF_PHASE_FOLD_IN);
}

/* ---- the view ---- */

/* A consistent copy of a slot that its backend may be writing. */
static void
read_slot(volatile ProgressSlot *slot, ProgressSlot *copy)
{
	for (;;)
	{
		uint32		before = slot->changecount;
		uint32		after;

		pg_read_barrier();
		memcpy(copy, (const ProgressSlot *) slot, sizeof(ProgressSlot));
		pg_read_barrier();
		after = slot->changecount;
		if (before == after && (before & 1) == 0)
			return;
		CHECK_FOR_INTERRUPTS();
	}
}

static Datum
seconds_interval(double seconds)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->time = (TimeOffset) (seconds * USECS_PER_SEC);
	return IntervalPGetDatum(iv);
}

#define PROGRESS_COLUMNS 13

/* One row of the view; a role sees another's details as pg_stat_activity allows. */
static void
slot_values(const ProgressSlot *s, TimestampTz now, Datum *values, bool *nulls)
{
	char	   *datname = get_database_name(s->dbid);
	char	   *usename = GetUserNameFromId(s->userid, true);
	bool		allowed = has_privs_of_role(GetUserId(), s->userid) ||
		has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);

	memset(nulls, true, sizeof(bool) * PROGRESS_COLUMNS);
	values[0] = Int32GetDatum(s->pid);
	nulls[0] = false;
	if (datname)
		values[1] = CStringGetTextDatum(datname), nulls[1] = false;
	if (usename)
		values[2] = CStringGetTextDatum(usename), nulls[2] = false;
	if (!allowed)
		return;
	values[3] = CStringGetTextDatum(command_names[s->command]);
	values[4] = CStringGetTextDatum(s->relation);
	values[5] = CStringGetTextDatum(phase_names[s->phase]);
	values[8] = Int64GetDatum(s->rows_read);
	values[11] = seconds_interval((double) (now - s->started) / USECS_PER_SEC);
	nulls[3] = nulls[4] = nulls[5] = nulls[8] = nulls[11] = false;
	if (s->epoch > 0)
	{
		values[6] = Int32GetDatum(s->epoch);
		values[7] = Int32GetDatum(s->epochs);
		values[9] = Float8GetDatum(s->train_rmse);
		nulls[6] = nulls[7] = nulls[9] = false;
		if (!isnan(s->validation_rmse))
			values[10] = Float8GetDatum(s->validation_rmse), nulls[10] = false;
	}
	if (!isnan(s->remaining))
		values[12] = seconds_interval(s->remaining), nulls[12] = false;
}

PG_FUNCTION_INFO_V1(dmf_progress);
Datum
dmf_progress(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	if (progress_slots == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dmf_progress needs dmf in shared_preload_libraries"),
				 errhint("Add dmf to shared_preload_libraries in postgresql.conf and restart the server.")));

	InitMaterializedSRF(fcinfo, 0);
	for (int b = 0; b < MaxBackends; b++)
	{
		ProgressSlot s;
		Datum		values[PROGRESS_COLUMNS];
		bool		nulls[PROGRESS_COLUMNS];

		read_slot(&progress_slots[b], &s);
		/* a backend killed outright leaves its slot: only live ones count */
		if (s.pid == 0 || BackendPidGetProc(s.pid) == NULL)
			continue;
		slot_values(&s, now, values, nulls);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
