/*
 * helper_thread.c
 *	  The helper threads of a training or a fold-in (see helper_thread.h).
 */
#include "platform.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "helper_thread.h"

struct DmfHelper
{
	pthread_t	thread;
	pthread_mutex_t mutex;
	pthread_cond_t cond;
	void		(*job) (void *);
	void	   *arg;
	bool		busy;
	bool		quit;
	DmfHelper  *next;			/* in the list of running helpers */
};

/* Running helpers, so that an ERROR path can stop them all. */
static DmfHelper *running = NULL;

static void *
helper_main(void *arg)
{
	DmfHelper  *h = (DmfHelper *) arg;

	pthread_mutex_lock(&h->mutex);
	for (;;)
	{
		while (!h->busy && !h->quit)
			pthread_cond_wait(&h->cond, &h->mutex);
		if (h->quit)
			break;
		pthread_mutex_unlock(&h->mutex);
		h->job(h->arg);
		pthread_mutex_lock(&h->mutex);
		h->busy = false;
		pthread_cond_broadcast(&h->cond);
	}
	pthread_mutex_unlock(&h->mutex);
	return NULL;
}

DmfHelper *
dmf_helper_start(void)
{
	sigset_t	all,
				old;

	/*
	 * Not on the stack nor in a memory context: an ERROR unwinds the stack
	 * and frees the context, and the helper must still find its mutex when
	 * it is told to quit.
	 */
	DmfHelper  *h = calloc(1, sizeof(DmfHelper));

	if (h == NULL)
		return NULL;
	pthread_mutex_init(&h->mutex, NULL);
	pthread_cond_init(&h->cond, NULL);
	/* the new thread inherits this mask: every signal blocked */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&h->thread, NULL, helper_main, h) != 0)
	{
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->mutex);
		free(h);
		return NULL;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	h->next = running;
	running = h;
	return h;
}

void
dmf_helper_run(DmfHelper *h, void (*job) (void *), void *arg)
{
	pthread_mutex_lock(&h->mutex);
	h->job = job;
	h->arg = arg;
	h->busy = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mutex);
}

void
dmf_helper_wait(DmfHelper *h)
{
	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		pthread_cond_wait(&h->cond, &h->mutex);
	pthread_mutex_unlock(&h->mutex);
}

bool
dmf_helper_wait_for(DmfHelper *h, int ms)
{
	struct timespec until;
	bool		done;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long) ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		if (pthread_cond_timedwait(&h->cond, &h->mutex, &until) == ETIMEDOUT)
			break;
	done = !h->busy;
	pthread_mutex_unlock(&h->mutex);
	return done;
}

void
dmf_helper_stop(DmfHelper *h)
{
	DmfHelper **link = &running;

	pthread_mutex_lock(&h->mutex);
	while (h->busy)
		pthread_cond_wait(&h->cond, &h->mutex);
	h->quit = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mutex);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->mutex);
	while (*link != NULL && *link != h)
		link = &(*link)->next;
	if (*link == h)
		*link = h->next;
	free(h);
}

void
dmf_helpers_stop_all(void)
{
	while (running != NULL)
		dmf_helper_stop(running);
}

/* A team: its helpers, and the run under way. */
typedef struct TeamMember
{
	DmfTeam    *team;
	int			worker;
} TeamMember;

struct DmfTeam
{
	int			size;			/* threads, the caller's included */
	DmfHelper **helpers;		/* size - 1 */
	TeamMember *members;		/* size */
	DmfTeamJob	job;
	void	   *arg;
	int			n_tasks;
	int			next;			/* the next task to claim (atomic) */
	int			first;			/* the helper woken first in the next run */
};

static void
team_worker(void *arg)
{
	TeamMember *m = (TeamMember *) arg;
	DmfTeam    *team = m->team;

	for (;;)
	{
		int			task = __atomic_fetch_add(&team->next, 1, __ATOMIC_RELAXED);

		if (task >= team->n_tasks)
			break;
		team->job(team->arg, task, m->worker);
	}
}

DmfTeam *
dmf_team_start(int threads)
{
	DmfTeam    *team;

	if (threads <= 1)
		return NULL;
	team = dmf_alloc0(sizeof(DmfTeam));
	team->helpers = dmf_alloc0(sizeof(DmfHelper *) * threads);
	team->members = dmf_alloc0(sizeof(TeamMember) * threads);
	team->size = 1;
	for (int k = 0; k < threads; k++)
	{
		team->members[k].team = team;
		team->members[k].worker = k;
	}
	for (int k = 1; k < threads; k++)
	{
		DmfHelper  *h = dmf_helper_start();

		if (h == NULL)
			break;
		team->helpers[team->size - 1] = h;
		team->size++;
	}
	return team;
}

int
dmf_team_size(const DmfTeam *team)
{
	return team ? team->size : 1;
}

void
dmf_team_run(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks)
{
	dmf_team_run_with(team, job, arg, n_tasks, NULL, NULL);
}

void
dmf_team_run_with(DmfTeam *team, DmfTeamJob job, void *arg, int n_tasks,
				  void (*first) (void *), void *first_arg)
{
	int			wake;

	if (team == NULL || team->size == 1 || n_tasks <= 1)
	{
		if (first)
			first(first_arg);
		for (int task = 0; task < n_tasks; task++)
			job(arg, task, 0);
		return;
	}
	team->job = job;
	team->arg = arg;
	team->n_tasks = n_tasks;
	__atomic_store_n(&team->next, 0, __ATOMIC_RELAXED);
	/*
	 * No more helpers than tasks beyond the caller's first.  The first
	 * woken claims the most tasks when there are more threads than cores:
	 * each run starts the round at the next helper, so that over many runs
	 * every helper gets its share.
	 */
	wake = team->size - 1 < n_tasks - 1 ? team->size - 1 : n_tasks - 1;
	for (int k = 0; k < wake; k++)
	{
		int			h = (team->first + k) % (team->size - 1);

		dmf_helper_run(team->helpers[h], team_worker, &team->members[h + 1]);
	}
	if (first)
		first(first_arg);
	team_worker(&team->members[0]);
	for (int k = 0; k < wake; k++)
		dmf_helper_wait(team->helpers[(team->first + k) % (team->size - 1)]);
	team->first = (team->first + 1) % (team->size - 1);
}

void
dmf_team_stop(DmfTeam *team)
{
	if (team == NULL)
		return;
	for (int k = 0; k < team->size - 1; k++)
		dmf_helper_stop(team->helpers[k]);
	dmf_free(team->members);
	dmf_free(team->helpers);
	dmf_free(team);
}
