/* example.c - the C test runner's example (tests/cunit/cunit.h): built for
 * Linux and, cross-built, for Windows (tools/windows/run-tests.sh). */
#include "cunit.h"

CU_TEST(arithmetic)
{
    CHECK(1 + 1 == 2);
    CHECK_EQ(6 * 7, 42);
}

CU_TEST(strings)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%s-%d", "mpr", 1);
    CHECK_STR(buf, "mpr-1");
}

CU_TEST(own_timeout, .timeout_s = 5)
{
    REQUIRE(sizeof(void *) >= 4);
}

CU_TEST(skipped)
{
#ifdef _WIN32
    SKIP("shows a skip (Windows)");
#else
    SKIP("shows a skip (Linux)");
#endif
}

CU_MAIN()
