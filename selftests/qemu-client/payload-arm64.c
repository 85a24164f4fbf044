// SPDX-License-Identifier: GPL-2.0
/*
 * The arm64 guest with no OS for the nested-QEMU client test
 * (scripts/check-clients arm64): an ELF that QEMU's virt board
 * (highmem=off, gic-version=2) starts at EL1 with the MMU off. It finds the
 * edu device that QEMU passes through with vfio-pci in ECAM, gives it a BAR
 * (no firmware did), copies a pattern from guest RAM into the device and
 * back with the device's DMA engine, and takes the edu's MSI through the
 * board's GICv2m frame: once raised by the edu's register, once by a DMA
 * completion. It then moves the BAR and does the round trip (and its MSI)
 * again, reports on the PL011 and waits (wfi), so the test can look at the
 * running QEMU before stopping it. A failure is reported and powers the
 * board off (PSCI SYSTEM_OFF).
 *
 * Each MSI goes: edu in the test VM -> the test VM's SMMUv3 (the backend's
 * MSI window) -> its GICv3 ITS -> vfio-pci's eventfd -> QEMU -> this
 * guest's GICv2m, where it shows as a pending SPI (the CPU interface stays
 * off: no exception vectors needed).
 *
 * With the MMU off every access is Device memory: -mstrict-align, no
 * builtins, no FP/SIMD.
 */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

/* QEMU's virt board with highmem=off (hw/arm/virt.c's memory map). */
#define UART 0x09000000ul
#define GICD 0x08000000ul
#define V2M 0x08020000ul
#define ECAM 0x3f000000ul
#define BAR_AT 0x10000000u	/* the 32-bit PCI memory window */
#define MOVED_BAR 0x10200000u

#define V2M_TYPER 0x008
#define V2M_SETSPI 0x040
#define GICD_CTLR 0x000
#define GICD_ISENABLER 0x100
#define GICD_ISPENDR 0x200
#define GICD_ICPENDR 0x280
#define GICD_ITARGETSR 0x800
#define GICD_ICFGR 0xc00

#define EDU_VENDOR 0x1234
#define EDU_DEVICE 0x11e8
#define EDU_ID 0x00
#define EDU_LIVENESS 0x04
#define EDU_IRQ_STATUS 0x24
#define EDU_IRQ_RAISE 0x60
#define EDU_IRQ_ACK 0x64
#define EDU_DMA_SRC 0x80
#define EDU_DMA_DST 0x88
#define EDU_DMA_CNT 0x90
#define EDU_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_DMA_IRQ 0x4
#define EDU_DMA_DONE_IRQ 0x100	/* the status bit a DMA completion raises */
#define EDU_BUF 0x40000
#define EDU_BUF_SIZE 4096
/* QEMU 7.2's edu refuses a transfer of its whole buffer (off by one). */
#define XFER 2048
#define PCI_CAP_ID_MSI 0x05

static u8 src[EDU_BUF_SIZE] __attribute__((aligned(4096)));
static u8 dst[EDU_BUF_SIZE] __attribute__((aligned(4096)));
static u32 spi;			/* the SPI GICv2m gives the edu's MSI */
static u32 msis;		/* MSIs seen pending */

static volatile u32 *mmio32(u64 addr) { return (volatile u32 *)addr; }

static void putc(char c)
{
	while (*mmio32(UART + 0x18) & 0x20)	/* UARTFR.TXFF */
		;
	*mmio32(UART) = (u8)c;
}

static void puts(const char *s)
{
	for (; *s; s++)
		putc(*s);
}

static void puthex(u32 v)
{
	int i;

	puts("0x");
	for (i = 28; i >= 0; i -= 4)
		putc("0123456789abcdef"[(v >> i) & 0xf]);
}

static void putdec(u32 v)
{
	char b[11];
	int i = 10;

	b[i] = 0;
	do
		b[--i] = (char)('0' + v % 10);
	while ((v /= 10) && i);
	puts(&b[i]);
}

static __attribute__((noreturn)) void finish(int ok, const char *what)
{
	puts(ok ? "payload: PASS: " : "payload: FAIL: ");
	puts(what);
	puts("\n");
	if (!ok) {
		register u64 x0 __asm__("x0") = 0x84000008;	/* PSCI SYSTEM_OFF */

		__asm__ volatile("hvc #0" : "+r"(x0));
	}
	for (;;)
		__asm__ volatile("wfi");
}

/* Config space of bus 0 through ECAM. */
static volatile u32 *cfg(u32 devfn, u32 reg)
{
	return mmio32(ECAM + (devfn << 12) + (reg & 0xffc));
}

static volatile u32 *reg(u32 bar, u32 off) { return mmio32(bar + off); }

/* The MSI capability, programmed to GICv2m's doorbell with its first SPI. */
static void msi_setup(u32 devfn)
{
	u32 cap, typer = *mmio32(V2M + V2M_TYPER), n;
	volatile u8 *targets = (volatile u8 *)(GICD + GICD_ITARGETSR);

	if (!(typer & 0x3ff))
		finish(0, "no GICv2m MSI frame at 0x08020000");
	spi = (typer >> 16) & 0x3ff;
	for (cap = *cfg(devfn, 0x34) & 0xfc; cap; cap = (*cfg(devfn, cap) >> 8) & 0xfc)
		if ((*cfg(devfn, cap) & 0xff) == PCI_CAP_ID_MSI)
			break;
	if (!cap)
		finish(0, "edu has no MSI capability");
	*cfg(devfn, cap + 4) = (u32)(V2M + V2M_SETSPI);
	n = *cfg(devfn, cap) >> 16 & 0x80 ? 12 : 8;	/* 64-bit address? */
	if (n == 12)
		*cfg(devfn, cap + 8) = 0;
	*cfg(devfn, cap + n) = spi;
	*cfg(devfn, cap) |= 1u << 16;			/* MSI enable */

	/* The SPI: edge, enabled, to CPU 0, so a doorbell write leaves it pending. */
	*mmio32(GICD + GICD_ICFGR + spi / 16 * 4) |= 2u << (spi % 16 * 2);
	targets[spi] = 1;
	*mmio32(GICD + GICD_ISENABLER + spi / 32 * 4) = 1u << (spi % 32);
	*mmio32(GICD + GICD_CTLR) = 1;
	puts("payload: MSI to GICv2m SPI ");
	putdec(spi);
	puts("\n");
}

