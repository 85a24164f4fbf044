/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Parts 1 and 2 of fixture.h (VFIO groups and containers, the backend
 * module, leak accounting, module parameters, type1 ioctl wrappers), for
 * programs that define the rest themselves. Tests include fixture.h.
 */
#ifndef LEAK_UTIL_H
#define LEAK_UTIL_H

#define FIXTURE_PART 2
#include "fixture.h"
#undef FIXTURE_PART

#endif
