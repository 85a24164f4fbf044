/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Part 1 of fixture.h (VFIO groups and containers, the backend module), for
 * programs that define the rest themselves. Tests include fixture.h.
 */
#ifndef VFIO_UTIL_H
#define VFIO_UTIL_H

#define FIXTURE_PART 1
#include "fixture.h"
#undef FIXTURE_PART

#endif
