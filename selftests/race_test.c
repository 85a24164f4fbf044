// SPDX-License-Identifier: GPL-2.0
/*
 * Schedules that races reach only by chance, forced: a MAP_DMA is held
 * inside GUP, with the container's lock taken, on a page registered with
 * userfaultfd, while the test does what a user (or root reading debugfs)
 * can do meanwhile; then the test resolves the fault.
 *
 * Only ours stalls there: the C module pins with pin_user_pages_remote()
 * without a "locked" argument, so the fault may not be retried and
 * userfaultfd answers SIGBUS, MAP_DMA EFAULT (a user-visible difference
 * only for userfaultfd-registered memory, which no VMM maps: QEMU refuses
 * postcopy with VFIO devices). On C those tests check that EFAULT and
 * stop. Both modules wait on a MAP_DMA argument in a userfaultfd page
 * (copy_from_user faults can be retried): map_argument_stalled_across_release.
 */
#include "kselftest_harness.h"
#include "fixture.h"

#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#define NPAGE 8

/* A MAP_DMA of NPAGE userfaultfd-registered pages, run by its own thread. */
struct stalled_map {
	int container;
	int uffd;
	uint8_t *buf;
	uint64_t iova;
	pthread_t tid;
	long ret;
	atomic_bool done;
};

/* A userfaultfd on [p, p + len): touching a page there waits for the test. */
static int uffd_register(struct __test_metadata *_metadata, void *p, size_t len)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	int uffd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	EXPECT_LE(0, uffd) TH_LOG("userfaultfd: %m (CONFIG_USERFAULTFD?)");
	if (uffd < 0)
		return uffd;
	EXPECT_EQ(0, ioctl(uffd, UFFDIO_API, &api));
	reg.range.start = (unsigned long)p;
	reg.range.len = len;
	EXPECT_EQ(0, ioctl(uffd, UFFDIO_REGISTER, &reg));
	return uffd;
}

/* Waits until a fault arrives on uffd (true) or *done is set (false). */
static bool uffd_wait_fault(struct __test_metadata *_metadata, int uffd, atomic_bool *done)
{
	struct pollfd pfd = { .fd = uffd, .events = POLLIN };
	struct uffd_msg msg;

	while (!atomic_load(done)) {
		if (poll(&pfd, 1, 100) == 1) {
			EXPECT_EQ((ssize_t)sizeof(msg), read(uffd, &msg, sizeof(msg)));
			EXPECT_EQ(UFFD_EVENT_PAGEFAULT, msg.event);
			return true;
		}
	}
	return false;
}

static void *stalled_map_main(void *arg)
{
	struct stalled_map *m = arg;

	m->ret = dma_map(m->container, m->iova, m->buf, NPAGE * PG, DMA_RW);
	atomic_store(&m->done, true);
	return NULL;
}

/*
 * Starts the MAP and waits until it faults on the first page: from then on
 * it holds the container's lock (ours) until stalled_map_resolve(). False
 * if the MAP did not stall (it then has finished: m->ret).
 */
static bool stalled_map_start(struct __test_metadata *_metadata, struct stalled_map *m,
			      int container, uint64_t iova)
{
	m->container = container;
	m->iova = iova;
	atomic_store(&m->done, false);
	m->buf = mmap(NULL, NPAGE * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	ASSERT_NE(MAP_FAILED, m->buf);
	m->uffd = uffd_register(_metadata, m->buf, NPAGE * PG);
	ASSERT_EQ(0, pthread_create(&m->tid, NULL, stalled_map_main, m));
	if (uffd_wait_fault(_metadata, m->uffd, &m->done))
		return true;
	pthread_join(m->tid, NULL);
	return false;
}

/* Fills every page, which wakes the MAP; waits for it and returns its result. */
static long stalled_map_resolve(struct __test_metadata *_metadata, struct stalled_map *m)
{
	/* Room and alignment for any page size up to 64 KiB. */
	static uint8_t src[NPAGE * SZ_64K] __attribute__((aligned(SZ_64K)));
	struct uffdio_copy copy = {
		.dst = (unsigned long)m->buf, .src = (unsigned long)src, .len = NPAGE * PG,
	};

	memset(src, 0x6b, NPAGE * PG);
	EXPECT_EQ(0, ioctl(m->uffd, UFFDIO_COPY, &copy)) TH_LOG("UFFDIO_COPY: %m");
	pthread_join(m->tid, NULL);
	close(m->uffd);
	return m->ret;
}

static void stalled_map_free(struct stalled_map *m)
{
	munmap(m->buf, NPAGE * PG);
}

/* Runs fn(arg) in a thread; true if it returned within secs. */
static bool finishes_within(void *(*fn)(void *), void *arg, double secs)
{
	struct timespec ts;
	pthread_t t;

	if (pthread_create(&t, NULL, fn, arg))
		return false;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)secs;
	if (pthread_timedjoin_np(t, NULL, &ts)) {
		pthread_detach(t);
		return false;
	}
	return true;
}

