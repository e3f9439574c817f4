/* par.h - the OpenMP thread queries the layers use, also when built
 * without OpenMP (then one thread, number 0): per-thread scratch is
 * indexed by par_thread_id(), column blocks split by par_team(). */
#ifndef TTT_PAR_H
#define TTT_PAR_H

#ifdef _OPENMP
#include <omp.h>
#endif

/* Threads the next parallel region may use. */
static inline int par_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* This thread's number inside a parallel region. */
static inline int par_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* This thread's number and the team size inside a parallel region. */
static inline void par_team(int *id, int *nt)
{
#ifdef _OPENMP
    *id = omp_get_thread_num();
    *nt = omp_get_num_threads();
#else
    *id = 0;
    *nt = 1;
#endif
}

#endif
