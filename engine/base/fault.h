/* Fault injection for the failure tests of tensor parallelism: FOLIO_FAULT=RANK:POINT[:N]
 * (several separated by commas) makes rank RANK fail at POINT, at step N when given:
 *   load     after the model is loaded
 *   kv       sizing the KV pool (as if out of memory)
 *   step:N   in step N's forward (before the collectives of that step)
 *   plan:N   the step plan message of step N is corrupted (rank 0: as sent; other ranks:
 *            as received), which the receivers' checksum must catch
 *   hang:N   rank RANK stops making progress in step N (the watchdog must end the job)
 * Unset: no fault anywhere, at the cost of one environment read (folio_env) per check. */
#ifndef FOLIO_FAULT_H
#define FOLIO_FAULT_H

#include <stdbool.h>

/* Whether FOLIO_FAULT names this rank and point, and step n when the entry gives a step (an
 * entry without one matches every n; points without steps pass n = -1). */
bool fault_armed(const char *point, int rank, long long n);

/* If armed: records "injected fault (FOLIO_FAULT=...): POINT" and returns -1; else 0. */
int fault_check(const char *point, int rank, long long n);

#endif
