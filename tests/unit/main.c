/*
 * main.c - CUnit runner for the unit tests
 *
 * DESCRIPTION  Registers every suite from one table and runs them all, or
 *              only the suite named by argv[1] (`build/unit-tests cmd`).
 *              A new module adds one line to suites[] and one extern to
 *              unit.h.
 * ERRORS       Exit 0 when every assertion passed and every suite
 *              initialised; 1 on any failure record; 2 for an unknown
 *              suite name; CUnit's error code when the registry fails.
 *              CU_basic_run_*() returns CUE_SUCCESS even when assertions
 *              fail, so the failure records are counted instead, before
 *              CU_cleanup_registry() throws them away.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit.h"

static CU_SuiteInfo suites[] = {
	{ .pName = "util",     .pTests = util_tests },
	{ .pName = "iobuf",    .pTests = iobuf_tests },
	{ .pName = "dscan",    .pTests = dscan_tests },
	{ .pName = "cmd",      .pTests = cmd_tests },
	{ .pName = "conf",     .pTests = conf_tests },
	{ .pName = "match",    .pTests = match_tests },
	{ .pName = "scenario", .pTests = scenario_tests },
	{ .pName = "store",    .pTests = store_tests },
	{ .pName = "fault",    .pTests = fault_tests },
	{ .pName = "greylist", .pTests = greylist_tests },
	CU_SUITE_INFO_NULL,
};

static void
usage(FILE *fp)
{
	CU_SuiteInfo *s;

	fprintf(fp, "usage: unit-tests [suite]\nsuites:");
	for (s = suites; s->pName != NULL; s++)
		fprintf(fp, " %s", s->pName);
	fprintf(fp, "\n");
}

int
main(int argc, char *argv[])
{
	CU_pSuite	 one = NULL;
	unsigned	 bad;

	t_set_argv0(argv[0]);
	if (argc > 2 || (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0))) {
		usage(argc > 2 ? stderr : stdout);
		return argc > 2 ? 2 : 0;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return (int)CU_get_error();
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "unit-tests: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return (int)CU_get_error();
	}
	if (argc == 2 && (one = CU_get_suite(argv[1])) == NULL) {
		fprintf(stderr, "unit-tests: no suite named '%s'\n", argv[1]);
		usage(stderr);
		CU_cleanup_registry();
		return 2;
	}

	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (one != NULL)
		CU_basic_run_suite(one);
	else
		CU_basic_run_tests();

	bad = CU_get_number_of_failure_records();
	CU_cleanup_registry();
	return bad ? 1 : 0;
}