/* Waits for the edu's MSI, then acks it in the edu and the GIC. */
static void take_msi(u32 bar, u32 status, const char *why)
{
	u32 spins, bit = 1u << (spi % 32);

	for (spins = 0; spins < 400000000u; spins++)
		if (*mmio32(GICD + GICD_ISPENDR + spi / 32 * 4) & bit)
			break;
	if (!(*mmio32(GICD + GICD_ISPENDR + spi / 32 * 4) & bit))
		finish(0, why);
	if (!(*reg(bar, EDU_IRQ_STATUS) & status))
		finish(0, "MSI pending but edu's status has not the bit");
	*reg(bar, EDU_IRQ_ACK) = status;
	*mmio32(GICD + GICD_ICPENDR + spi / 32 * 4) = bit;
	msis++;
	puts("payload: MSI ");
	putdec(msis);
	puts(" taken (");
	puts(why);
	puts(")\n");
}

/* One DMA transfer that raises the edu's MSI when done. */
static void edu_dma(u32 bar, u32 from, u32 to, u32 len, u32 cmd)
{
	*reg(bar, EDU_DMA_SRC) = from;
	*reg(bar, EDU_DMA_SRC + 4) = 0;
	*reg(bar, EDU_DMA_DST) = to;
	*reg(bar, EDU_DMA_DST + 4) = 0;
	*reg(bar, EDU_DMA_CNT) = len;
	*reg(bar, EDU_DMA_CNT + 4) = 0;
	*reg(bar, EDU_DMA_CMD) = cmd | EDU_DMA_IRQ | EDU_DMA_START;
	take_msi(bar, EDU_DMA_DONE_IRQ, "DMA completion");
	if (*reg(bar, EDU_DMA_CMD) & EDU_DMA_START)
		finish(0, "DMA completion MSI before the DMA completed");
}

static void check_registers(u32 bar)
{
	if ((*reg(bar, EDU_ID) & 0xff) != 0xed)
		finish(0, "edu id register is wrong");
	*reg(bar, EDU_LIVENESS) = bar;
	if (*reg(bar, EDU_LIVENESS) != ~bar)
		finish(0, "edu liveness register is wrong");
}

static void round_trip(u32 bar, u8 seed)
{
	u32 i;

	for (i = 0; i < XFER; i++) {
		src[i] = (u8)(i * 7 + seed);
		dst[i] = 0;
	}
	puts("payload: DMA ");
	puthex((u32)(u64)src);
	puts(" -> edu -> ");
	puthex((u32)(u64)dst);
	puts(" through BAR0 ");
	puthex(bar);
	puts("\n");
	edu_dma(bar, (u32)(u64)src, EDU_BUF, XFER, 0);
	edu_dma(bar, EDU_BUF, (u32)(u64)dst, XFER, EDU_DMA_TO_RAM);
	for (i = 0; i < XFER; i++)
		if (dst[i] != src[i])
			finish(0, "DMA round trip: data differs");
}

/* Decoding off, BAR0 at bar, decoding and bus mastering on. */
static void place_bar(u32 devfn, u32 bar)
{
	*cfg(devfn, 0x04) &= ~0x6u;
	*cfg(devfn, 0x10) = bar;
	*cfg(devfn, 0x04) |= 0x6;
	if ((*cfg(devfn, 0x10) & ~0xfu) != bar)
		finish(0, "BAR0 did not take its address");
}

void main(void)
{
	u32 devfn, id;

	for (devfn = 0; devfn < 32 * 8; devfn++) {
		id = *cfg(devfn, 0);
		if ((id & 0xffff) == EDU_VENDOR && id >> 16 == EDU_DEVICE)
			break;
	}
	if (devfn == 32 * 8)
		finish(0, "no edu device");
	place_bar(devfn, BAR_AT);
	puts("payload: edu at bdf ");
	puthex(devfn);
	puts(", BAR0 ");
	puthex(BAR_AT);
	puts("\n");
	check_registers(BAR_AT);
	msi_setup(devfn);
	*reg(BAR_AT, EDU_IRQ_RAISE) = 1;
	take_msi(BAR_AT, 1, "raised by the edu's register");
	round_trip(BAR_AT, 3);

	/* Move the BAR, as a guest OS may: QEMU moves its peer-to-peer mapping. */
	place_bar(devfn, MOVED_BAR);
	puts("payload: BAR0 moved to ");
	puthex(MOVED_BAR);
	puts("\n");
	check_registers(MOVED_BAR);
	round_trip(MOVED_BAR, 5);
	puts("payload: MSIs taken: ");
	putdec(msis);
	puts("\n");
	finish(1, "DMA round trips OK, 2048 bytes each, before and after moving BAR0; 5 MSIs");
}