FIXTURE(race) {
	int container, group;
	struct leak_baseline base;
	struct stalled_map map;
};

FIXTURE_SETUP(race)
{
	backend_assert_idle(_metadata);
	leak_baseline_take(_metadata, &self->base);
	fixture_open(_metadata, &self->container, &self->group, NULL, true, VFIO_TYPE1v2_IOMMU);
}

FIXTURE_TEARDOWN(race)
{
	close_fd(&self->group);
	close_fd(&self->container);
	leak_check(_metadata, &self->base);
}

/* On C the MAP does not stall (see the top of the file): EFAULT, skip. */
#define STALL_OR_SKIP(m, c, iova)						\
	do {									\
		if (!stalled_map_start(_metadata, (m), (c), (iova))) {		\
			close((m)->uffd);					\
			stalled_map_free(m);					\
			ASSERT_TRUE(backend_is_c())				\
				TH_LOG("MAP_DMA did not wait: %ld", (m)->ret);	\
			ASSERT_EQ(-EFAULT, (m)->ret);				\
			SKIP(return, "C answers EFAULT on a userfaultfd page: no MAP_DMA waits in GUP");	\
		}								\
	} while (0)

/* Another container's whole life: join, SET_IOMMU (ours registers it in
 * the debugfs view), GET_INFO, close (unregisters it). */
static void *other_container_main(void *arg)
{
	int *ok = arg, c = open("/dev/vfio/vfio", O_RDWR);
	const struct vfio_test_group *g = vfio_test_group_find(1, 1);
	char info[256];
	int gfd;

	*ok = 0;
	if (c < 0 || !g)
		return NULL;
	gfd = vfio_group_attach(c, g->id, VFIO_TYPE1v2_IOMMU);
	if (gfd >= 0) {
		*ok = !iommu_get_info(c, info, sizeof(info));
		close(gfd);
	}
	close(c);
	return NULL;
}

static void *read_view_main(void *arg)
{
	static char buf[1 << 16];

	*(int *)arg = read_view(buf, sizeof(buf));
	return NULL;
}

/*
 * Review finding 2: the debugfs view's reader held the global registry
 * lock while it waited for a container's lock; a MAP stalled in GUP holds
 * that for as long as the page takes, and every SET_IOMMU (open registers)
 * and every release waited behind the reader: one user stalled the host.
 * Now another container's whole life completes meanwhile.
 */
TEST_F(race, view_reader_blocks_no_other_container)
{
	/* Static: the threads may outlive this function if a check fails. */
	static int viewed, other;

	viewed = 1;	/* 1: the reader has not returned */
	other = 0;

	if (!vfio_test_group_find(1, 1))
		SKIP(return, "needs a second single-device group");
	STALL_OR_SKIP(&self->map, self->container, IOVA_BASE);
	/* The reader now waits for the stalled container's lock. */
	EXPECT_FALSE(finishes_within(read_view_main, &viewed, 1));
	EXPECT_TRUE(finishes_within(other_container_main, &other, 20))
		TH_LOG("another container's SET_IOMMU/close waited for the stalled MAP");
	EXPECT_EQ(1, other);
	EXPECT_EQ(0, stalled_map_resolve(_metadata, &self->map));
	/* The reader got the lock and finished. */
	for (int i = 0; i < 100 && viewed == 1; i++)
		usleep(10000);
	EXPECT_EQ(0, viewed);
	EXPECT_EQ(0, dma_unmap(self->container, IOVA_BASE, NPAGE * PG, 0, NULL));
	stalled_map_free(&self->map);
}

struct unset_arg {
	int group;
	long ret;
};

static void *unset_main(void *arg)
{
	struct unset_arg *u = arg;

	u->ret = xioctl(u->group, VFIO_GROUP_UNSET_CONTAINER, 0);
	return NULL;
}

static void *second_map_main(void *arg)
{
	struct stalled_map *m = arg;

	m->ret = dma_map(m->container, m->iova, m->buf, PG, DMA_RW);
	return NULL;
}

/*
 * The last group leaves while a MAP is stalled in GUP and a second MAP
 * waits for the container's lock. Patched vfio core: the detach waits for
 * both ioctls. Unpatched (patches/linux/0001): our detach waits for the
 * container's lock behind the second MAP (mutex waiters are served in
 * order), so both maps succeed there too and the release unmaps them. Either
 * way nothing stays pinned or accounted and the log stays clean.
 */
