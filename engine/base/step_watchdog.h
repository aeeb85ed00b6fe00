/* A per-process watchdog over steps: a thread that ends the job when one step (the forward
 * and its collectives) takes longer than FOLIO_STEP_TIMEOUT seconds (default 600; 0 = off).
 * Waiting for work between steps (a worker idle in its receive, a server with no requests)
 * is never timed. On timeout it prints one line with the rank and host and exits with status
 * 1 without running atexit handlers; mpirun/srun then end the other ranks. It makes no MPI
 * call (MPI may be initialised as MPI_THREAD_FUNNELED). The NCCL watchdog (nccl_comm.h)
 * also aborts the communicators first. */
#ifndef FOLIO_STEP_WATCHDOG_H
#define FOLIO_STEP_WATCHDOG_H

/* The one timeout of a step and of a device collective, in seconds: the watchdog's default
 * (FOLIO_STEP_TIMEOUT unset) and the NCCL watchdog's (nccl_comm.h). */
#define STEP_TIMEOUT_DEFAULT_S 600.0

/* Starts the thread (once per process; later calls do nothing). 0, or -1 with a message
 * (bad FOLIO_STEP_TIMEOUT). */
int step_watchdog_start(int rank, const char *host);
void step_watchdog_stop(void);

/* A function the watchdog calls before it ends the process (e.g. ncclCommAbort, so no rank
 * stays inside NCCL); NULL removes it. */
void step_watchdog_on_timeout(void (*fn)(void *), void *arg);

/* Marks the start and end of a step (cheap: two atomic stores). */
void step_watchdog_enter(long long step);
void step_watchdog_leave(void);

#endif
