/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small user-space driver for QEMU's "edu" PCI device (1234:11e8) through
 * VFIO, for tests that do real DMA through the vIOMMU, plus helpers to
 * watch /dev/kmsg for IOMMU fault reports. Containers, groups, MAP_DMA and
 * the leak accounting are fixture.h's.
 *
 * edu's BAR0: 0x00 id, 0x04 liveness (reads back ~value), 0x24 interrupt
 * status (read only), 0x60 interrupt raise (ORs the value into the status
 * and signals: an MSI per write if MSI is enabled, else INTx), 0x64
 * interrupt acknowledge (clears the bits written), 0x80 DMA source,
 * 0x88 DMA destination, 0x90 count, 0x98 command (bit 0 start/busy, bit 1
 * direction: 1 = edu -> RAM, 0 = RAM -> edu, bit 2 raise interrupt status
 * bit 0x100 when the transfer is done). The device's own buffer is at
 * device address 0x40000. QEMU 7.2 kills the VM with a hardware error when a
 * transfer reaches the end of that 4 KiB buffer, so transfers are limited to
 * EDU_MAX_XFER and must end strictly before it.
 *
 * Every function that can fail returns 0 or -errno and leaves a readable
 * explanation in edu->err (or the caller's errbuf) for TH_LOG.
 */
#ifndef EDU_H
#define EDU_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include "vfio_util.h"

#define EDU_VENDOR		0x1234
#define EDU_DEVICE		0x11e8
#define EDU_REG_ID		0x00
#define EDU_REG_LIVENESS	0x04
#define EDU_REG_IRQ_STATUS	0x24
#define EDU_REG_IRQ_RAISE	0x60
#define EDU_REG_IRQ_ACK		0x64
#define EDU_REG_DMA_SRC		0x80
#define EDU_REG_DMA_DST		0x88
#define EDU_REG_DMA_CNT		0x90
#define EDU_REG_DMA_CMD		0x98
#define EDU_DMA_START		0x1
#define EDU_DMA_TO_RAM		0x2	/* direction bit: edu -> RAM */
#define EDU_DMA_IRQ		0x4	/* interrupt when done */
#define EDU_IRQ_DMA		0x100	/* the status bit a finished DMA sets */
#define EDU_BUF_ADDR		0x40000ULL
#define EDU_BUF_SIZE		4096
#define EDU_MAX_XFER		2048
#define EDU_DMA_TIMEOUT_MS	5000

struct edu {
	int fd;				/* VFIO device fd, -1 if closed */
	char bdf[32];
	volatile uint8_t *bar;		/* BAR0 mmap, NULL: use pread/pwrite */
	size_t bar_size;
	off_t bar_off;			/* BAR0 region offset in the device fd */
	off_t cfg_off;			/* config space region offset */
	char err[256];
};

static inline int edu_fail(struct edu *e, int err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(e->err, sizeof(e->err), "%s: ", e->bdf);

	va_start(ap, fmt);
	vsnprintf(e->err + n, sizeof(e->err) - n, fmt, ap);
	va_end(ap);
	return err < 0 ? err : -err;
}

static inline uint64_t edu_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

static inline uint64_t edu_read(struct edu *e, unsigned int reg, int size)
{
	uint64_t v = ~0ULL;

	if (e->bar)
		return size == 8 ? *(volatile uint64_t *)(e->bar + reg)
				 : *(volatile uint32_t *)(e->bar + reg);
	if (size == 8) {
		if (pread(e->fd, &v, 8, e->bar_off + reg) != 8)
			v = ~0ULL;
	} else {
		uint32_t v32;

		v = pread(e->fd, &v32, 4, e->bar_off + reg) == 4 ? v32 : ~0ULL;
	}
	return v;
}

static inline void edu_write(struct edu *e, unsigned int reg, uint64_t v, int size)
{
	uint32_t v32 = v;

	if (e->bar) {
		if (size == 8)
			*(volatile uint64_t *)(e->bar + reg) = v;
		else
			*(volatile uint32_t *)(e->bar + reg) = v32;
		return;
	}
	if (size == 8) {
		if (pwrite(e->fd, &v, 8, e->bar_off + reg) != 8)
			return;
	} else if (pwrite(e->fd, &v32, 4, e->bar_off + reg) != 4) {
		return;
	}
}

static inline void edu_close(struct edu *e)
{
	if (e->bar)
		munmap((void *)e->bar, e->bar_size);
	e->bar = NULL;
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
}

/*
 * Gets the device fd for bdf from group_fd (whose container must already
 * have an IOMMU), maps BAR0, checks the device answers and enables memory
 * decoding and bus mastering.
 */
static inline int edu_open(struct edu *e, int group_fd, const char *bdf)
{
	struct vfio_region_info bar = { .argsz = sizeof(bar), .index = VFIO_PCI_BAR0_REGION_INDEX };
	struct vfio_region_info cfg = { .argsz = sizeof(cfg), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t vendor[2], cmd;
	uint32_t id, live;
	void *p;

	memset(e, 0, sizeof(*e));
	e->fd = -1;
	snprintf(e->bdf, sizeof(e->bdf), "%.31s", bdf);
	e->fd = ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (e->fd < 0)
		return edu_fail(e, errno, "VFIO_GROUP_GET_DEVICE_FD: %s", strerror(errno));
	if (ioctl(e->fd, VFIO_DEVICE_GET_REGION_INFO, &cfg))
		return edu_fail(e, errno, "GET_REGION_INFO(config): %s", strerror(errno));
	e->cfg_off = cfg.offset;
	if (pread(e->fd, vendor, 4, e->cfg_off + PCI_VENDOR_ID) != 4)
		return edu_fail(e, errno, "config read: %s", strerror(errno));
	if (vendor[0] != EDU_VENDOR || vendor[1] != EDU_DEVICE)
		return edu_fail(e, ENODEV, "not an edu device (%04x:%04x)", vendor[0], vendor[1]);
	if (ioctl(e->fd, VFIO_DEVICE_GET_REGION_INFO, &bar))
		return edu_fail(e, errno, "GET_REGION_INFO(BAR0): %s", strerror(errno));
	if (bar.size < 0x100)
		return edu_fail(e, ENODEV, "BAR0 too small (%llu)", (unsigned long long)bar.size);
	e->bar_off = bar.offset;
	if (bar.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		p = mmap(NULL, bar.size, PROT_READ | PROT_WRITE, MAP_SHARED, e->fd, bar.offset);
		if (p == MAP_FAILED)
			return edu_fail(e, errno, "mmap BAR0: %s", strerror(errno));
		e->bar = p;
		e->bar_size = bar.size;
	}

	if (pread(e->fd, &cmd, 2, e->cfg_off + PCI_COMMAND) != 2)
		return edu_fail(e, errno, "read PCI_COMMAND: %s", strerror(errno));
	cmd |= PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (pwrite(e->fd, &cmd, 2, e->cfg_off + PCI_COMMAND) != 2)
		return edu_fail(e, errno, "write PCI_COMMAND: %s", strerror(errno));
	if (pread(e->fd, &cmd, 2, e->cfg_off + PCI_COMMAND) != 2 ||
	    (cmd & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) !=
		    (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER))
		return edu_fail(e, EIO, "bus master/memory not enabled (PCI_COMMAND %#x)", cmd);

	id = edu_read(e, EDU_REG_ID, 4);
	if ((id & 0xff) != 0xed)
		return edu_fail(e, EIO, "bad id register %#x", id);
	edu_write(e, EDU_REG_LIVENESS, 0x12345678, 4);
	live = edu_read(e, EDU_REG_LIVENESS, 4);
	if (live != (uint32_t)~0x12345678u)
		return edu_fail(e, EIO, "liveness register: wrote 0x12345678, read %#x", live);
	if (edu_read(e, EDU_REG_DMA_CMD, 8) & EDU_DMA_START)
		return edu_fail(e, EBUSY, "a DMA is already running");
	return 0;
}

static inline int edu_dma_wait(struct edu *e)
{
	uint64_t t0 = edu_now_ms(), cmd;

	while ((cmd = edu_read(e, EDU_REG_DMA_CMD, 8)) & EDU_DMA_START) {
		if (cmd == ~0ULL)
			return edu_fail(e, EIO, "command register reads all-ones");
		if (edu_now_ms() - t0 > EDU_DMA_TIMEOUT_MS)
			return edu_fail(e, ETIMEDOUT, "DMA did not finish within %d ms (cmd %#llx)",
					EDU_DMA_TIMEOUT_MS, (unsigned long long)cmd);
		usleep(2000);
	}
	return 0;
}

/* One transfer, waited for; cmd is the command's direction bit, and
 * EDU_DMA_IRQ for an interrupt when it is done. */
static inline int edu_dma(struct edu *e, uint64_t src, uint64_t dst, uint64_t len, uint64_t cmd)
{
	uint64_t dir = cmd & EDU_DMA_TO_RAM;
	uint64_t devoff = dir ? src - EDU_BUF_ADDR : dst - EDU_BUF_ADDR;
	int r;

	if (!len || len > EDU_MAX_XFER || devoff + len >= EDU_BUF_SIZE)
		return edu_fail(e, EINVAL, "bad transfer: %#llx bytes at edu offset %#llx",
				(unsigned long long)len, (unsigned long long)devoff);
	r = edu_dma_wait(e);
	if (r)
		return r;
	edu_write(e, EDU_REG_DMA_SRC, src, 8);
	edu_write(e, EDU_REG_DMA_DST, dst, 8);
	edu_write(e, EDU_REG_DMA_CNT, len, 8);
	if (edu_read(e, EDU_REG_DMA_SRC, 8) != src || edu_read(e, EDU_REG_DMA_DST, 8) != dst ||
	    edu_read(e, EDU_REG_DMA_CNT, 8) != len)
		return edu_fail(e, EIO, "DMA registers did not latch");
	edu_write(e, EDU_REG_DMA_CMD, EDU_DMA_START | cmd, 8);
	r = edu_dma_wait(e);
	if (r) {
		char why[sizeof(e->err)];

		snprintf(why, sizeof(why), "%s", e->err + strlen(e->bdf) + 2);
		return edu_fail(e, r, "DMA %s iova %#llx len %#llx: %.150s",
				dir ? "edu->RAM to" : "RAM->edu from",
				(unsigned long long)(dir ? dst : src), (unsigned long long)len, why);
	}
	return 0;
}

/* RAM (iova) -> edu buffer at devoff. */
static inline int edu_dma_to_device(struct edu *e, uint64_t iova, uint32_t devoff, uint32_t len)
{
	return edu_dma(e, iova, EDU_BUF_ADDR + devoff, len, 0);
}

/* edu buffer at devoff -> RAM (iova). */
static inline int edu_dma_from_device(struct edu *e, uint64_t iova, uint32_t devoff, uint32_t len)
{
	return edu_dma(e, EDU_BUF_ADDR + devoff, iova, len, EDU_DMA_TO_RAM);
}

/*
 * Wires the edu's one MSI vector to eventfd efd (VFIO_DEVICE_SET_IRQS,
 * index VFIO_PCI_MSI_IRQ_INDEX: vfio-pci enables MSI in the device and
 * requests the host interrupt), or with efd < 0 disables MSI again.
 */
static inline int edu_msi_set(struct edu *e, int efd)
{
	union {
		struct vfio_irq_set s;
		uint8_t bytes[sizeof(struct vfio_irq_set) + sizeof(int32_t)];
	} u;
	struct vfio_irq_info info = { .argsz = sizeof(info), .index = VFIO_PCI_MSI_IRQ_INDEX };
	int32_t fd = efd;

	if (ioctl(e->fd, VFIO_DEVICE_GET_IRQ_INFO, &info))
		return edu_fail(e, errno, "GET_IRQ_INFO(MSI): %s", strerror(errno));
	if (info.count != 1 || !(info.flags & VFIO_IRQ_INFO_EVENTFD))
		return edu_fail(e, ENODEV, "MSI: %u vectors, flags %#x (want 1, EVENTFD)",
				info.count, info.flags);
	memset(&u, 0, sizeof(u));
	u.s.argsz = sizeof(u.s);
	u.s.index = VFIO_PCI_MSI_IRQ_INDEX;
	u.s.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	if (efd >= 0) {
		u.s.argsz = sizeof(u);
		u.s.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER;
		u.s.count = 1;
		memcpy(u.s.data, &fd, sizeof(fd));
	}
	if (ioctl(e->fd, VFIO_DEVICE_SET_IRQS, &u))
		return edu_fail(e, errno, "SET_IRQS(MSI, %s): %s", efd >= 0 ? "eventfd" : "off",
				strerror(errno));
	return 0;
}

/* A reproducible byte pattern (xorshift32 from seed) for DMA round trips. */
static inline void fill_pattern(uint8_t *p, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = x;
	}
}

/* ---- kernel log watch for IOMMU faults ---- */

#define KMSG_MAX_LINES 32

struct kmsg_watch {
	int fd;
	int nlines;
	char line[KMSG_MAX_LINES][200];
};

/* Is this kernel log message an IOMMU fault report (intel-iommu, SMMUv3)? */
static inline bool kmsg_is_iommu_fault(const char *msg)
{
	return strstr(msg, "DMAR: [DMA ") || strstr(msg, "DMAR: DRHD: handling fault") ||
	       (strstr(msg, "arm-smmu-v3") &&
		(strstr(msg, "received:") || strstr(msg, "F_TRANSLATION") ||
		 strstr(msg, "F_PERMISSION") ||
		 /* Linux 6.12 prints the raw record: one "\t0x%016llx" per
		  * dword, the tab escaped by /dev/kmsg */
		 strstr(msg, ": \\x090x")));
}

/* Starts watching: later kmsg_watch_faults() only sees newer messages. */
static inline int kmsg_watch_begin(struct kmsg_watch *w)
{
	memset(w, 0, sizeof(*w));
	w->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (w->fd < 0)
		return -errno;
	if (lseek(w->fd, 0, SEEK_END) < 0) {
		int err = -errno;

		close(w->fd);
		w->fd = -1;
		return err;
	}
	return 0;
}

static inline void kmsg_watch_end(struct kmsg_watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* Reads what the log has now; stores fault lines. */
static inline void kmsg_watch_drain(struct kmsg_watch *w)
{
	char rec[1024];

	for (;;) {
		ssize_t n = read(w->fd, rec, sizeof(rec) - 1);
		char *msg, *nl;

		if (n < 0 && errno == EPIPE)	/* overwritten records: go on */
			continue;
		if (n <= 0)
			return;
		rec[n] = 0;
		msg = strchr(rec, ';');
		if (!msg)
			continue;
		msg++;
		nl = strchr(msg, '\n');
		if (nl)
			*nl = 0;
		if (kmsg_is_iommu_fault(msg) && w->nlines < KMSG_MAX_LINES)
			snprintf(w->line[w->nlines++], sizeof(w->line[0]), "%.199s", msg);
	}
}

/*
 * Number of IOMMU fault lines logged since kmsg_watch_begin(), waiting up
 * to timeout_ms for the first one (the fault interrupt is handled
 * asynchronously), then a little longer for the rest of the report.
 */
static inline int kmsg_watch_faults(struct kmsg_watch *w, int timeout_ms)
{
	uint64_t t0 = edu_now_ms();

	kmsg_watch_drain(w);
	while (!w->nlines && edu_now_ms() - t0 < (uint64_t)timeout_ms) {
		usleep(10000);
		kmsg_watch_drain(w);
	}
	if (w->nlines) {
		usleep(50000);
		kmsg_watch_drain(w);
	}
	return w->nlines;
}

/* Does one of the fault lines name this (page-aligned) IOVA? Both
 * intel-iommu ("fault addr 0x...") and SMMUv3 ("iova: 0x...") print it. */
static inline bool kmsg_watch_names_iova(struct kmsg_watch *w, uint64_t iova)
{
	char hex[32], raw[32];

	snprintf(hex, sizeof(hex), "0x%llx ", (unsigned long long)iova);
	/* Linux 6.12's SMMUv3: the raw record, whose dword 2 is the address. */
	snprintf(raw, sizeof(raw), "\\x090x%016llx", (unsigned long long)iova);
	for (int i = 0; i < w->nlines; i++) {
		const char *r = strstr(w->line[i], raw);

		if (strstr(w->line[i], hex) || (r && !r[strlen(raw)]))
			return true;
	}
	return false;
}

/*
 * The fault reports are rate limited (DEFAULT_RATELIMIT_BURST = 10 per
 * DEFAULT_RATELIMIT_INTERVAL = 5 s); intel-iommu's dmar_fault() spends about
 * three of those per fault (status line, record, the empty slot after it),
 * so a fault whose report a test needs must not follow more than one other
 * fault within 5 s. Call this right before every DMA that is meant to
 * fault: it records the fault time in a file shared by the forked tests and,
 * if wait, first waits until the fault's report will not be rate limited.
 */
#define EDU_FAULT_LOG "/tmp/edu-dma-faults"

static inline void iommu_fault_ratelimit(bool wait)
{
	uint64_t last[2] = { 0, 0 }, t, now;
	FILE *f = fopen(EDU_FAULT_LOG, "r");

	if (f) {
		while (fscanf(f, "%llu", (unsigned long long *)&t) == 1) {
			last[0] = last[1];
			last[1] = t;
		}
		fclose(f);
	}
	/* At most one other fault in the last 5.5 s. */
	now = edu_now_ms();
	if (wait && last[0] && now < last[0] + 5500)
		usleep((last[0] + 5500 - now) * 1000);
	f = fopen(EDU_FAULT_LOG, "a");
	if (f) {
		fprintf(f, "%llu\n", (unsigned long long)edu_now_ms());
		fclose(f);
	}
}

#endif