TEST_F(race, last_group_leaves_under_stalled_map)
{
	struct unset_arg u = { .group = self->group, .ret = 1 };
	struct stalled_map second = { .container = self->container, .iova = IOVA_1G };
	pthread_t t_unset, t_second;
	char info[256];

	second.buf = mmap_aligned(PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, second.buf);
	memset(second.buf, 1, PG);
	STALL_OR_SKIP(&self->map, self->container, IOVA_BASE);
	ASSERT_EQ(0, pthread_create(&t_second, NULL, second_map_main, &second));
	usleep(200000);
	ASSERT_EQ(0, pthread_create(&t_unset, NULL, unset_main, &u));
	usleep(200000);
	EXPECT_EQ(0, stalled_map_resolve(_metadata, &self->map));
	pthread_join(t_second, NULL);
	pthread_join(t_unset, NULL);
	EXPECT_EQ(0, u.ret);
	EXPECT_EQ(0, second.ret);
	/* The container has no backend now: vfio core answers. */
	EXPECT_EQ(-EINVAL, iommu_get_info(self->container, info, sizeof(info)));
	EXPECT_EQ(self->base.pins, pins_outstanding()) TH_LOG("pins left after release");
	EXPECT_EQ(self->base.vmlck, vmlck_kb()) TH_LOG("VmLck left after release");
	stalled_map_free(&self->map);
	munmap(second.buf, PG);
}

struct map_arg_thread {
	int container;
	struct vfio_iommu_type1_dma_map *arg;
	long ret;
	atomic_bool done;
};

static void *map_arg_main(void *p)
{
	struct map_arg_thread *t = p;

	t->ret = xioctl(t->container, VFIO_IOMMU_MAP_DMA, (unsigned long)t->arg);
	atomic_store(&t->done, true);
	return NULL;
}

/*
 * Ours takes its reference to the container before it reads its argument:
 * a MAP_DMA whose argument sits in a userfaultfd page waits in our code,
 * holding no lock, while the last group leaves. Unpatched vfio core:
 * UNSET_CONTAINER returns meanwhile and the container is released; the
 * MAP, once its argument arrives, finds it released and answers EINVAL (as
 * vfio core does for a container without backend), pinning nothing, with
 * no use after free. Patched: UNSET_CONTAINER waits for the MAP, which
 * maps; the release then unmaps it. The C module reads its argument the
 * same way: patched it behaves the same; unpatched it would use its freed
 * container, so there the argument never arrives (the test skips).
 */
TEST_F(race, map_argument_stalled_across_release)
{
	struct vfio_iommu_type1_dma_map want = {
		.argsz = sizeof(want), .flags = DMA_RW, .iova = IOVA_BASE, .size = PG,
	};
	static uint8_t src[SZ_64K] __attribute__((aligned(SZ_64K)));	/* any page size */
	struct map_arg_thread t = { .container = self->container };
	struct unset_arg u = { .group = self->group, .ret = 1 };
	struct uffdio_copy copy = { .src = (unsigned long)src, .len = PG };
	pthread_t tm, tu;
	uint8_t *page, *buf;
	int uffd;
	bool unpatched;

	buf = mmap_aligned(PG, PG, PROT_READ | PROT_WRITE);
	ASSERT_NE(NULL, buf);
	memset(buf, 7, PG);
	want.vaddr = (unsigned long)buf;
	page = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, page);
	uffd = uffd_register(_metadata, page, PG);
	ASSERT_LE(0, uffd);
	t.arg = (void *)page;
	ASSERT_EQ(0, pthread_create(&tm, NULL, map_arg_main, &t));
	ASSERT_TRUE(uffd_wait_fault(_metadata, uffd, &t.done)) TH_LOG("MAP did not wait: %ld", t.ret);
	ASSERT_EQ(0, pthread_create(&tu, NULL, unset_main, &u));
	usleep(1000000);
	unpatched = u.ret != 1;
	if (unpatched && backend_is_c()) {
		/* The fault then resolves to a zero page: argsz 0, EINVAL
		 * before the C module touches its container. */
		close(uffd);
		pthread_join(tm, NULL);
		pthread_join(tu, NULL);
		munmap(page, PG);
		munmap(buf, PG);
		SKIP(return, "unpatched vfio core: the C module would use its freed container");
	}
	memcpy(src, &want, sizeof(want));
	copy.dst = (unsigned long)page;
	EXPECT_EQ(0, ioctl(uffd, UFFDIO_COPY, &copy)) TH_LOG("UFFDIO_COPY: %m");
	pthread_join(tm, NULL);
	pthread_join(tu, NULL);
	close(uffd);
	ksft_print_msg("vfio core %s: MAP_DMA answered %ld\n",
		       unpatched ? "unpatched (UNSET_CONTAINER did not wait)" : "patched", t.ret);
	EXPECT_EQ(unpatched ? -EINVAL : 0, t.ret);
	EXPECT_EQ(0, u.ret);
	EXPECT_EQ(self->base.pins, pins_outstanding()) TH_LOG("pins left after release");
	EXPECT_EQ(self->base.vmlck, vmlck_kb()) TH_LOG("VmLck left after release");
	munmap(page, PG);
	munmap(buf, PG);
}

TEST_HARNESS_MAIN
