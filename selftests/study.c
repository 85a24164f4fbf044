// SPDX-License-Identifier: GPL-2.0
/*
 * study: the guest side of `make study` (scripts/study, run by
 * selftests/run_study.sh): what the iommu core and the IOMMU driver do
 * below the VFIO backend, step by step, recorded with kprobe events (see
 * study.h for the probes, the instance and the flow).
 *
 *   study probes         define the probes and the tracing instance (with a
 *                        stack trace per event); list what is probed
 *   study run MODULE     walk the flow on the backend serving new containers
 *                        (MODULE: the one expected, checked by its refcnt)
 *                        and print what was recorded
 *   study clean          remove the instance and the probes
 *
 * Every output line starts with "STUDY|" (the console carries it to the
 * host, where scripts/study-report turns it into reports):
 *
 *   STUDY|PROBE event symbol+offset   a probe set
 *   STUDY|NOPROBE event why           a probe not set
 *   STUDY|RUN module arch release
 *   STUDY|STEP n name description
 *   STUDY|S id frame;frame;...        a stack, probed function first
 *   STUDY|E step event stack-id args  an event (stack-id - if none)
 *   STUDY|END module events=N lost=N served=0|1 runs=N huge=0|1 msis=N replay=0|1
 *             [error=...]
 *
 * Exit status: 0, or 1 if the flow or the tracing failed.
 */
#include "study.h"

static int cmd_probes(void)
{
	static struct study_setup st;

	if (study_setup(&st, true, 8192)) {
		printf("STUDY|ERROR %s\n", st.err);
		return 1;
	}
	for (size_t i = 0; i < STUDY_NPROBES; i++) {
		if (st.set[i])
			printf("STUDY|PROBE %s %s+%d\n", study_probes[i].event, st.sym[i], st.off[i]);
		else if (study_probe_here(&study_probes[i]))
			printf("STUDY|NOPROBE %s %s\n", study_probes[i].event, st.why[i]);
	}
	return 0;
}

static int cmd_run(const char *module)
{
	static struct study_trace t;
	struct study_flow fl;
	struct utsname u;
	int rc = 0;

	if (access(STUDY_INSTANCE, F_OK)) {
		printf("STUDY|ERROR no instance %s: run 'study probes' first\n", STUDY_INSTANCE);
		return 1;
	}
	uname(&u);
	printf("STUDY|RUN %s %s %s\n", module, u.machine, u.release);
	if (study_flow(&fl, module))
		rc = 1;
	if (study_collect(&t)) {
		printf("STUDY|ERROR %s\n", t.err);
		return 1;
	}
	for (int n = 1; n <= STUDY_NSTEPS; n++)
		if (t.desc[n][0])
			printf("STUDY|STEP %d %s %s\n", n, study_step_name[n], t.desc[n]);
	for (int i = 0; i < t.nstacks; i++)
		printf("STUDY|S %d %s\n", i, t.stacks[i]);
	for (int i = 0; i < t.nev; i++) {
		const struct study_event *e = &t.ev[i];

		if (e->stack >= 0)
			printf("STUDY|E %d %s %d %s\n", e->step, e->name, e->stack, e->raw);
		else
			printf("STUDY|E %d %s - %s\n", e->step, e->name, e->raw);
	}
	printf("STUDY|END %s events=%d lost=%ld served=%d runs=%d huge=%d msis=%ld replay=%d", module,
	       t.nev, t.lost, fl.served, fl.runs, fl.huge, fl.msis, fl.replay);
	if (fl.err[0])
		printf(" error=step %d: %s", fl.failed_step, fl.err);
	else if (fl.msi_err[0])
		printf(" error=step %d: %s", STEP_MSI, fl.msi_err);
	printf("\n");
	if (t.lost || !fl.served || fl.msi_err[0])
		rc = 1;
	study_trace_free(&t);
	return rc;
}

int main(int argc, char **argv)
{
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "probes"))
		return cmd_probes();
	if (argc == 3 && !strcmp(argv[1], "run"))
		return cmd_run(argv[2]);
	if (argc == 2 && !strcmp(argv[1], "clean")) {
		study_clean();
		rc = access(STUDY_INSTANCE, F_OK) ? 0 : 1;
		return rc;
	}
	fprintf(stderr, "usage: study probes | study run MODULE | study clean\n");
	return 2;
}
