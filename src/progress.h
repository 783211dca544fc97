/*
 * progress.h
 *	  What a running dmf_train or dmf_refresh is doing, for every session
 *	  (the view dmf_progress) and for the server log (dmf.log_progress).
 *
 * The state lives in shared memory, one slot a backend, requested when dmf
 * is in shared_preload_libraries; without it the calls below only log, and
 * the view is an ERROR.  A slot is written by its backend alone and read
 * by others without a lock (a change counter, as pg_stat_activity's).
 */
#ifndef DMF_PROGRESS_H
#define DMF_PROGRESS_H

#include "postgres.h"

#include "train.h"

typedef enum DmfProgressCommand
{
	DMF_PROGRESS_TRAIN = 0,
	DMF_PROGRESS_REFRESH
} DmfProgressCommand;

typedef enum DmfProgressPhase
{
	DMF_PHASE_READING = 0,
	DMF_PHASE_TRAINING,
	DMF_PHASE_FOLD_IN,
	DMF_PHASE_ENCODING
} DmfProgressPhase;

/* dmf.log_progress: a LOG line for each epoch (module.c defines it) */
extern bool dmf_log_progress;

/* _PG_init when preloading: ask for the slots */
extern void dmf_progress_preload(void);

/*
 * The command's start, in phase "reading", and its end: dmf_progress_end
 * must follow, also on ERROR (PG_FINALLY); a backend that exits clears its
 * slot.  A command inside another (a view of the ratings calling dmf)
 * leaves the outer one's row as it is.
 */
extern void dmf_progress_begin(DmfProgressCommand command, const char *relation);
extern void dmf_progress_end(void);

extern void dmf_progress_phase(DmfProgressPhase phase);
extern void dmf_progress_rows_read(int64 more);

/*
 * A training's report of its epochs (DmfTrainConfig.on_epoch, on_finish
 * with this as their argument): a NOTICE each when verbose, a LOG line
 * with dmf.log_progress, the row of dmf_progress.
 */
typedef struct DmfEpochReport
{
	bool		verbose;
	int			epochs;			/* the cap of a phase */
	bool		discrete;		/* DMF-D: a quantizer phase follows the first */
	double		rating_factor;	/* working scale = rating scale x this */
	/* the phase so far */
	bool		quantizing;
	int			phase_epochs;
	double		phase_seconds;
} DmfEpochReport;

extern void dmf_report_epoch(void *report, const DmfEpochStats *working);
extern void dmf_report_finish(void *report);

#endif
