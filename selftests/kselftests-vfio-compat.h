/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Force-included (-include) by scripts/kselftests-vfio when the kernel's vfio
 * selftests call calloc_assert() without defining it: Linux 7.2.12's
 * lib/vfio_pci_device.c does (a stable backport that came without the
 * libvfio/assert.h change defining it in 7.3). Same meaning as 7.3's:
 * calloc, or fail the test. The kernel source stays untouched.
 */
#ifndef calloc_assert
#define calloc_assert(_nmemb, _size) ({					\
	size_t __n = (_nmemb), __s = (_size);				\
	void *__p = calloc(__n, __s);					\
	VFIO_ASSERT_NOT_NULL(__p, "calloc(%zu, %zu) failed", __n, __s);	\
	__p;								\
})
#endif
