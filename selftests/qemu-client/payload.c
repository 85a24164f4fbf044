// SPDX-License-Identifier: GPL-2.0
/*
 * A guest with no OS for the nested-QEMU client test (scripts/check-clients):
 * a multiboot image that QEMU loads with -kernel into its second-level
 * guest. It finds the edu device that QEMU passes through with vfio-pci,
 * copies a pattern from guest RAM into the device and back to another
 * buffer with the device's DMA engine, compares and reports on COM1. On
 * success it then halts, so the test can look at the running QEMU (what it
 * pinned) before stopping it; on failure it ends QEMU through
 * isa-debug-exit (exit status 2 * code + 1).
 *
 * The DMA addresses are guest-physical (paging stays off), so the device's
 * transactions go guest RAM -> QEMU's vfio container -> the backend's IOMMU
 * mapping of QEMU's memory in the test VM.
 *
 * Built freestanding, 32-bit: gcc -m32 -ffreestanding -nostdlib.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x0
__attribute__((section(".multiboot"), used, aligned(4)))
static const u32 multiboot_header[3] = { MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS) };

#define COM1 0x3f8
#define DEBUG_EXIT 0xf4

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUF 0x40000
#define EDU_BUF_SIZE 4096
/* QEMU 7.2's edu refuses a transfer of its whole buffer (off by one). */
#define XFER 2048

/* Where BAR0 is moved to (1 MiB aligned, in the 32-bit PCI hole). */
#define MOVED_BAR 0xfe000000u

/* Exit codes: QEMU exits with 2 * code + 1. */
enum { OK = 0x10, NO_DEVICE = 0x11, BAD_ID = 0x12, DMA_TIMEOUT = 0x13, MISMATCH = 0x14 };

static u8 src[EDU_BUF_SIZE] __attribute__((aligned(4096)));
static u8 dst[EDU_BUF_SIZE] __attribute__((aligned(4096)));

static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline u32 inl(u16 port)
{
	u32 v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void puts(const char *s)
{
	for (; *s; s++)
		outb(COM1, *s);
}

static void puthex(u32 v)
{
	int i;

	puts("0x");
	for (i = 28; i >= 0; i -= 4)
		outb(COM1, "0123456789abcdef"[(v >> i) & 0xf]);
}

static __attribute__((noreturn)) void finish(int code, const char *what)
{
	puts(code == OK ? "payload: PASS: " : "payload: FAIL: ");
	puts(what);
	puts("\n");
	if (code != OK)
		outb(DEBUG_EXIT, code);
	for (;;)
		__asm__ volatile("cli; hlt");
}

static u32 pci_read(u32 bdf, u32 reg)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	return inl(0xcfc);
}

static void pci_write(u32 bdf, u32 reg, u32 v)
{
	outl(0xcf8, 0x80000000u | bdf << 8 | (reg & 0xfc));
	outl(0xcfc, v);
}

static volatile u32 *reg(u32 bar, u32 off) { return (volatile u32 *)(bar + off); }

/* One DMA transfer; edu finishes it on a 100 ms virtual-time timer. */
static int edu_dma(u32 bar, u32 from, u32 to, u32 len, u32 cmd)
{
	u32 spins;

	*reg(bar, EDU_DMA_SRC) = from;
	*reg(bar, EDU_DMA_SRC + 4) = 0;
	*reg(bar, EDU_DMA_DST) = to;
	*reg(bar, EDU_DMA_DST + 4) = 0;
	*reg(bar, EDU_DMA_CNT) = len;
	*reg(bar, EDU_DMA_CNT + 4) = 0;
	*reg(bar, EDU_DMA_CMD) = cmd | EDU_DMA_START;
	for (spins = 0; spins < 4000000000u; spins++)
		if (!(*reg(bar, EDU_DMA_CMD) & EDU_DMA_START))
			return 0;
	return -1;
}

/* The edu answers at bar: its id, and the inverted liveness register. */
static void check_registers(u32 bar)
{
	if ((*reg(bar, EDU_ID) & 0xff) != 0xed)
		finish(BAD_ID, "edu id register is wrong");
	*reg(bar, EDU_LIVENESS) = bar;
	if (*reg(bar, EDU_LIVENESS) != ~bar)
		finish(BAD_ID, "edu liveness register is wrong");
}

/* A pattern from src through the edu's buffer into dst, compared. */
static void round_trip(u32 bar, u8 seed)
{
	u32 i;

	for (i = 0; i < XFER; i++) {
		src[i] = (u8)(i * 7 + seed);
		dst[i] = 0;
	}
	puts("payload: DMA ");
	puthex((u32)src);
	puts(" -> edu -> ");
	puthex((u32)dst);
	puts(" through BAR0 ");
	puthex(bar);
	puts("\n");
	if (edu_dma(bar, (u32)src, EDU_BUF, XFER, 0) ||
	    edu_dma(bar, EDU_BUF, (u32)dst, XFER, EDU_DMA_TO_RAM))
		finish(DMA_TIMEOUT, "DMA did not complete");
	for (i = 0; i < XFER; i++)
		if (dst[i] != src[i])
			finish(MISMATCH, "DMA round trip: data differs");
}

void main(void)
{
	u32 bdf, id, bar = 0;

	for (bdf = 0; bdf < 32 * 8 && !bar; bdf++) {
		id = pci_read(bdf, 0);
		if ((id & 0xffff) == EDU_VENDOR && id >> 16 == EDU_DEVICE) {
			bar = pci_read(bdf, 0x10) & ~0xfu;
			/* Memory decoding and bus mastering. */
			pci_write(bdf, 0x04, pci_read(bdf, 0x04) | 0x6);
			break;
		}
	}
	if (!bar)
		finish(NO_DEVICE, "no edu device");
	puts("payload: edu at bdf ");
	puthex(bdf);
	puts(", BAR0 ");
	puthex(bar);
	puts("\n");
	check_registers(bar);
	round_trip(bar, 3);

	/*
	 * Move the BAR, as a guest OS may: decoding off, a new address,
	 * decoding on. QEMU unmaps the BAR's peer-to-peer mapping at the old
	 * address and maps it at the new one.
	 */
	pci_write(bdf, 0x04, pci_read(bdf, 0x04) & ~0x2u);
	bar = bar == MOVED_BAR ? MOVED_BAR + 0x100000 : MOVED_BAR;
	pci_write(bdf, 0x10, bar);
	pci_write(bdf, 0x04, pci_read(bdf, 0x04) | 0x2);
	if ((pci_read(bdf, 0x10) & ~0xfu) != bar)
		finish(BAD_ID, "BAR0 did not move");
	puts("payload: BAR0 moved to ");
	puthex(bar);
	puts("\n");
	check_registers(bar);
	round_trip(bar, 5);
	finish(OK, "DMA round trips OK, 2048 bytes each, before and after moving BAR0");
}
